"""Which subprotocol a rejection accepts with, and how reasons are capped."""

from __future__ import annotations

import pytest

from channels_jwt.exceptions import ChannelsJWTError, TokenExpired
from channels_jwt.handshake import _truncated, close_code, rejection_subprotocol

JWT_LIKE = "eyJhbGciOiJIUzI1NiJ9.e30.c2lnbmF0dXJl"


@pytest.mark.parametrize(
    ("offered", "expected"),
    [
        pytest.param(["chat", "access_token", JWT_LIKE], "access_token", id="marker-wins"),
        pytest.param(["graphql-transport-ws"], "graphql-transport-ws", id="first-other"),
        pytest.param([JWT_LIKE, "chat"], "chat", id="token-skipped"),
        pytest.param(["x" * 65, "chat"], "chat", id="overlong-skipped"),
        pytest.param([""], None, id="empty-value-from-daphne-never-echoed"),
        pytest.param([], None, id="nothing-offered"),
        pytest.param([JWT_LIKE], None, id="only-a-token"),
    ],
)
def test_rejection_subprotocol(offered: list[str], expected: str | None) -> None:
    assert rejection_subprotocol(offered, "access_token") == expected


def test_close_code_override_by_reason() -> None:
    expired = TokenExpired()
    assert close_code(expired.reason, expired.close_code, {"token_expired": 4001}) == 4001
    default = close_code(expired.reason, expired.close_code, {"token_invalid": 4002})
    assert (default, type(default)) == (4440, int)


def test_reason_capped_at_123_bytes_without_splitting_characters() -> None:
    reason = "é" * 100
    capped = _truncated(reason)
    assert len(capped.encode()) <= 123
    assert capped == "é" * 61


def test_root_error_defaults_to_auth_unavailable() -> None:
    error = ChannelsJWTError()
    assert (error.close_code, error.reason, str(error)) == (
        4503,
        "auth_unavailable",
        "auth_unavailable",
    )
