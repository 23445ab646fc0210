"""The chat over GraphQL (Strawberry): the same rooms, users and messages as the chat sockets.

- ``me``: the requesting user's name, or ``null`` for an anonymous HTTP request;
- ``postMessage(room, text, clientId)`` (HTTP, ``Authorization: Bearer <token>``): stores a
  message and broadcasts it to the room, where chat sockets and subscriptions see it;
- ``roomMessages(room)`` (WebSocket, graphql-ws): every message posted in the room from now on.

No resolver here checks a token. ``JWTAuthMiddlewareStack`` did that before Strawberry ran: on
the WebSocket from ``connection_init``'s payload (``MESSAGE_FORMAT="graphql-ws"``), over HTTP
from the ``Authorization`` header (``AUTHENTICATE_HTTP``). A resolver reads the user from the
scope, as any Channels consumer does.
"""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator
from typing import Any

import strawberry
from strawberry.types import Info

from chat.consumers import broadcast, room_group, store_message
from chat.models import MAX_TEXT_LENGTH

_ROOM = re.compile(r"[A-Za-z0-9_-]{1,50}")
_CLIENT_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


@strawberry.type
class ChatMessage:
    """A message as every client sees it."""

    id: strawberry.ID
    room: str
    username: str
    text: str
    sent_at: str

    @classmethod
    def from_frame(cls, frame: dict[str, Any]) -> ChatMessage:
        """From the JSON frame the chat consumer broadcasts (``Message.as_json``)."""
        return cls(
            id=strawberry.ID(str(frame["id"])),
            room=frame["room"],
            username=frame["username"],
            text=frame["text"],
            sent_at=frame["sent_at"],
        )


def _scope(info: Info) -> dict[str, Any]:
    """The ASGI scope: the consumer is the WebSocket's request, the HTTP request's consumer."""
    request = info.context["request"]
    consumer = getattr(request, "consumer", request)
    scope: dict[str, Any] = consumer.scope
    return scope


def _room(room: str) -> str:
    if not _ROOM.fullmatch(room):
        raise ValueError("room: 1-50 of A-Z a-z 0-9 _ -")
    return room


@strawberry.type
class Query:
    @strawberry.field(description="The authenticated user's name; null when anonymous.")
    def me(self, info: Info) -> str | None:
        user = _scope(info)["user"]
        return user.get_username() if user.is_authenticated else None


@strawberry.type
class Mutation:
    @strawberry.mutation(description="Post a message to a room, as the authenticated user.")
    async def post_message(self, info: Info, room: str, text: str, client_id: str) -> ChatMessage:
        user = _scope(info)["user"]
        if not user.is_authenticated:
            raise PermissionError("Send Authorization: Bearer <access token> to post.")
        if not text.strip() or len(text) > MAX_TEXT_LENGTH:
            raise ValueError("Empty or too long message.")
        if not _CLIENT_ID.fullmatch(client_id):
            raise ValueError("clientId: 1-64 of A-Z a-z 0-9 _ -")
        frame, created = await store_message(_room(room), user, text, client_id)
        if created:
            await broadcast(room, frame)
        return ChatMessage.from_frame(frame)


@strawberry.type
class Subscription:
    @strawberry.subscription(description="Every message posted in the room from now on.")
    async def room_messages(self, info: Info, room: str) -> AsyncGenerator[ChatMessage, None]:
        consumer = info.context["ws"]
        async with consumer.listen_to_channel("chat.message", groups=[room_group(_room(room))]) as (
            events
        ):
            async for event in events:
                yield ChatMessage.from_frame(event["message"])


schema = strawberry.Schema(query=Query, mutation=Mutation, subscription=Subscription)
