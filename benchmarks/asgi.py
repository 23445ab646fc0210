"""The ASGI application the benchmark servers run: every stack, one path each.

``/noauth/``, ``/hs256_db/``, ... are served by one process, so the baseline and the stacks
compared with it share the server, its event loop and its warm caches. Dispatch is one dict
lookup on the exact path, the same for every stack.
"""

from __future__ import annotations

import os
from typing import Any

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.settings")

import django

django.setup()

from benchmarks.fixtures import load_keys  # noqa: E402
from benchmarks.stacks import build_stacks  # noqa: E402

ROUTES = {f"/{name}/": app for name, app in build_stacks(load_keys()).items()}


async def application(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Dispatch a WebSocket by exact path; anything else is refused."""
    app = ROUTES.get(scope.get("path", "")) if scope["type"] == "websocket" else None
    if app is not None:
        await app(scope, receive, send)
        return
    if scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.close", "code": 4404})
    elif scope["type"] == "http":
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b""})
