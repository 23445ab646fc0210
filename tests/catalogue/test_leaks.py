"""L02-L04: leaks and close semantics.

The token in no log line, reason, subprotocol, exception or signal (L02); close semantics for
every reason in both reject modes (L03); unexpected exceptions inside the middleware (L04).
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pytest
from asgiref.testing import ApplicationCommunicator

from channels_jwt import JWTAuthMiddleware, signals
from channels_jwt.exceptions import CloseCode
from channels_jwt.logs import RedactTokens
from tests.catalogue.kit import (
    ATTACKER_SECRET,
    EXPIRED,
    HS_PROFILE,
    INVALID,
    MALFORMED,
    MARKER,
    UNAVAILABLE,
    Attempt,
    Kit,
    assert_nothing_leaked,
    assert_refused,
    carrying,
    handshake,
    log_text,
    now,
    refused_outcome,
    ws_scope,
)
from tests.harness import (
    RecordingApp,
    always_revoked,
    claims_for,
    crashing_resolver,
    hs_token,
)

# --- L02: the token in no log line, reason, subprotocol, exception or signal --------------------


async def resolver_quoting_its_input(claims: Mapping[str, Any], scope: Any) -> Any:
    """A failing project resolver whose error message quotes everything it was given."""
    raise RuntimeError(f"lookup failed for {dict(claims)!r} in {scope!r}")


async def revocation_quoting_its_input(claims: Mapping[str, Any]) -> bool:
    raise ConnectionError(f"denylist unreachable while checking {dict(claims)!r}")


@pytest.mark.parametrize(
    "settings",
    [
        pytest.param({"USER_RESOLVER": resolver_quoting_its_input}, id="L02-resolver-error"),
        pytest.param({"REVOCATION_CHECK": revocation_quoting_its_input}, id="L02-revocation-error"),
    ],
)
async def test_L02_hook_errors_leave_no_secret_in_logs(
    settings: dict[str, Any], kit: Kit, caplog: pytest.LogCaptureFixture
) -> None:
    """A failing hook's exception text (here: every claim, and the scope it was handed) is
    not logged: the middleware logs the exception's type only, without a traceback, and
    closes 4503. (The scope a resolver gets holds no token at all.)"""
    secret = "s3cr3t-" + uuid.uuid4().hex
    token = kit.token(secret_echo=secret)
    await assert_refused(
        Attempt(carrying(token, "subprotocol").scope, (token, secret)),
        UNAVAILABLE,
        settings={**HS_PROFILE, **settings},
        caplog=caplog,
    )


@pytest.mark.parametrize(
    "signal",
    [
        pytest.param("authentication_failed", id="L02-failure-signal"),
        pytest.param("authenticated", id="L02-success-signal"),
    ],
)
async def test_L02_signal_receivers_never_see_the_token(
    signal: str, kit: Kit, caplog: pytest.LogCaptureFixture
) -> None:
    """What receivers get (the scope, the error, the claims) holds no token; a receiver that
    raises with everything it got in the message changes nothing and leaks nothing."""
    seen: list[str] = []

    def receiver(sender: Any, **kwargs: Any) -> None:
        text = repr(kwargs) + str(kwargs.get("error", ""))
        seen.append(text)
        raise ValueError(text)

    token = kit.token() if signal == "authenticated" else kit.token(exp=now() - 10)
    signal_object = getattr(signals, signal)
    signal_object.connect(receiver, dispatch_uid="test_L02")
    caplog.set_level(logging.DEBUG)
    try:
        inner = RecordingApp()
        result = await handshake(
            JWTAuthMiddleware(inner),
            carrying(token, "query").scope,
            accepted=signal == "authenticated",
        )
    finally:
        signal_object.disconnect(dispatch_uid="test_L02")

    assert len(seen) == 1
    assert inner.called == (signal == "authenticated")
    if signal == "authentication_failed":
        assert refused_outcome(result) == (4440, EXPIRED)
    assert_nothing_leaked([*seen, log_text(caplog.records)], (token,))


def test_L02_uvicorn_access_line_is_redacted_by_the_documented_filter() -> None:
    """uvicorn logs the WebSocket path with its query string; ``RedactTokens`` on its logger
    masks the token (the query source's documented leak, RFC 6750 section 2.3)."""
    token = hs_token(claims_for())
    record = logging.LogRecord(
        "uvicorn.error",
        logging.INFO,
        __file__,
        1,
        '%s - "WebSocket %s" [accepted]',
        ("127.0.0.1:5000", f"/ws/chat/?room=1&token={token}"),
        None,
    )
    assert RedactTokens().filter(record)
    assert_nothing_leaked([record.getMessage()], (token,))
    assert "room=1" in record.getMessage()


# --- L03: close semantics for every reason ------------------------------------------------------


@dataclass(frozen=True)
class Failure:
    """One way to be refused: the token, extra settings, the code and reason expected."""

    token: Callable[[Kit], str | None]
    settings: Mapping[str, Any]
    code: CloseCode
    reason: str
    status: int


FAILURES = {
    "token_malformed": Failure(lambda k: "x.y", {}, CloseCode.TOKEN_MALFORMED, MALFORMED, 401),
    "token_missing": Failure(lambda k: None, {}, CloseCode.UNAUTHENTICATED, "token_missing", 401),
    "token_invalid": Failure(
        lambda k: k.hs(key=ATTACKER_SECRET), {}, CloseCode.UNAUTHENTICATED, INVALID, 401
    ),
    "user_rejected": Failure(
        lambda k: k.token(user_id="2"), {}, CloseCode.USER_REJECTED, "user_rejected", 403
    ),
    "token_expired": Failure(
        lambda k: k.token(exp=now() - 5), {}, CloseCode.TOKEN_EXPIRED, EXPIRED, 401
    ),
    "token_revoked": Failure(
        lambda k: k.token(),
        {"REVOCATION_CHECK": always_revoked},
        CloseCode.TOKEN_REVOKED,
        "token_revoked",
        401,
    ),
    "auth_unavailable": Failure(
        lambda k: k.token(),
        {"USER_RESOLVER": crashing_resolver},
        CloseCode.AUTH_UNAVAILABLE,
        UNAVAILABLE,
        503,
    ),
}


def offering(token: str | None, *, marker: bool, extensions: dict[str, Any]) -> dict[str, Any]:
    """A scope offering ``chat`` (and the marker and token when ``marker``), or the token in
    the query string."""
    if marker:
        offered = ["chat", MARKER] + ([token] if token is not None else [])
        scope = ws_scope(subprotocols=offered)
    else:
        query = b"" if token is None else b"token=" + token.encode()
        scope = ws_scope(subprotocols=["chat"], query_string=query)
    scope["extensions"] = extensions
    return scope


async def run_rejection(app: Any, scope: dict[str, Any]) -> list[dict[str, Any]]:
    """Connect and collect every message the middleware sends until it returns."""
    communicator = ApplicationCommunicator(app, scope)
    await communicator.send_input({"type": "websocket.connect"})
    await communicator.wait(2)
    assert communicator.future.exception() is None
    messages = []
    while not communicator.output_queue.empty():
        messages.append(communicator.output_queue.get_nowait())
    return messages


@pytest.mark.parametrize("marker", [True, False], ids=["marker-offered", "no-marker"])
@pytest.mark.parametrize("reason", [pytest.param(r, id=f"L03-{r}") for r in FAILURES])
async def test_L03_close_mode_accepts_then_closes_with_the_code(
    reason: str, marker: bool, kit: Kit
) -> None:
    """``REJECT_MODE="close"``: accept (naming the marker when offered, else another offered
    subprotocol that cannot be a token) then close with the code: a private-use code (RFC
    6455 section 7.4.2), a plain ``int``, the reason of the table, at most 123 bytes."""
    failure = FAILURES[reason]
    inner = RecordingApp()
    app = JWTAuthMiddleware(inner, settings=dict(failure.settings))
    messages = await run_rejection(app, offering(failure.token(kit), marker=marker, extensions={}))

    assert messages == [
        {"type": "websocket.accept", "subprotocol": MARKER if marker else "chat"},
        {"type": "websocket.close", "code": int(failure.code), "reason": failure.reason},
    ]
    code = messages[1]["code"]
    assert type(code) is int
    assert 4000 <= code <= 4999
    assert len(messages[1]["reason"].encode()) <= 123
    assert not inner.called


@pytest.mark.parametrize("reason", [pytest.param(r, id=f"L03-deny-{r}") for r in FAILURES])
async def test_L03_deny_mode_answers_http_or_closes_before_accept(reason: str, kit: Kit) -> None:
    """``REJECT_MODE="deny"``: an HTTP status and a JSON body with the code where the server
    offers the denial-response extension, otherwise a close before any accept."""
    failure = FAILURES[reason]
    settings = {**failure.settings, "REJECT_MODE": "deny"}
    token = failure.token(kit)

    with_extension = await run_rejection(
        JWTAuthMiddleware(RecordingApp(), settings=settings),
        offering(token, marker=True, extensions={"websocket.http.response": {}}),
    )
    without = await run_rejection(
        JWTAuthMiddleware(RecordingApp(), settings=settings),
        offering(token, marker=True, extensions={}),
    )

    start, body = with_extension
    assert start["type"] == "websocket.http.response.start"
    assert start["status"] == failure.status
    assert body["type"] == "websocket.http.response.body"
    assert json.loads(body["body"]) == {"code": int(failure.code), "reason": failure.reason}
    headers = dict(start["headers"])
    if failure.status == 401:
        assert headers[b"www-authenticate"].startswith(b"Bearer")
    assert without == [
        {"type": "websocket.close", "code": int(failure.code), "reason": failure.reason}
    ]


# --- L04: unexpected exceptions inside the middleware -------------------------------------------


def sync_resolver_with_a_bug(claims: Mapping[str, Any], scope: Any) -> Any:
    return claims["no-such-claim"]  # KeyError


@pytest.mark.parametrize(
    ("scope_of", "settings"),
    [
        pytest.param(
            lambda token: carrying(token, "subprotocol").scope,
            {"USER_RESOLVER": crashing_resolver},
            id="L04-async-resolver-raises",
        ),
        pytest.param(
            lambda token: carrying(token, "query").scope,
            {"USER_RESOLVER": sync_resolver_with_a_bug},
            id="L04-sync-resolver-raises",
        ),
        pytest.param(
            # A server handing over a header value as str instead of bytes: extraction fails.
            lambda token: {
                **carrying(token, "subprotocol").scope,
                "headers": [(b"sec-websocket-protocol", f"{MARKER}, {token}")],
            },
            {},
            id="L04-malformed-scope",
        ),
        pytest.param(
            lambda token: carrying(token, "subprotocol").scope,
            {"ALGORITHMS": ["HS256"], "SIGNING_KEY": "short"},
            id="L04-misconfigured",
        ),
    ],
)
async def test_L04_unexpected_exception_closes_4503_without_running_the_app(
    scope_of: Callable[[str], dict[str, Any]],
    settings: dict[str, Any],
    kit: Kit,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """ERR:INTERNAL: closed 4503, the inner app never runs, nothing escapes, the cause is
    logged (WARNING for a failing hook, ERROR for a bug or a misconfiguration), the token
    is not."""
    inner = RecordingApp()
    token = kit.token()
    caplog.set_level(logging.INFO, "channels_jwt")
    app = JWTAuthMiddleware(inner, settings=settings)

    result = await handshake(app, scope_of(token), accepted=False)

    assert refused_outcome(result) == (4503, UNAVAILABLE)
    assert result.finished_cleanly
    assert not inner.called
    assert [record for record in caplog.records if record.levelno >= logging.WARNING]
    assert_nothing_leaked([log_text(caplog.records)], (token,))
