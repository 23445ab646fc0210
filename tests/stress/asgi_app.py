"""The load server's application: the live tests' guard route, plus a diagnostics endpoint.

WebSocket connections go to ``tests.live.asgi_app_guard`` unchanged (``/ws/guard/``: accept,
send ``{"exp": ...}``, close with 4440 at expiry). An HTTP ``GET /diagnostics`` answers,
after a full garbage collection, how many objects the collector tracks (by type) and how
many asyncio tasks exist: the load test compares them before and after 10,000 connections,
which finds a leak of even one object per connection, far below what the RSS can show.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
from collections import Counter
from typing import Any

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.stress.server_settings")

from tests.live.asgi_app_guard import application as guard_application


async def application(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """``/diagnostics`` over HTTP; everything else to the guard application."""
    if scope["type"] == "http" and scope["path"] == "/diagnostics":
        await send_diagnostics(send)
        return
    await guard_application(scope, receive, send)


async def send_diagnostics(send: Any) -> None:
    """Collect garbage, then describe the live objects and tasks as JSON."""
    gc.collect()
    objects = Counter(type(item).__name__ for item in gc.get_objects())
    body = json.dumps(
        {"objects": sum(objects.values()), "by_type": objects, "tasks": len(asyncio.all_tasks())}
    ).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})
