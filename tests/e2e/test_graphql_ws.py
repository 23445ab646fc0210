"""The real graphql-ws client (npm, under Node) against the example's ``/graphql/``, served by
uvicorn and by daphne.

``tests/interop/node/graphql_client.mjs`` runs graphql-ws 6.4.2 (with ``ws`` as its WebSocket,
Node 20 having none) for one subscription and prints every event it sees as a JSON line: each
connection attempt, the ``connection_ack`` payload, each close code, each ``next``. The token
travels in ``connectionParams`` (``connection_init``), which graphql-ws calls again on each
reconnection. The tests start the client, do what the scenario needs over HTTP (post a message
through the ``postMessage`` mutation, log out), and assert on what the client saw: who it is,
which close codes, how many connection attempts graphql-ws made with its default
``shouldRetry`` and with the recommended one (never after 4403 or 4441). GraphQL over HTTP
(``AUTHENTICATE_HTTP``) is checked with plain requests. Every test runs on both servers.

Node.js and npm are required (the locked packages are installed with ``npm ci`` on first use):
without them these tests fail, they never skip.
"""

from __future__ import annotations

import http.cookiejar
import json
import queue
import secrets
import sqlite3
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import closing
from datetime import datetime, timezone
from typing import IO, Any

import pytest

from tests.e2e.server import ACCESS_TOKEN_SECONDS, ExampleServer, running_example
from tests.harness import claims_for, hs_token
from tests.nodejs import INTEROP_DIR, installed_node

pytestmark = pytest.mark.e2e

SERVERS = ["uvicorn", "daphne"]
#: How long any one step may take (seconds): generous for a loaded machine, short for a hang.
TIMEOUT = 15.0
ALICE = ("alice", "alice-demo-password")
BOB = ("bob", "bob-demo-password")
#: graphql-ws' shouldRetry that gives up on a rejected user and a revoked token.
RECOMMENDED = "recommended"
SUBSCRIPTION = """subscription Feed($room: String!) {
  roomMessages(room: $room) { id username text sentAt }
}"""
POST_MESSAGE = """mutation Post($room: String!, $text: String!, $clientId: String!) {
  postMessage(room: $room, text: $text, clientId: $clientId) { id username text }
}"""


@pytest.fixture(scope="module", params=SERVERS)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ExampleServer]:
    """The example project, migrated and seeded, under uvicorn or daphne on a free port."""
    name: str = request.param
    with running_example(tmp_path_factory.mktemp(f"graphql-{name}"), name) as example:
        yield example


@pytest.fixture(scope="module")
def node() -> str:
    """The ``node`` executable, with the locked graphql-ws, ws and graphql installed."""
    return installed_node(INTEROP_DIR, "graphql-ws", "ws", "graphql")


@pytest.fixture
def reason(request: pytest.FixtureRequest) -> Callable[[str], str]:
    """``reason(text)``: the close reason the client receives for ``text``. Daphne (4.2)
    sends close frames without the ASGI message's ``reason``: the client gets ``""``."""
    name = request.node.callspec.params["server"]
    return lambda text: "" if name == "daphne" else text


@pytest.fixture
def room() -> str:
    """A room of this test's own."""
    return f"gql-{uuid.uuid4().hex[:12]}"


class GraphQLClient:
    """``graphql_client.mjs`` running one subscription; its events read as they come."""

    def __init__(self, node: str, spec: dict[str, Any]) -> None:
        self.process = subprocess.Popen(
            [node, "graphql_client.mjs"],
            cwd=INTEROP_DIR,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.queue: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.events: list[dict[str, Any]] = []
        assert self.process.stdout is not None
        self.reader = threading.Thread(target=self._read, args=(self.process.stdout,))
        self.reader.start()
        self.send(spec)

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self.queue.put(json.loads(line))
        self.queue.put(None)  # the process has exited

    def send(self, message: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(message) + "\n")
        self.process.stdin.flush()

    def _next(self, deadline: float) -> dict[str, Any] | None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            pytest.fail(f"timed out; the client's events so far: {self.events}")
        try:
            event = self.queue.get(timeout=remaining)
        except queue.Empty:
            pytest.fail(f"timed out; the client's events so far: {self.events}")
        if event is not None:
            self.events.append(event)
        return event

    def wait_for(self, name: str, *, timeout: float = TIMEOUT) -> dict[str, Any]:
        """The next event called ``name``; fails if the client exits or time runs out."""
        deadline = time.monotonic() + timeout
        while (event := self._next(deadline)) is not None:
            if event["event"] == name:
                return event
        pytest.fail(f"the client exited before {name!r}: {self.events}\n{self.stderr()}")

    def poll(self, name: str, *, timeout: float) -> dict[str, Any] | None:
        """Like :meth:`wait_for`, but ``None`` after ``timeout`` (the client still running)."""
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                event = self.queue.get(timeout=remaining)
            except queue.Empty:
                return None
            if event is None:
                pytest.fail(f"the client exited before {name!r}: {self.events}\n{self.stderr()}")
            self.events.append(event)
            if event["event"] == name:
                return event
        return None

    def finish(self, *, dispose: bool = False) -> list[dict[str, Any]]:
        """Every event, once the client has exited (after disposing of it, if asked)."""
        if dispose:
            self.send({"do": "dispose"})
        deadline = time.monotonic() + TIMEOUT
        while self._next(deadline) is not None:
            pass
        assert self.process.wait(timeout=5) == 0, self.stderr()
        return self.events

    def stderr(self) -> str:
        if self.process.poll() is None or self.process.stderr is None:
            return ""
        return self.process.stderr.read()

    def stop(self) -> None:
        """Kill the client if it is still running; reap it and its reader."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=5)
        self.reader.join(timeout=5)
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture
def subscribe(node: str, server: ExampleServer) -> Iterator[Callable[..., GraphQLClient]]:
    """``subscribe(room, params, **options)``: start a client subscribed to ``room``.

    ``params`` are the ``connectionParams`` of its successive connections (the last one is
    repeated); ``options`` go into the scenario (``shouldRetry``, ``retryAttempts``,
    ``paramsDelayMs``, ...). Retries wait 100 ms, not graphql-ws' seconds of back-off.
    """
    clients: list[GraphQLClient] = []

    def start_client(room: str, params: list[dict[str, Any]], **options: Any) -> GraphQLClient:
        spec = {
            "url": f"ws://127.0.0.1:{server.port}/graphql/",
            "params": params,
            "query": SUBSCRIPTION,
            "variables": {"room": room},
            "retryWaitMs": 100,
            "deadlineMs": int(TIMEOUT * 2000),
            **options,
        }
        client = GraphQLClient(node, spec)
        clients.append(client)
        return client

    yield start_client
    for client in clients:
        client.stop()


def token(
    server: ExampleServer, username: str, *, iat: int | None = None, lifetime: int = 4
) -> str:
    """An HS256 access token for ``username``, as ``/api/login`` issues them."""
    now = int(time.time()) if iat is None else iat
    claims = claims_for(server.user_ids[username], iat=now, exp=now + lifetime)
    return hs_token(claims, key=server.signing_key)


def expired(server: ExampleServer, username: str) -> str:
    """A token for ``username`` that expired 6 s ago (its lifetime within the maximum)."""
    return token(server, username, iat=int(time.time()) - 10)


def bearer(access: str, **extra: Any) -> dict[str, Any]:
    """``connectionParams`` with the token as graphql-ws users usually send it."""
    return {"Authorization": f"Bearer {access}", **extra}


def request(
    server: ExampleServer,
    path: str,
    body: dict[str, Any] | None = None,
    *,
    headers: dict[str, str] | None = None,
    opener: urllib.request.OpenerDirector | None = None,
) -> tuple[int, dict[str, str], Any]:
    """``(status, headers, JSON body)`` of a POST (GET without ``body``) to the example."""
    data = None if body is None else json.dumps(body).encode()
    call = urllib.request.Request(  # noqa: S310 (loopback)
        server.url + path,
        data=data,
        headers={"Content-Type": "application/json", **(headers or {})},
        method="GET" if body is None else "POST",
    )
    try:
        with (opener or urllib.request.build_opener()).open(call, timeout=TIMEOUT) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), json.loads(error.read())


def graphql(
    server: ExampleServer,
    query: str,
    variables: dict[str, Any] | None = None,
    *,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], Any]:
    """A GraphQL request over HTTP to ``/graphql/``."""
    body = {"query": query, "variables": variables or {}}
    return request(server, "/graphql/", body, headers=headers)


def post_message(server: ExampleServer, access: str, room: str, text: str) -> dict[str, Any]:
    """Post ``text`` to ``room`` through the ``postMessage`` mutation, as ``access``'s user."""
    status, _, body = graphql(
        server,
        POST_MESSAGE,
        {"room": room, "text": text, "clientId": uuid.uuid4().hex},
        headers={"Authorization": f"Bearer {access}"},
    )
    assert (status, body.get("errors")) == (200, None), body
    message: dict[str, Any] = body["data"]["postMessage"]
    return message


def post_until_received(
    server: ExampleServer, client: GraphQLClient, access: str, room: str
) -> tuple[dict[str, Any], list[str]]:
    """Post messages until the client's subscription delivers one: ``(next event, texts)``.

    After ``connection_ack`` the client sends its ``subscribe``, and the server joins the
    room's group a moment later: a message posted before that is not the subscription's.
    """
    texts: list[str] = []
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        texts.append(f"hello {len(texts)} from Python")
        post_message(server, access, room, texts[-1])
        if (event := client.poll("next", timeout=0.3)) is not None:
            return event, texts
    pytest.fail(f"no message reached the subscription; its events: {client.events}")


def names(events: list[dict[str, Any]]) -> list[str]:
    """The events' names, with each close's code: ``["connecting", "closed 4440", ...]``."""
    return [
        f"{event['event']} {event['code']}" if "code" in event else event["event"]
        for event in events
        if event["event"] in {"connecting", "connected", "closed", "error", "next"}
    ]


def test_subscription_sees_a_message_posted_over_http(
    server: ExampleServer,
    subscribe: Callable[..., GraphQLClient],
    room: str,
) -> None:
    iat = int(time.time())
    alice = token(server, "alice", iat=iat)
    client = subscribe(room, [bearer(alice, client="node")])

    ack = client.wait_for("connected")["payload"]
    assert ack == {
        "username": "alice",
        "expiresAt": datetime.fromtimestamp(iat + ACCESS_TOKEN_SECONDS, timezone.utc).isoformat(),
        "receivedParams": ["client"],  # the token never reached Strawberry
    }
    bob = token(server, "bob")
    event, texts = post_until_received(server, client, bob, room)
    message = event["payload"]["data"]["roomMessages"]
    assert message["username"] == "bob"
    assert message["text"] in texts
    assert set(message) == {"id", "username", "text", "sentAt"}

    events = client.finish(dispose=True)
    assert names(events)[:2] == ["connecting", "connected"]
    assert "closed 4440" not in names(events)
    log = server.log()
    assert alice not in log
    assert bob not in log


def _none(server: ExampleServer) -> dict[str, str]:
    return {}


def _alice(server: ExampleServer) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(server, 'alice')}"}


def _malformed(server: ExampleServer) -> dict[str, str]:
    return {"Authorization": "Bearer not-a-jwt"}


def _wrong_key(server: ExampleServer) -> dict[str, str]:
    now = int(time.time())
    claims = claims_for(server.user_ids["alice"], iat=now, exp=now + ACCESS_TOKEN_SECONDS)
    return {"Authorization": f"Bearer {hs_token(claims, key=secrets.token_urlsafe(64))}"}


def _carol(server: ExampleServer) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(server, 'carol')}"}


@pytest.mark.parametrize(
    ("make_headers", "status", "answer"),
    [
        (_none, 200, {"data": {"me": None}}),
        (_alice, 200, {"data": {"me": "alice"}}),
        (_malformed, 401, {"code": 4400, "reason": "token_malformed"}),
        (_wrong_key, 401, {"code": 4401, "reason": "token_invalid"}),
        (_carol, 403, {"code": 4403, "reason": "user_rejected"}),
    ],
    ids=["anonymous", "alice", "malformed-4400", "wrong-key-4401", "inactive-4403"],
)
def test_graphql_over_http_authenticates_the_bearer_token(
    server: ExampleServer,
    make_headers: Callable[[ExampleServer], dict[str, str]],
    status: int,
    answer: dict[str, Any],
) -> None:
    got_status, headers, body = graphql(server, "{ me }", headers=make_headers(server))

    assert (got_status, body) == (status, answer)
    challenge = {name.lower(): value for name, value in headers.items()}.get("www-authenticate")
    assert challenge == ('Bearer error="invalid_token"' if status == 401 else None)


def test_post_message_without_a_token_is_an_error_and_stores_nothing(
    server: ExampleServer, room: str
) -> None:
    variables = {"room": room, "text": "anonymous?", "clientId": "anon-1"}
    status, _, body = graphql(server, POST_MESSAGE, variables)

    assert status == 200
    assert body["data"] is None
    assert [error["message"] for error in body["errors"]] == [
        "Send Authorization: Bearer <access token> to post."
    ]
    assert stored(server, room) == []
    post_message(server, token(server, "bob"), room, "with a token")
    assert stored(server, room) == ["with a token"]


def stored(server: ExampleServer, room: str) -> list[str]:
    """The texts stored in ``room``, read from the server's database."""
    # closing(): sqlite3's own context manager ends the transaction, not the connection.
    with closing(sqlite3.connect(f"file:{server.db_path}?mode=ro", uri=True)) as database:
        rows = database.execute("SELECT text FROM chat_message WHERE room = ?", (room,))
        return [text for (text,) in rows]


def test_an_expired_token_then_a_fresh_one_reconnects_and_resubscribes(
    server: ExampleServer,
    subscribe: Callable[..., GraphQLClient],
    reason: Callable[[str], str],
    room: str,
) -> None:
    client = subscribe(
        room,
        [bearer(expired(server, "alice")), bearer(token(server, "alice"))],
        shouldRetry=RECOMMENDED,
    )

    assert client.wait_for("connected")["payload"]["username"] == "alice"
    event, texts = post_until_received(server, client, token(server, "bob"), room)
    assert event["payload"]["data"]["roomMessages"]["text"] in texts

    events = client.finish(dispose=True)
    assert names(events)[:4] == ["connecting", "closed 4440", "connecting", "connected"]
    assert [event["retrying"] for event in events if event["event"] == "connecting"][:2] == [
        False,
        True,
    ]
    closed = next(event for event in events if event["event"] == "closed")
    assert closed["reason"] == reason("token_expired")


def test_no_token_is_4401_and_graphql_ws_does_not_retry(
    server: ExampleServer,
    subscribe: Callable[..., GraphQLClient],
    reason: Callable[[str], str],
    room: str,
) -> None:
    client = subscribe(room, [{"client": "node"}])  # graphql-ws' default shouldRetry, 5 retries

    events = client.finish()
    assert names(events) == ["connecting", "closed 4401", "error 4401"]
    assert events[-1]["reason"] == reason("token_missing")


def test_connection_init_too_late_is_4408(
    server: ExampleServer,
    subscribe: Callable[..., GraphQLClient],
    reason: Callable[[str], str],
    room: str,
) -> None:
    client = subscribe(room, [bearer(token(server, "alice"))], paramsDelayMs=6000, retryAttempts=0)

    events = client.finish()
    assert names(events) == ["connecting", "closed 4408", "error 4408"]
    opened = next(event for event in events if event["event"] == "opened")
    closed = next(event for event in events if event["event"] == "closed")
    assert closed["reason"] == reason("auth_timeout")
    # MESSAGE_TIMEOUT_SECONDS (5) after the socket opened, before connectionParams resolved.
    assert 5000 <= closed["t"] - opened["t"] < 6000


def test_the_socket_closes_with_4440_when_the_token_expires(
    server: ExampleServer,
    subscribe: Callable[..., GraphQLClient],
    reason: Callable[[str], str],
    room: str,
) -> None:
    iat = int(time.time())
    exp = iat + ACCESS_TOKEN_SECONDS
    client = subscribe(room, [bearer(token(server, "alice", iat=iat))], shouldRetry=RECOMMENDED)
    client.wait_for("connected")
    post_until_received(server, client, token(server, "bob"), room)

    closed = client.wait_for("closed")
    assert (closed["code"], closed["reason"]) == (4440, reason("token_expired"))
    late_ms = closed["t"] - exp * 1000
    assert 0 <= late_ms < 2000, f"closed {late_ms} ms after exp"
    client.finish(dispose=True)


def log_in(server: ExampleServer, username: str, password: str) -> tuple[str, Callable[[], int]]:
    """Log in as a browser does; ``(access token, log_out)``, ``log_out()`` the status."""
    cookies = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(cookies))
    status, _, body = request(server, "/api/csrf", opener=opener)
    assert status == 200, body
    csrf = {"X-CSRFToken": body["csrf_token"], "Referer": server.url + "/"}
    status, _, body = request(
        server, "/api/login", {"username": username, "password": password},
        headers=csrf, opener=opener,
    )  # fmt: skip
    assert status == 200, body
    access: str = body["access"]

    def log_out() -> int:
        # Django rotates the CSRF token at login: the cookie has the new one.
        csrf["X-CSRFToken"] = next(c.value for c in cookies if c.name == "csrftoken")
        status, _, body = request(server, "/api/logout", {}, headers=csrf, opener=opener)
        assert body == {"logged_out": True}
        return status

    return access, log_out


@pytest.mark.parametrize(
    ("should_retry", "after_4441"),
    [(RECOMMENDED, ["error 4441"]), ("default", ["connecting", "connected"])],
    ids=["recommended-shouldRetry", "default-shouldRetry"],
)
def test_logout_closes_the_subscription_with_4441(
    server: ExampleServer,
    subscribe: Callable[..., GraphQLClient],
    reason: Callable[[str], str],
    room: str,
    should_retry: str,
    after_4441: list[str],
) -> None:
    access, log_out = log_in(server, *BOB)
    client = subscribe(room, [bearer(access)], shouldRetry=should_retry)
    assert client.wait_for("connected")["payload"]["username"] == "bob"

    assert log_out() == 200
    closed = client.wait_for("closed")
    assert (closed["code"], closed["reason"]) == (4441, reason("token_revoked"))

    # disconnect_user closes the sockets open now; it does not refuse the token: graphql-ws'
    # default shouldRetry reconnects with it (while it lasts), the recommended one gives up.
    expected = ["connecting", "connected", "closed 4441", *after_4441]
    if should_retry == "default":
        client.wait_for("connected")
        events = client.finish(dispose=True)
        assert names(events)[: len(expected)] == expected
    else:
        assert names(client.finish()) == expected


@pytest.mark.parametrize(
    ("should_retry", "attempts"),
    [("default", 3), (RECOMMENDED, 1)],
    ids=["default-shouldRetry", "recommended-shouldRetry"],
)
def test_inactive_user_is_4403_retried_by_default(
    server: ExampleServer,
    subscribe: Callable[..., GraphQLClient],
    reason: Callable[[str], str],
    room: str,
    should_retry: str,
    attempts: int,
) -> None:
    client = subscribe(
        room, [bearer(token(server, "carol"))], shouldRetry=should_retry, retryAttempts=2
    )

    events = client.finish()
    assert names(events) == ["connecting", "closed 4403"] * attempts + ["error 4403"]
    assert {event["reason"] for event in events if event["event"] == "closed"} == {
        reason("user_rejected")
    }
