"""Strawberry's Channels consumers for the chat schema: ``/graphql/`` over HTTP and WebSocket.

``config/asgi.py`` puts both behind ``JWTAuthMiddlewareStack``. The WebSocket consumer needs no
authentication code: by the time Strawberry reads ``connection_init``, the middleware has
authenticated the token in its payload and removed it. The consumer answers ``connection_ack``
with who the client is and when its token expires, and which ``connectionParams`` keys reached
it (every one the client sent, the token's excepted): a client can schedule its renewal from
``expiresAt`` and see for itself that the token never reached the application.
"""

from __future__ import annotations

from typing import Any

from strawberry.channels import GraphQLHTTPConsumer, GraphQLWSConsumer

from chat.schema import schema


class ChatGraphQLWSConsumer(GraphQLWSConsumer):
    """graphql-ws subscriptions (``graphql-transport-ws``) for an authenticated user."""

    async def on_ws_connect(self, context: dict[str, Any]) -> dict[str, object]:
        expires_at = self.scope["jwt"].expires_at
        return {
            "username": self.scope["user"].get_username(),
            "expiresAt": expires_at.isoformat() if expires_at else None,
            "receivedParams": sorted(context.get("connection_params") or {}),
        }


websocket_consumer = ChatGraphQLWSConsumer.as_asgi(schema=schema)
http_consumer = GraphQLHTTPConsumer.as_asgi(
    schema=schema, graphql_ide=None, allow_queries_via_get=False
)
