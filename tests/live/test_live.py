"""What real clients see from real servers, driven by ``websockets``.

Each test runs against every server of :data:`tests.live.servers.SERVERS` (the
``asgi_server`` fixture is parametrized). Where the servers differ,
:data:`~tests.live.servers.BEHAVIOUR` records what each one does, and the tests assert
exactly that, so a change on either side shows up here (and ``docs/servers.md`` says the same).
"""

from __future__ import annotations

import asyncio
import json
import ssl
import uuid
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.frames import Close
from websockets.typing import Origin, Subprotocol

from tests import harness
from tests.harness import MARKER, log_containing, tagged
from tests.jwks_server import Certificate
from tests.live.asgi_app import COOKIE_NAME, REVOKED_JTI_PREFIX
from tests.live.conftest import LiveServer, LiveUsers, running_server
from tests.live.server_settings import SIGNING_KEY
from tests.live.servers import BEHAVIOUR, GRANIAN_DEFAULT_INTERFACE

#: Tokens signed with this suite's servers' key.
token_for = partial(harness.token_for, key=SIGNING_KEY)
expired_token_for = partial(harness.expired_token_for, key=SIGNING_KEY, expired_for=60)

pytestmark = pytest.mark.live

#: Seconds any single client step (handshake, frame, close, log line) may take.
TIMEOUT = 5.0
DENIAL_EXTENSION = "websocket.http.response"


def open_connection(
    server: LiveServer, path: str, subprotocols: list[str] | None = None
) -> connect:
    """``websockets`` ``connect`` with timeouts, so a misbehaving server cannot hang a test."""
    return connect(
        server.url(path),
        # ``[]`` would send an empty Sec-WebSocket-Protocol header: offer none at all.
        subprotocols=subprotocols or None,
        open_timeout=TIMEOUT,
        close_timeout=TIMEOUT,
    )


async def receive_json(ws: ClientConnection) -> Any:
    """The next frame, parsed as JSON."""
    return json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))


def handed_over(frame: dict[str, Any]) -> dict[str, Any]:
    """The echo frame without what the server (not the middleware) put in the scope."""
    return {
        name: value
        for name, value in frame.items()
        if name not in {"scheme", "extensions", "client_port_type", "scope_text"}
    }


async def closed_after_upgrade(
    server: LiveServer, path: str, subprotocols: list[str] | None = None
) -> tuple[int, list[str], Close]:
    """Complete the upgrade, then wait for the server's close.

    The upgrade's status, its ``Sec-WebSocket-Protocol`` response headers, and the close frame.
    """
    async with open_connection(server, path, subprotocols) as ws:
        status = ws.response.status_code
        selected = ws.response.headers.get_all("Sec-WebSocket-Protocol")
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), TIMEOUT)
    assert closed.value.rcvd is not None, "no close frame received"
    return status, selected, closed.value.rcvd


async def refused_upgrade(
    server: LiveServer, path: str, subprotocols: list[str] | None = None
) -> InvalidStatus:
    """The ``InvalidStatus`` raised when the server refuses the upgrade with HTTP."""
    with pytest.raises(InvalidStatus) as refused:
        async with open_connection(server, path, subprotocols):
            pass
    return refused.value


# The handshake that succeeds: the marker is echoed, the token reaches nobody.


@pytest.mark.parametrize(
    ("offered_before", "app_sees"),
    [([], []), (["chat.v1"], ["chat.v1"])],
    ids=["marker-only", "after-app-protocol"],
)
async def test_subprotocol_token_selects_marker_and_reaches_app_without_token(
    asgi_server: LiveServer,
    live_users: LiveUsers,
    offered_before: list[str],
    app_sees: list[str],
) -> None:
    token = token_for(live_users.active)

    async with open_connection(asgi_server, "/ws/echo/", [*offered_before, MARKER, token]) as ws:
        selected = ws.response.headers.get_all("Sec-WebSocket-Protocol")
        frame = await receive_json(ws)

    assert selected == [MARKER]
    assert handed_over(frame) == {
        "user": {"pk": live_users.active, "username": "carol-live"},
        "source": "subprotocol",
        "subprotocols": app_sees,
        "query_string": "",
        "protocol_headers": [", ".join(app_sees)] if app_sees else [],
    }


async def test_percent_encoded_subprotocol_reaches_app_as_the_server_decodes_it(
    asgi_server: LiveServer, live_users: LiveUsers
) -> None:
    token = token_for(live_users.active)

    async with open_connection(asgi_server, "/ws/echo/", ["chat%2Cv1", MARKER, token]) as ws:
        selected = ws.subprotocol
        frame = await receive_json(ws)

    decoded = BEHAVIOUR[asgi_server.name].decodes_subprotocols
    assert selected == MARKER
    assert frame["subprotocols"] == (["chat", "v1"] if decoded else ["chat%2Cv1"])
    # The header keeps what the client sent (less the token) on every server.
    assert frame["protocol_headers"] == ["chat%2Cv1"]


def holds_part_of(text: str, token: str) -> bool:
    """Whether ``text`` holds the payload or the signature of ``token``, in any case."""
    _, payload, signature = token.split(".")
    return payload.lower() in text.lower() or signature.lower() in text.lower()


async def test_a_percent_encoded_subprotocol_token_leaves_no_copy_in_the_scope(
    asgi_server: LiveServer, live_users: LiveUsers
) -> None:
    token = token_for(live_users.active)
    encoded = f"%{ord(token[0]):02X}{token[1:]}"
    if not BEHAVIOUR[asgi_server.name].decodes_subprotocols:
        # The entry is the token only for a server that decodes it: elsewhere it is malformed.
        _, _, close = await closed_after_upgrade(asgi_server, "/ws/echo/", [MARKER, encoded])
        assert close.code == 4400
        return

    async with open_connection(asgi_server, "/ws/echo/", ["chat", MARKER, encoded]) as ws:
        frame = await receive_json(ws)

    assert (frame["source"], frame["subprotocols"]) == ("subprotocol", ["chat"])
    assert frame["protocol_headers"] == ["chat"]
    assert not holds_part_of(frame["scope_text"], token)


async def test_a_second_copy_the_middleware_did_not_use_is_not_in_the_scope(
    asgi_server: LiveServer, live_users: LiveUsers
) -> None:
    # The default sources take ?token=; "header" is not one of them, yet its copy must go.
    token = token_for(live_users.active)
    headers = {"Authorization": f"Bearer {token}", "X-Kept": "1"}
    client = connect(
        asgi_server.url(f"/ws/echo/?room=7&token={token}"),
        additional_headers=headers,
        open_timeout=TIMEOUT,
        close_timeout=TIMEOUT,
    )
    async with client as ws:
        frame = await receive_json(ws)

    assert (frame["source"], frame["query_string"]) == ("query", "room=7")
    assert not holds_part_of(frame["scope_text"], token)
    assert "x-kept" in frame["scope_text"]


# A cookie counts only from the request's own origin (scheme, host and port).


def client_tls(certificate: Certificate) -> ssl.SSLContext:
    """A client TLS context that trusts the servers' self-signed certificate."""
    return ssl.create_default_context(cafile=str(certificate.certificate_file))


def closed_for_python_3_10(ws: ClientConnection) -> None:
    """Close the transport of a finished connection, which Python 3.10 may leave open.

    Its asyncio never marks a TLS transport closed when the server closed the TCP connection
    first (daphne and granian do), so collecting it warns (``ResourceWarning``); 3.11 and
    later do.
    """
    ws.transport.close()


async def cookie_outcome(
    server: LiveServer,
    token: str,
    origin: str,
    *,
    headers: dict[str, str] | None = None,
    ssl: ssl.SSLContext | None = None,
) -> str | int:
    """A browser-like handshake to ``/ws/cookie/``: the token cookie, sent from ``origin``.

    ``websockets`` sends ``Host: 127.0.0.1:<port>``, as a browser would for this URL. The
    source the application was handed on success, else the close code; the token must not be
    in the scope in either case.
    """
    client = connect(
        server.url("/ws/cookie/"),
        origin=Origin(origin),
        additional_headers={"Cookie": f"theme=dark; {COOKIE_NAME}={token}", **(headers or {})},
        ssl=ssl,
        open_timeout=TIMEOUT,
        close_timeout=TIMEOUT,
    )
    async with client as ws:
        try:
            frame = await receive_json(ws)
        except ConnectionClosed as closed:
            close = closed.rcvd
        else:
            close = None
    closed_for_python_3_10(ws)
    if close is not None:
        expected = "token_missing" if BEHAVIOUR[server.name].passes_close_reasons else ""
        assert close.reason == expected
        return close.code
    assert frame["user"]["username"] == "carol-live"
    assert "theme=dark" in frame["scope_text"]
    assert not holds_part_of(frame["scope_text"], token)
    return str(frame["source"])


async def test_cookie_from_the_servers_own_origin_authenticates(
    asgi_server: LiveServer, live_users: LiveUsers
) -> None:
    token = token_for(live_users.active)

    outcome = await cookie_outcome(asgi_server, token, f"http://127.0.0.1:{asgi_server.port}")

    assert outcome == "cookie"


@pytest.mark.parametrize(
    "origin",
    [
        pytest.param("http://127.0.0.1:{other_port}", id="other-port"),
        pytest.param("https://127.0.0.1:{port}", id="https-page"),
        pytest.param("http://localhost:{port}", id="other-allowed-host"),
    ],
)
async def test_cookie_from_another_origin_is_treated_as_absent(
    asgi_server: LiveServer, live_users: LiveUsers, origin: str
) -> None:
    page = origin.format(port=asgi_server.port, other_port=asgi_server.port + 1)

    outcome = await cookie_outcome(asgi_server, token_for(live_users.active), page)

    assert outcome == 4401


async def test_scope_scheme_is_the_servers(asgi_server: LiveServer, live_users: LiveUsers) -> None:
    async with open_connection(
        asgi_server, "/ws/echo/", [MARKER, token_for(live_users.active)]
    ) as ws:
        frame = await receive_json(ws)

    assert frame["scheme"] == BEHAVIOUR[asgi_server.name].websocket_scheme


async def test_scope_scheme_over_tls_is_the_servers(
    tls_server: LiveServer, live_users: LiveUsers, loopback_certificate: Certificate
) -> None:
    client = connect(
        tls_server.url("/ws/echo/"),
        subprotocols=[Subprotocol(MARKER), Subprotocol(token_for(live_users.active))],
        ssl=client_tls(loopback_certificate),
        open_timeout=TIMEOUT,
        close_timeout=TIMEOUT,
    )
    async with client as ws:
        frame = await receive_json(ws)
    closed_for_python_3_10(ws)

    assert frame["scheme"] == BEHAVIOUR[tls_server.name].tls_websocket_scheme


@pytest.mark.parametrize("page_scheme", ["https", "http"])
async def test_cookie_over_tls_counts_only_from_the_scheme_the_scope_names(
    tls_server: LiveServer,
    live_users: LiveUsers,
    loopback_certificate: Certificate,
    page_scheme: str,
) -> None:
    token = token_for(live_users.active)
    page = f"{page_scheme}://127.0.0.1:{tls_server.port}"

    outcome = await cookie_outcome(tls_server, token, page, ssl=client_tls(loopback_certificate))

    # A scope without "scheme" means "ws" (the ASGI default), so http: daphne, even over TLS.
    scope_says = "https" if BEHAVIOUR[tls_server.name].tls_websocket_scheme == "wss" else "http"
    assert outcome == ("cookie" if page_scheme == scope_says else 4401)


async def test_cookie_behind_a_tls_proxy_counts_where_the_server_takes_x_forwarded_proto(
    asgi_server: LiveServer, live_users: LiveUsers
) -> None:
    token = token_for(live_users.active)
    page = f"https://127.0.0.1:{asgi_server.port}"

    outcome = await cookie_outcome(asgi_server, token, page, headers={"X-Forwarded-Proto": "https"})

    assert outcome == ("cookie" if BEHAVIOUR[asgi_server.name].takes_forwarded_proto else 4401)


async def test_query_token_accepted_and_removed_from_query_string(
    asgi_server: LiveServer, live_users: LiveUsers
) -> None:
    token = token_for(live_users.active)

    async with open_connection(asgi_server, f"/ws/echo/?room=7&token={token}") as ws:
        selected = ws.subprotocol
        frame = await receive_json(ws)

    assert selected is None
    assert handed_over(frame) == {
        "user": {"pk": live_users.active, "username": "carol-live"},
        "source": "query",
        "subprotocols": [],
        "query_string": "room=7",
        "protocol_headers": [],
    }


async def test_scope_extensions_offer_the_denial_response_where_the_server_has_it(
    asgi_server: LiveServer, live_users: LiveUsers
) -> None:
    async with open_connection(
        asgi_server, "/ws/echo/", [MARKER, token_for(live_users.active)]
    ) as ws:
        frame = await receive_json(ws)

    offered = DENIAL_EXTENSION in frame["extensions"]
    assert offered is BEHAVIOUR[asgi_server.name].denial_response


async def test_scope_client_port_has_the_servers_type(
    asgi_server: LiveServer, live_users: LiveUsers
) -> None:
    async with open_connection(
        asgi_server, "/ws/echo/", [MARKER, token_for(live_users.active)]
    ) as ws:
        frame = await receive_json(ws)

    assert frame["client_port_type"] == BEHAVIOUR[asgi_server.name].client_port_type.__name__


# REJECT_MODE="close": every close code of the handshake reaches the client.

REJECTIONS = [
    pytest.param("expired", 4440, "token_expired", id="expired-4440"),
    pytest.param("garbage", 4400, "token_malformed", id="garbage-4400"),
    pytest.param("missing", 4401, "token_missing", id="missing-4401"),
    pytest.param("bad-signature", 4401, "token_invalid", id="bad-signature-4401"),
    pytest.param("inactive-user", 4403, "user_rejected", id="inactive-user-4403"),
    pytest.param("revoked", 4441, "token_revoked", id="revoked-4441"),
]


def offered_for(case: str, users: LiveUsers) -> list[str]:
    """The subprotocols a client offers in rejection ``case``."""
    tokens = {
        "expired": lambda: expired_token_for(users.active),
        "garbage": lambda: "not-a-jwt",
        "bad-signature": lambda: token_for(users.active, key=SIGNING_KEY[::-1]),
        "inactive-user": lambda: token_for(users.inactive),
        "revoked": lambda: token_for(users.active, jti=f"{REVOKED_JTI_PREFIX}{uuid.uuid4().hex}"),
    }
    return [MARKER, tokens[case]()] if case in tokens else []


def route_for(case: str) -> str:
    """The close-mode route of rejection ``case`` (only one route checks revocation)."""
    return "/ws/revocable/" if case == "revoked" else "/ws/echo/"


@pytest.mark.parametrize(("case", "code", "reason"), REJECTIONS)
async def test_rejection_completes_upgrade_then_closes_with_code(
    asgi_server: LiveServer, live_users: LiveUsers, case: str, code: int, reason: str
) -> None:
    offered = offered_for(case, live_users)

    status, selected, close = await closed_after_upgrade(asgi_server, route_for(case), offered)

    assert status == 101
    assert selected == ([MARKER] if offered else [])
    assert close.code == code


@pytest.mark.parametrize(("case", "code", "reason"), REJECTIONS)
async def test_rejection_close_reason_reaches_client_only_where_server_passes_it(
    asgi_server: LiveServer, live_users: LiveUsers, case: str, code: int, reason: str
) -> None:
    offered = offered_for(case, live_users)

    _, _, close = await closed_after_upgrade(asgi_server, route_for(case), offered)

    expected = reason if BEHAVIOUR[asgi_server.name].passes_close_reasons else ""
    assert (close.code, close.reason) == (code, expected)


async def test_close_before_accept_is_an_empty_http_403_on_every_server(
    asgi_server: LiveServer,
) -> None:
    refused = await refused_upgrade(asgi_server, "/ws/refuse/", ["chat.v1"])

    assert refused.response.status_code == 403
    assert bytes(refused.response.body or b"") == b""


# REJECT_MODE="deny": an HTTP refusal where the server has the denial-response extension.

DENIALS = [
    pytest.param(
        "expired", 401, 'Bearer error="invalid_token"', 4440, "token_expired", id="expired-401"
    ),
    pytest.param("missing", 401, "Bearer", 4401, "token_missing", id="missing-401"),
    pytest.param("inactive-user", 403, None, 4403, "user_rejected", id="inactive-user-403"),
    pytest.param("lookup-down", 503, None, 4503, "auth_unavailable", id="lookup-down-503"),
]


async def test_deny_route_accepts_valid_token(
    asgi_server: LiveServer, live_users: LiveUsers
) -> None:
    async with open_connection(
        asgi_server, "/ws/deny/", [MARKER, token_for(live_users.active)]
    ) as ws:
        selected = ws.subprotocol
        frame = await receive_json(ws)

    assert selected == MARKER
    assert frame["user"] == {"pk": live_users.active, "username": "carol-live"}


@pytest.mark.parametrize(("case", "status", "challenge", "code", "reason"), DENIALS)
async def test_deny_route_refuses_with_http_status_challenge_and_json_body(
    asgi_server: LiveServer,
    live_users: LiveUsers,
    case: str,
    status: int,
    challenge: str | None,
    code: int,
    reason: str,
) -> None:
    if case == "lookup-down":
        route, offered = "/ws/deny-down/", [MARKER, token_for(live_users.active)]
    else:
        route, offered = "/ws/deny/", offered_for(case, live_users)

    refused = await refused_upgrade(asgi_server, route, offered)

    response = refused.response
    is_json = response.headers.get("Content-Type") == "application/json"
    seen = (
        response.status_code,
        response.headers.get("WWW-Authenticate"),
        json.loads(response.body) if is_json else None,
    )
    if BEHAVIOUR[asgi_server.name].denial_response:
        assert seen == (status, challenge, {"code": code, "reason": reason})
    else:  # a close before accept: a bare 403, whatever the code
        assert seen == (403, None, None)


async def test_deny_response_carries_upgrade_headers_only_where_the_server_adds_them(
    asgi_server: LiveServer, live_users: LiveUsers
) -> None:
    refused = await refused_upgrade(
        asgi_server, "/ws/deny/", [MARKER, expired_token_for(live_users.active)]
    )

    headers = refused.response.headers
    upgrade_headers = {
        "Upgrade": headers.get("Upgrade"),
        "Connection": headers.get("Connection", "").lower() or None,
        "Sec-WebSocket-Accept": "Sec-WebSocket-Accept" in headers,
    }
    if BEHAVIOUR[asgi_server.name].denial_keeps_upgrade_headers:
        expected = {"Upgrade": "websocket", "Connection": "upgrade", "Sec-WebSocket-Accept": True}
    else:
        assert upgrade_headers["Connection"] in {None, "close"}
        expected = {**upgrade_headers, "Upgrade": None, "Sec-WebSocket-Accept": False}
    assert upgrade_headers == expected


async def test_granian_without_interface_asgi_refuses_every_handshake(
    live_dir: Path, live_users: LiveUsers
) -> None:
    with running_server(GRANIAN_DEFAULT_INTERFACE, live_dir) as server:
        token = token_for(live_users.active)
        refused = await refused_upgrade(server, "/ws/echo/", [MARKER, token])
        log = await log_containing(server.log, "TypeError", name=server.name)

    assert refused.response.status_code == 403
    # RSGI calls the application with (scope, protocol): ASGI's send is missing.
    assert "missing 1 required positional argument: 'send'" in log


# What the servers log.


@pytest.mark.parametrize("expired", [False, True], ids=["valid", "expired"])
async def test_subprotocol_token_never_in_server_log(
    asgi_server: LiveServer, live_users: LiveUsers, expired: bool
) -> None:
    path = tagged("echo")
    if expired:
        token = expired_token_for(live_users.active)
        await closed_after_upgrade(asgi_server, path, [MARKER, token])
        # The middleware's rejection line, logged before the server sends its 101.
        log = await log_containing(
            asgi_server.log, f"code=4440 source=subprotocol path={path} ", name=asgi_server.name
        )
    else:
        token = token_for(live_users.active)
        async with open_connection(asgi_server, path, [MARKER, token]) as ws:
            await receive_json(ws)
        log = await log_containing(
            asgi_server.log,
            BEHAVIOUR[asgi_server.name].handshake_log_line.format(path=path),
            name=asgi_server.name,
        )

    assert token not in log


async def test_query_token_in_server_log_only_where_server_logs_query_strings(
    asgi_server: LiveServer, live_users: LiveUsers
) -> None:
    path = tagged("echo")
    token = token_for(live_users.active)
    async with open_connection(asgi_server, f"{path}?token={token}") as ws:
        await receive_json(ws)

    log = await log_containing(
        asgi_server.log,
        BEHAVIOUR[asgi_server.name].handshake_log_line.format(path=path),
        name=asgi_server.name,
    )

    assert (token in log) is BEHAVIOUR[asgi_server.name].logs_query_string


async def test_denial_is_logged_by_the_server_without_an_error_of_ours(
    asgi_server: LiveServer, live_users: LiveUsers
) -> None:
    behaviour = BEHAVIOUR[asgi_server.name]
    denied, after = tagged("deny"), tagged("echo")
    await refused_upgrade(asgi_server, denied, [MARKER, expired_token_for(live_users.active)])
    denial_line = behaviour.denial_log_line.format(path=denied)
    await log_containing(asgi_server.log, denial_line, name=asgi_server.name)
    # A connection served after the denial bounds what the server logged about it.
    async with open_connection(asgi_server, after, [MARKER, token_for(live_users.active)]) as ws:
        await receive_json(ws)
    log = await log_containing(
        asgi_server.log, behaviour.handshake_log_line.format(path=after), name=asgi_server.name
    )

    logged_meanwhile = log[log.index(denial_line) : log.index(after)]
    if behaviour.denial_error_line is not None:
        assert (
            logged_meanwhile.count("ERROR")
            == logged_meanwhile.count(behaviour.denial_error_line)
            == 1
        )
    else:
        assert "ERROR" not in logged_meanwhile
    assert "Traceback" not in logged_meanwhile


async def test_server_log_says_how_it_took_the_missing_lifespan_support(
    asgi_server: LiveServer,
) -> None:
    # Channels' ProtocolTypeRouter has no "lifespan" entry: it raises for that scope type.
    line = BEHAVIOUR[asgi_server.name].lifespan_log_line

    if line is None:
        assert "lifespan" not in asgi_server.log().lower()
    else:
        await log_containing(asgi_server.log, line, name=asgi_server.name)
