"""T17, L01: a token that expires while its socket is open."""

from __future__ import annotations

import math
import time
from typing import Any

import pytest
from asgiref.testing import ApplicationCommunicator

from channels_jwt import JWTAuthMiddleware
from tests.catalogue.kit import (
    MARKER,
    Kit,
    warm_up,
    ws_scope,
)
from tests.harness import RecordingApp

#: How late after ``exp`` an in-process expiry close may arrive (as ``test_connection.py``).
LATENESS = 0.5


#: How early (the event loop's clock and the wall clock are read separately).
EARLINESS = 0.05


# --- T17, L01: the token expires while the socket is open ---------------------------------------


def soon() -> int:
    """A whole-second ``exp`` 0.3 to 1.3 s ahead (a fractional one is compared truncated at
    the handshake, as ``jwt.decode`` does, so it could already count as expired there)."""
    return math.ceil(time.time() + 0.3)


async def open_socket(app: Any, token: str) -> ApplicationCommunicator:
    communicator = ApplicationCommunicator(app, ws_scope(subprotocols=[MARKER, token]))
    await communicator.send_input({"type": "websocket.connect"})
    assert await communicator.receive_output(2) == {
        "type": "websocket.accept",
        "subprotocol": MARKER,
    }
    return communicator


async def test_T17_open_socket_is_closed_4440_at_exp(
    kit: Kit, caplog: pytest.LogCaptureFixture
) -> None:
    """An idle socket whose token expires is closed by the server at ``exp``, no later."""
    app = JWTAuthMiddleware(RecordingApp())
    await warm_up(app)  # the first handshake of a process builds the pipeline: not timed here
    exp = soon()
    communicator = await open_socket(app, kit.token(exp=exp))
    assert await communicator.receive_nothing(max(0.0, exp - time.time() - EARLINESS))

    close = await communicator.receive_output(exp - time.time() + LATENESS + 2)
    closed_at = time.time()

    assert close == {"type": "websocket.close", "code": 4440, "reason": "token_expired"}
    assert exp - EARLINESS <= closed_at <= exp + LATENESS
    await communicator.send_input({"type": "websocket.disconnect", "code": 4440})
    await communicator.wait(2)
    assert communicator.future.exception() is None


async def test_L01_frame_arriving_after_exp_is_not_passed_on_and_closes_4440(
    kit: Kit,
) -> None:
    """Frames pass while the token is valid; one sent after ``exp`` never reaches the app,
    whichever comes first (the timer or the frame), and the socket is closed 4440."""
    app = JWTAuthMiddleware(RecordingApp())
    await warm_up(app)
    exp = soon()
    communicator = await open_socket(app, kit.token(exp=exp))
    await communicator.send_input({"type": "websocket.receive", "text": "before"})
    assert await communicator.receive_output(2) == {"type": "websocket.send", "text": "before"}

    # Hold the loop past exp (a busy server), so the frame is already waiting when it runs.
    time.sleep(max(0.0, exp - time.time()) + 0.05)  # noqa: ASYNC251
    await communicator.send_input({"type": "websocket.receive", "text": "after"})

    assert await communicator.receive_output(2) == {
        "type": "websocket.close",
        "code": 4440,
        "reason": "token_expired",
    }
    assert await communicator.receive_nothing(0.1)
    await communicator.send_input({"type": "websocket.disconnect", "code": 4440})
    await communicator.wait(2)
