"""``RedactTokens`` on a real uvicorn at ``--log-level trace``, the most verbose it logs.

At trace level uvicorn logs every ASGI scope whole, as a dict: the query string and the
headers as bytes, the offered subprotocols as a list. The filter, attached to the handler
through ``--log-config`` as the docs show, must keep every token out of that output.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests import harness
from tests.harness import MARKER
from tests.live.conftest import LiveServer, LiveUsers, running_server
from tests.live.server_settings import SIGNING_KEY

pytestmark = pytest.mark.live

TIMEOUT = 5.0

#: The logging set-up of a project that attaches RedactTokens to uvicorn's output.
LOG_CONFIG = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"redact": {"()": "channels_jwt.logs.RedactTokens"}},
    "formatters": {"plain": {"format": "%(levelname)s %(name)s %(message)s"}},
    "handlers": {
        "out": {
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stdout",
            "filters": ["redact"],
            "formatter": "plain",
        }
    },
    "loggers": {"uvicorn": {"handlers": ["out"], "level": 5, "propagate": False}},
}


@pytest.fixture
def tracing_uvicorn(live_dir: Path, live_users: LiveUsers, tmp_path: Path) -> Iterator[LiveServer]:
    """uvicorn at ``--log-level trace`` with ``RedactTokens`` on its handler."""
    config = tmp_path / "log-config.json"
    config.write_text(json.dumps(LOG_CONFIG))
    # No lifespan scope: the three sockets are ASGI tasks 1, 2 and 3.
    options = ("--log-level", "trace", "--log-config", str(config), "--lifespan", "off")
    with running_server("uvicorn", live_dir, options=options) as server:
        yield server


async def offer(server: LiveServer, path: str, **kwargs: Any) -> None:
    """Open a socket, read until the server closes it or sends a frame, then hang up."""
    client = connect(server.url(path), open_timeout=TIMEOUT, close_timeout=TIMEOUT, **kwargs)
    async with client as ws:
        with contextlib.suppress(ConnectionClosed):
            await ws.recv()


async def test_uvicorn_trace_output_holds_no_token(
    tracing_uvicorn: LiveServer, live_users: LiveUsers
) -> None:
    tokens = [harness.token_for(live_users.active, key=SIGNING_KEY) for _ in range(3)]

    await offer(tracing_uvicorn, f"/ws/echo/?room=1&token={tokens[0]}")
    await offer(tracing_uvicorn, "/ws/echo/", subprotocols=[MARKER, tokens[1]])
    bearer = {"Authorization": f"Bearer {tokens[2]}"}
    await offer(tracing_uvicorn, "/ws/echo/", additional_headers=bearer)

    # The third socket's last trace line: everything the three wrote is in the log by then.
    log = await harness.log_containing(tracing_uvicorn.log, "ASGI [3] Completed", name="uvicorn")
    assert log.count("Started scope=") == 3
    assert "[redacted]" in log
    for token in tokens:
        for part in token.split("."):
            assert part not in log, f"a token part reached the trace log:\n{log}"
