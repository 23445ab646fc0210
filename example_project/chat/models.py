"""Chat messages, kept so a client that reconnects (after a 4440, say) misses nothing."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models

#: How many recent messages a client gets when it (re)connects to a room.
HISTORY_LENGTH = 50
MAX_TEXT_LENGTH = 2000


class Message(models.Model):
    """One message in one room."""

    room = models.CharField(max_length=50)
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    text = models.TextField(max_length=MAX_TEXT_LENGTH)
    # Chosen by the sending client, so a message re-sent after a reconnect is stored once.
    client_id = models.CharField(max_length=64)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created", "id"]
        indexes = [models.Index(fields=["room", "created"])]
        constraints = [
            models.UniqueConstraint(fields=["author", "client_id"], name="chat_unique_client_id")
        ]

    def __str__(self) -> str:
        return f"#{self.room} {self.author_id}: {self.text[:40]}"

    def as_json(self, username: str) -> dict[str, Any]:
        """The frame clients receive for this message."""
        return {
            "type": "message",
            "id": self.pk,
            "client_id": self.client_id,
            "room": self.room,
            "username": username,
            "text": self.text,
            "sent_at": self.created.isoformat(),
        }
