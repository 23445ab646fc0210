"""``example_project/clients/chat_client.py`` against the example project under uvicorn.

The client logs in over HTTP and presents its token in an ``Authorization: Bearer`` header.
It must receive messages, renew its token on the open socket before it expires, and exit with
the documented status and words on each refusal.
"""

from __future__ import annotations

import queue
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import IO

import pytest

from tests.e2e.pages import ChatPage
from tests.e2e.server import ACCESS_TOKEN_SECONDS, EXAMPLE_DIR, ExampleServer
from tests.harness import claims_for, hs_token

pytestmark = pytest.mark.e2e

CLIENT = EXAMPLE_DIR / "clients" / "chat_client.py"
TIMEOUT = 15.0
ALICE = ("alice", "alice-demo-password")
BOB = ("bob", "bob-demo-password")


@pytest.fixture
def room() -> str:
    """A room of this test's own."""
    return f"cli-{uuid.uuid4().hex[:12]}"


def client_command(server: ExampleServer, *args: str) -> list[str]:
    """The command line of the chat client talking to ``server``."""
    return [sys.executable, str(CLIENT), "--server", server.url, "--timeout", str(TIMEOUT), *args]


def run_client(server: ExampleServer, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the client to completion."""
    return subprocess.run(
        client_command(server, *args),
        capture_output=True,
        text=True,
        timeout=TIMEOUT + 5,
        check=False,
    )


class RunningClient:
    """A client left running in the background, its output (stdout and stderr) read by line."""

    def __init__(self, command: list[str]) -> None:
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        assert self.process.stdout is not None
        self.reader = threading.Thread(target=self._read, args=(self.process.stdout,))
        self.reader.start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self.lines.put(line.rstrip("\n"))

    def wait_for_line(self, prefix: str) -> str:
        """The first line starting with ``prefix``; fails after ``TIMEOUT``."""
        deadline = time.monotonic() + TIMEOUT
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=remaining)
            except queue.Empty:
                break
            self.seen.append(line)
            if line.startswith(prefix):
                return line
        pytest.fail(f"no line starting with {prefix!r}; output so far: {self.seen}")

    def finish(self) -> tuple[int, list[str]]:
        """Wait for the exit; the status and the output lines not read yet."""
        status = self.process.wait(timeout=TIMEOUT + 5)
        self.reader.join(timeout=5)
        rest = []
        while not self.lines.empty():
            rest.append(self.lines.get_nowait())
        return status, rest

    def stop(self) -> None:
        """Kill the client if it is still running; reap it and its reader."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=5)
        self.reader.join(timeout=5)
        assert self.process.stdout is not None
        self.process.stdout.close()


@pytest.fixture
def background_client(example_server: ExampleServer) -> Iterator[Callable[..., RunningClient]]:
    """``background_client(*args)``: start a client; it is always stopped afterwards."""
    clients: list[RunningClient] = []

    def start(*args: str) -> RunningClient:
        client = RunningClient(client_command(example_server, *args))
        clients.append(client)
        return client

    yield start
    for client in clients:
        client.stop()


def test_client_receives_a_message_over_the_header_transport(
    example_server: ExampleServer, background_client: Callable[..., RunningClient], room: str
) -> None:
    listener = background_client(
        "--username", ALICE[0], "--password", ALICE[1], "--room", room, "--count", "1"
    )
    assert listener.wait_for_line("connected to") == f"connected to #{room} as alice"

    sender = run_client(
        example_server, "--username", BOB[0], "--password", BOB[1], "--room", room,
        "--say", "Hello from a terminal.",
    )  # fmt: skip
    assert sender.returncode == 0, sender.stderr
    assert "bob: Hello from a terminal." in sender.stdout

    assert listener.wait_for_line("[#").endswith("] bob: Hello from a terminal.")
    status, rest = listener.finish()
    assert (status, rest) == (0, [])


def test_client_renews_its_token_in_place_and_keeps_its_socket(
    example_server: ExampleServer, background_client: Callable[..., RunningClient], room: str
) -> None:
    listener = background_client(
        "--username", ALICE[0], "--password", ALICE[1], "--room", room, "--count", "1"
    )
    assert listener.wait_for_line("connected to") == f"connected to #{room} as alice"
    # Each renewal comes at ~half the token's life after the last: by the second one, the
    # token the socket was opened with has expired.
    for _ in range(2):
        assert listener.wait_for_line("token renewed").startswith(
            "token renewed in place, valid until "
        )

    sender = run_client(
        example_server, "--username", BOB[0], "--password", BOB[1], "--room", room,
        "--say", "Still on the first socket?",
    )  # fmt: skip
    assert sender.returncode == 0, sender.stderr
    assert listener.wait_for_line("[#").endswith("] bob: Still on the first socket?")
    status, rest = listener.finish()
    assert status == 0
    lines = listener.seen + rest
    assert [line for line in lines if line.startswith("connected to")] == [lines[0]]
    assert not [line for line in lines if "4440" in line or "could not renew" in line]
    assert f"code=4440 path=/ws/chat/{room}/" not in example_server.log()


def test_browser_sees_what_the_python_client_says(
    example_server: ExampleServer, open_page: Callable[..., ChatPage], room: str
) -> None:
    alice = open_page("alice", room=room)
    alice.log_in_and_connect(*ALICE)

    sender = run_client(
        example_server, "--username", BOB[0], "--password", BOB[1], "--room", room,
        "--say", "A header-authenticated hello.",
    )  # fmt: skip

    assert sender.returncode == 0, sender.stderr
    alice.expect_message("bob", "A header-authenticated hello.")


def _malformed(server: ExampleServer) -> str:
    return "not-a-jwt"


def _wrong_key(server: ExampleServer) -> str:
    now = int(time.time())
    claims = claims_for(server.user_ids["alice"], iat=now, exp=now + ACCESS_TOKEN_SECONDS)
    return hs_token(claims, key="another-key-of-sufficient-length-0123456789abcdefghijklmnop")


def _expired(server: ExampleServer) -> str:
    now = int(time.time())
    claims = claims_for(server.user_ids["alice"], iat=now - 10, exp=now - 10 + ACCESS_TOKEN_SECONDS)
    return hs_token(claims, key=server.signing_key)


def _inactive_user(server: ExampleServer) -> str:
    now = int(time.time())
    claims = claims_for(server.user_ids["carol"], iat=now, exp=now + ACCESS_TOKEN_SECONDS)
    return hs_token(claims, key=server.signing_key)


@pytest.mark.parametrize(
    ("make_token", "status", "words"),
    [
        (_malformed, 10, "closed with 4400 (token_malformed): the server says the token is"),
        (_wrong_key, 11, "closed with 4401 (token_invalid): the server did not accept"),
        (_expired, 14, "closed with 4440 (token_expired): the token expired and could not"),
        (_inactive_user, 13, "closed with 4403 (user_rejected): this account is disabled"),
    ],
    ids=["malformed-4400", "wrong-key-4401", "expired-4440", "inactive-user-4403"],
)
def test_client_exits_with_the_documented_status_on_a_refused_token(
    example_server: ExampleServer,
    room: str,
    make_token: Callable[[ExampleServer], str],
    status: int,
    words: str,
) -> None:
    result = run_client(example_server, "--token", make_token(example_server), "--room", room)

    assert result.returncode == status, result.stderr
    assert result.stderr.startswith(f"chat_client: connection {words}")
    assert "connected to" not in result.stdout


def test_client_exits_with_status_3_on_a_wrong_password(example_server: ExampleServer) -> None:
    result = run_client(example_server, "--username", "alice", "--password", "wrong")

    assert result.returncode == 3
    assert result.stderr == (
        "chat_client: login failed: POST /api/login: HTTP 401 Wrong username or password.\n"
    )
