"""Which subprotocol a rejection accepts with, and how reasons are capped."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from asgiref.testing import ApplicationCommunicator

from channels_jwt import (
    JWTAuthMiddleware,
    TokenExpired,
    UserRejected,
)
from channels_jwt.exceptions import ChannelsJWTError
from channels_jwt.handshake import _truncated, close_code, rejection_subprotocol
from tests.harness import (
    PATH,
    Attempt,
    RecordingApp,
    Refusal,
    accepted_then_closed,
    close_message,
    expired,
    expired_token_for,
    lookup_crashes,
    malformed,
    no_credential,
    open_connection,
    rate_limited,
    rejection,
    revoked,
    token_for,
    unknown_user,
    websocket_scope,
    wrong_signature,
)

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


INVALID_TOKEN = b'Bearer error="invalid_token"'


class VerboseRejection(UserRejected):
    """A rejection whose reason is longer than a close frame allows (200 UTF-8 bytes)."""

    reason = "é" * 100


async def verbose_resolver(claims: Any, scope: Any) -> Any:
    raise VerboseRejection("long reason")


# Every close code, in each rejection mode.


REJECTIONS = [
    pytest.param(no_credential, Refusal(4401, "token_missing", 401, b"Bearer"), id="4401-missing"),
    pytest.param(malformed, Refusal(4400, "token_malformed", 401, INVALID_TOKEN), id="4400"),
    pytest.param(wrong_signature, Refusal(4401, "token_invalid", 401, INVALID_TOKEN), id="4401"),
    pytest.param(unknown_user, Refusal(4403, "user_rejected", 403, None), id="4403"),
    pytest.param(rate_limited, Refusal(4429, "rate_limited", 429, None), id="4429"),
    pytest.param(expired, Refusal(4440, "token_expired", 401, INVALID_TOKEN), id="4440"),
    pytest.param(revoked, Refusal(4441, "token_revoked", 401, INVALID_TOKEN), id="4441"),
    pytest.param(lookup_crashes, Refusal(4503, "auth_unavailable", 503, None), id="4503"),
]


@pytest.mark.parametrize(("make_attempt", "refusal"), REJECTIONS)
async def test_close_mode_accepts_then_closes_with_the_code(
    make_attempt: Callable[[Any], Attempt], refusal: Refusal, user: Any, inner: RecordingApp
) -> None:
    attempt = make_attempt(user)
    app = JWTAuthMiddleware(inner, settings=attempt.settings)
    subprotocol, close = await rejection(app, subprotocols=attempt.subprotocols)
    assert subprotocol == ("access_token" if attempt.subprotocols else None)
    assert close == close_message(refusal.code, refusal.reason)
    assert not inner.called


@pytest.mark.parametrize(("make_attempt", "refusal"), REJECTIONS)
async def test_deny_mode_answers_http_where_the_server_supports_it(
    make_attempt: Callable[[Any], Attempt], refusal: Refusal, user: Any, inner: RecordingApp
) -> None:
    attempt = make_attempt(user)
    app = JWTAuthMiddleware(inner, settings={**attempt.settings, "REJECT_MODE": "deny"})
    scope = websocket_scope(
        subprotocols=attempt.subprotocols, extensions={"websocket.http.response": {}}
    )
    communicator = ApplicationCommunicator(app, scope)
    await communicator.send_input({"type": "websocket.connect"})
    start = await communicator.receive_output()
    body = await communicator.receive_output()
    await communicator.wait()
    expected_body = f'{{"code": {refusal.code}, "reason": "{refusal.reason}"}}'.encode()
    expected_headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(expected_body)).encode()),
    ]
    if refusal.challenge is not None:
        expected_headers.append((b"www-authenticate", refusal.challenge))
    assert start == {
        "type": "websocket.http.response.start",
        "status": refusal.status,
        "headers": expected_headers,
    }
    assert body == {"type": "websocket.http.response.body", "body": expected_body}
    assert await communicator.receive_nothing()
    assert not inner.called


@pytest.mark.parametrize(("make_attempt", "refusal"), REJECTIONS)
async def test_deny_mode_closes_before_accept_without_the_extension(
    make_attempt: Callable[[Any], Attempt], refusal: Refusal, user: Any, inner: RecordingApp
) -> None:
    attempt = make_attempt(user)
    app = JWTAuthMiddleware(inner, settings={**attempt.settings, "REJECT_MODE": "deny"})
    messages = await accepted_then_closed(app, websocket_scope(subprotocols=attempt.subprotocols))
    assert messages == [close_message(refusal.code, refusal.reason)]
    assert not inner.called


async def test_deny_mode_through_the_websocket_communicator(user: Any, inner: RecordingApp) -> None:
    app = JWTAuthMiddleware(inner, settings={"REJECT_MODE": "deny"})
    _, outcome = await open_connection(app, subprotocols=["access_token", expired_token_for(user)])
    assert outcome == (False, 4440)


async def test_rejection_waits_for_connect_and_ignores_an_early_disconnect(
    inner: RecordingApp,
) -> None:
    communicator = ApplicationCommunicator(JWTAuthMiddleware(inner), websocket_scope())
    await communicator.send_input({"type": "websocket.disconnect", "code": 1001})
    await communicator.wait()
    assert await communicator.receive_nothing()
    assert not inner.called


async def test_rejection_accepts_with_a_non_token_subprotocol_when_no_marker(
    inner: RecordingApp,
) -> None:
    subprotocol, close = await rejection(JWTAuthMiddleware(inner), subprotocols=["chat.v2"])
    assert subprotocol == "chat.v2"
    assert close == close_message(4401, "token_missing")


@pytest.mark.parametrize(
    "offered",
    [
        pytest.param(["eyJhbGciOiJIUzI1NiJ9.e30.sig"], id="jwt-shaped"),
        pytest.param(["x" * 65], id="longer-than-64"),
    ],
)
async def test_rejection_never_echoes_what_may_be_a_token(
    offered: list[str], inner: RecordingApp
) -> None:
    subprotocol, close = await rejection(JWTAuthMiddleware(inner), subprotocols=offered)
    assert subprotocol is None
    assert close == close_message(4401, "token_missing")


async def test_rejection_skips_token_like_subprotocols_for_the_next_one(
    inner: RecordingApp,
) -> None:
    offered = ["eyJhbGciOiJIUzI1NiJ9.e30.sig", "chat"]
    subprotocol, _ = await rejection(JWTAuthMiddleware(inner), subprotocols=offered)
    assert subprotocol == "chat"


async def test_rejection_echoes_the_marker_for_ambiguous_credentials(
    user: Any, inner: RecordingApp
) -> None:
    token = token_for(user)
    subprotocol, close = await rejection(
        JWTAuthMiddleware(inner), f"{PATH}?token={token}", subprotocols=["access_token", token]
    )
    assert subprotocol == "access_token"
    assert close == close_message(4400, "token_malformed")


async def test_reason_is_capped_at_123_bytes(user: Any, inner: RecordingApp) -> None:
    app = JWTAuthMiddleware(inner, settings={"USER_RESOLVER": verbose_resolver})
    _, close = await rejection(app, subprotocols=["access_token", token_for(user)])
    assert close == close_message(4403, "é" * 61)


async def test_close_codes_override_the_code_for_a_reason(user: Any, inner: RecordingApp) -> None:
    app = JWTAuthMiddleware(inner, settings={"CLOSE_CODES": {"token_expired": 4001}})
    _, close = await rejection(app, subprotocols=["access_token", expired_token_for(user)])
    assert close == close_message(4001, "token_expired")


async def test_close_codes_leave_other_reasons_alone(inner: RecordingApp) -> None:
    app = JWTAuthMiddleware(inner, settings={"CLOSE_CODES": {"token_expired": 4001}})
    _, close = await rejection(app, subprotocols=["access_token", "not-a-jwt"])
    assert close == close_message(4400, "token_malformed")


async def test_close_codes_override_decides_the_deny_status(inner: RecordingApp) -> None:
    app = JWTAuthMiddleware(
        inner, settings={"REJECT_MODE": "deny", "CLOSE_CODES": {"token_missing": 4403}}
    )
    scope = websocket_scope(extensions={"websocket.http.response": {}})
    communicator = ApplicationCommunicator(app, scope)
    await communicator.send_input({"type": "websocket.connect"})
    start = await communicator.receive_output()
    await communicator.receive_output()
    await communicator.wait()
    assert start["status"] == 403
