"""The chat consumer: rooms are channel-layer groups, every message stamped with its author.

By the time ``connect`` runs, ``JWTAuthMiddlewareStack`` has verified the token and put the
user in ``scope["user"]``; a connection it refused never gets here. The consumer accepts
without choosing a subprotocol, so the middleware answers with the ``access_token`` marker the
browser offered (a browser drops a connection whose server picks none of its offers).

Frames (JSON):

- server → client, first: ``{"type": "history", "room", "username", "expires_at",
  "messages": [...]}``. Clients treat this, not the socket's ``open`` event, as "connected":
  a refused handshake is accepted and closed at once (so browsers see the close code).
- client → server: ``{"type": "message", "text": "...", "client_id": "<unique per message>"}``.
- server → every client in the room: ``{"type": "message", "id", "client_id", "room",
  "username", "text", "sent_at"}``.
- server → client: ``{"type": "error", "detail": "..."}`` for a frame it cannot use.
- client → server: ``{"type": "token.refresh", "token": "<new access token>"}`` shortly before
  the current token expires; the server answers ``{"type": "token.refreshed", "expires_at":
  <exp, epoch seconds>}`` on the same socket, or closes it with the refusal's code (4401, 4403,
  4440, 4441, 4503; 4400 for a frame without a token string). ``TokenRefreshMixin`` handles
  these frames before ``receive_json`` sees anything: every other frame, even a chat message
  whose text says "token.refresh", reaches ``receive_json`` as before. Without a refresh the
  middleware closes the socket with 4440 when the token expires, and the client refreshes and
  reconnects.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from channels.layers import get_channel_layer
from django.db import IntegrityError

from channels_jwt.consumers import TokenRefreshMixin
from chat.models import HISTORY_LENGTH, MAX_TEXT_LENGTH, Message

logger = logging.getLogger("chat")
_CLIENT_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


class ChatConsumer(TokenRefreshMixin, AsyncJsonWebsocketConsumer):
    """One socket in one room. The mixin comes first: its ``receive`` takes the
    ``token.refresh`` frames and passes everything else on to ``receive_json``."""

    room: str
    group: str

    async def connect(self) -> None:
        self.room = self.scope["url_route"]["kwargs"]["room"]
        self.group = room_group(self.room)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()  # no subprotocol chosen: the middleware names the marker
        user = self.scope["user"]
        expires_at = self.scope["jwt"].expires_at
        await self.send_json(
            {
                "type": "history",
                "room": self.room,
                "username": user.get_username(),
                "expires_at": expires_at.isoformat() if expires_at else None,
                "messages": await recent_messages(self.room),
            }
        )

    async def disconnect(self, code: int) -> None:
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        if not isinstance(content, dict) or content.get("type") != "message":
            await self.send_json({"type": "error", "detail": 'Send {"type": "message", ...}.'})
            return
        text, client_id = content.get("text"), content.get("client_id")
        if not isinstance(text, str) or not text.strip() or len(text) > MAX_TEXT_LENGTH:
            await self.send_json({"type": "error", "detail": "Empty or too long message."})
            return
        if not isinstance(client_id, str) or not _CLIENT_ID.fullmatch(client_id):
            await self.send_json({"type": "error", "detail": "client_id: 1-64 of A-Z a-z 0-9 _ -"})
            return
        message, created = await store_message(self.room, self.scope["user"], text, client_id)
        if created:
            await broadcast(self.room, message)
        else:  # a resend of a message the room already has: confirm it to this client only
            await self.send_json(message)

    async def chat_message(self, event: dict[str, Any]) -> None:
        """A message broadcast to the room's group: pass it on to this client."""
        await self.send_json(event["message"])


def room_group(room: str) -> str:
    """The channel-layer group of a room's sockets and GraphQL subscriptions."""
    return f"chat.{room}"


async def broadcast(room: str, message: dict[str, Any]) -> None:
    """Send a stored message to everyone in the room (``chat.message`` events)."""
    await get_channel_layer().group_send(
        room_group(room), {"type": "chat.message", "message": message}
    )


@database_sync_to_async
def recent_messages(room: str) -> list[dict[str, Any]]:
    """The room's last messages, oldest first."""
    latest = Message.objects.filter(room=room).select_related("author").order_by("-created", "-id")
    recent = list(latest[:HISTORY_LENGTH])
    recent.reverse()
    return [message.as_json(message.author.get_username()) for message in recent]


@database_sync_to_async
def store_message(room: str, author: Any, text: str, client_id: str) -> tuple[dict[str, Any], bool]:
    """Save a message; ``created`` is false if this client already sent it (a resend)."""
    try:
        message = Message.objects.create(
            room=room, author=author, text=text.strip(), client_id=client_id
        )
    except IntegrityError:
        message = Message.objects.get(author=author, client_id=client_id)
        return message.as_json(author.get_username()), False
    logger.info("message %s in #%s from %s", message.pk, room, author.get_username())
    return message.as_json(author.get_username()), True
