"""The ASGI servers the live tests run, how each is started, and what each one does.

:data:`SERVERS` is the one place naming them: every fixture parametrized by server takes its
list from here. :data:`BEHAVIOUR` records, per server, what a client or the application sees
where the servers differ; the live tests assert exactly that, so a change on either side
shows up as a failure, and ``docs/servers.md`` describes the same table.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

#: Every server the live tests run, in the order the test ids show them.
SERVERS = ("uvicorn", "daphne", "hypercorn", "granian")
#: What the servers serve unless told otherwise.
DEFAULT_APPLICATION = "tests.live.asgi_app:application"
#: granian started without ``--interface asgi`` (a mistake one test shows the result of).
GRANIAN_DEFAULT_INTERFACE = "granian-default-interface"


def server_command(
    name: str,
    port: int,
    application: str = DEFAULT_APPLICATION,
    tls: tuple[Path, Path] | None = None,
) -> list[str]:
    """The command line that starts server ``name`` serving ``application`` on ``port``.

    One process per server where the server allows it. Access logs are on for every server
    (uvicorn and daphne log accesses by default; hypercorn and granian need a flag), so the
    tests see what an operator's logs would hold. ``tls`` (a certificate file and its key
    file) serves TLS on ``port`` instead of plain TCP.
    """
    python = [sys.executable, "-m"]
    certificate, key = tls or (None, None)
    if name == "uvicorn":
        secure = ["--ssl-certfile", str(certificate), "--ssl-keyfile", str(key)] if tls else []
        bind = ["--host", "127.0.0.1", "--port", str(port)]
        return [*python, "uvicorn", application, *bind, *secure]
    if name == "daphne":
        endpoint = f"ssl:{port}:interface=127.0.0.1:privateKey={key}:certKey={certificate}"
        bind = ["-e", endpoint] if tls else ["-b", "127.0.0.1", "-p", str(port)]
        return [*python, "daphne", *bind, application]
    if name == "hypercorn":
        # Without ``--access-logfile`` hypercorn logs no request at all.
        bind = ["--bind", f"127.0.0.1:{port}"]
        secure = ["--certfile", str(certificate), "--keyfile", str(key)] if tls else []
        return [*python, "hypercorn", *bind, *secure, "--access-logfile", "-", application]
    if name in {"granian", GRANIAN_DEFAULT_INTERFACE}:
        # granian's default interface is RSGI, its own protocol: ASGI must be asked for.
        interface = ["--interface", "asgi"] if name == "granian" else []
        bind = ["--host", "127.0.0.1", "--port", str(port)]
        secure = ["--ssl-certificate", str(certificate), "--ssl-keyfile", str(key)] if tls else []
        return [*python, "granian", *interface, *bind, *secure, "--access-log", application]
    raise ValueError(f"unknown server {name!r}; expected one of {SERVERS}")


@dataclass(frozen=True)
class ServerBehaviour:
    """How one server treats what the middleware (and the client) sends it."""

    #: Whether close reasons reach the client (daphne sends the code alone).
    passes_close_reasons: bool
    #: Whether ``scope["extensions"]`` offers ``websocket.http.response`` (the denial
    #: response): ``REJECT_MODE="deny"`` answers with 401/403/429/503 and a JSON body only there.
    denial_response: bool
    #: Whether the denial response also carries the upgrade's ``Connection: upgrade``,
    #: ``Upgrade: websocket`` and ``Sec-WebSocket-Accept`` headers although it refuses it.
    denial_keeps_upgrade_headers: bool
    #: Whether ``scope["subprotocols"]`` holds the offered values percent-decoded (and split
    #: again at decoded commas), while the ``sec-websocket-protocol`` header stays as sent.
    decodes_subprotocols: bool
    #: The type of the port in ``scope["client"]`` (the ASGI specification says ``int``).
    client_port_type: type
    #: Whether the server's own log shows the request's query string (and so a ``?token=``).
    logs_query_string: bool
    #: A fragment of the line the server logs for every WebSocket handshake (``{path}``: its
    #: path, without the query string).
    handshake_log_line: str
    #: A fragment of the line it logs for a ``REJECT_MODE="deny"`` refusal of an expired token
    #: (``{path}``: the request's path).
    denial_log_line: str
    #: What it logs at start-up about Channels' ``ProtocolTypeRouter``, which refuses the
    #: ASGI ``lifespan`` scope (``None``: it sends no lifespan scope, and logs nothing).
    lifespan_log_line: str | None
    #: ``scope["scheme"]`` of a WebSocket over plain TCP, and over TLS (``None``: no
    #: ``"scheme"`` key; the ASGI specification then means ``"ws"``). A cookie's ``Origin`` is
    #: judged against it: ``https`` pages match only ``"wss"``.
    websocket_scheme: str | None
    tls_websocket_scheme: str | None
    #: Whether ``X-Forwarded-Proto: https`` from a loopback client (a proxy that terminates
    #: TLS) makes ``scope["scheme"]`` ``"wss"``, with the server's default options.
    takes_forwarded_proto: bool
    #: The ERROR line it logs after a denial response although the client got the right
    #: status (a server bug), or ``None`` when it logs no error.
    denial_error_line: str | None = None


def _uvicorn_version() -> tuple[int, ...]:
    return tuple(int(part) for part in version("uvicorn").split(".")[:2])


#: uvicorn 0.54 (the newest release for Python 3.10) logs an ERROR after every denial
#: response with its default WebSocket implementation; 0.55 no longer does.
_UVICORN_DENIAL_ERROR = (
    "ERROR:    ASGI callable returned without completing handshake."
    if _uvicorn_version() < (0, 55)
    else None
)


BEHAVIOUR = {
    # uvicorn logs ``"WebSocket /path?query" [accepted]`` (or the refusal's status) at INFO.
    "uvicorn": ServerBehaviour(
        passes_close_reasons=True,
        denial_response=True,
        denial_keeps_upgrade_headers=False,
        decodes_subprotocols=False,
        client_port_type=int,
        logs_query_string=True,
        handshake_log_line='"WebSocket {path}',
        denial_log_line='"WebSocket {path}" 401',
        lifespan_log_line="INFO:     ASGI 'lifespan' protocol appears unsupported.",
        websocket_scheme="ws",
        tls_websocket_scheme="wss",
        takes_forwarded_proto=True,
        denial_error_line=_UVICORN_DENIAL_ERROR,
    ),
    # daphne drops close reasons, has no denial-response extension (a close before accept is
    # its only refusal: HTTP 403), and its access log shows the path only.
    "daphne": ServerBehaviour(
        passes_close_reasons=False,
        denial_response=False,
        denial_keeps_upgrade_headers=False,
        decodes_subprotocols=True,
        client_port_type=int,
        logs_query_string=False,
        handshake_log_line='"WSCONNECTING {path}"',
        denial_log_line='"WSREJECT {path}"',
        lifespan_log_line=None,
        websocket_scheme=None,
        tls_websocket_scheme=None,
        takes_forwarded_proto=False,
    ),
    # hypercorn's access log (off unless ``--access-logfile``) shows ``"GET /path 1.1"``: its
    # default format has the path only (its ``%(R)s``, ``%(Uq)s`` and ``%(q)s`` atoms, and the
    # ``%({sec-websocket-protocol}i)s`` header atom, would log the token).
    "hypercorn": ServerBehaviour(
        passes_close_reasons=True,
        denial_response=True,
        denial_keeps_upgrade_headers=False,
        decodes_subprotocols=False,
        client_port_type=int,
        logs_query_string=False,
        handshake_log_line='"GET {path} 1.1" 101',
        denial_log_line='"GET {path} 1.1" 401',
        lifespan_log_line=(
            "[WARNING] ASGI Framework Lifespan error, continuing without Lifespan support"
        ),
        websocket_scheme="ws",
        tls_websocket_scheme="wss",
        takes_forwarded_proto=False,
    ),
    # granian (``--interface asgi``) gives the client port as a string, and its denial
    # response keeps the upgrade headers. Its access log (``--access-log``) shows the path
    # only, with ``-`` for the method, and status 101 whether the upgrade happened or not.
    "granian": ServerBehaviour(
        passes_close_reasons=True,
        denial_response=True,
        denial_keeps_upgrade_headers=True,
        decodes_subprotocols=False,
        client_port_type=str,
        logs_query_string=False,
        handshake_log_line='"- {path} HTTP/1.1" 101',
        # The same line as for an upgrade: granian's access log says 101 for a refusal too.
        denial_log_line='"- {path} HTTP/1.1" 101',
        lifespan_log_line="[WARNING] ASGI Lifespan errored, continuing without Lifespan support",
        websocket_scheme="ws",
        tls_websocket_scheme="wss",
        takes_forwarded_proto=False,
    ),
}
