"""The example chat page in headless Chromium against the example project under uvicorn.

What a person sees: two people chat; a wrong password is refused; the token is renewed in
place on the open socket before it expires, for as long as the page stays open; a page that
does not renew it is closed with 4440 when it expires, refreshes it and reconnects by itself;
a deactivated account is told so (4403); an authentication outage (4503) is retried with
backoff; the query-string transport works too, and its token stays out of the server's log; so
does the first-message transport (the token in the socket's first frame), renewed in place.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager

import pytest
from playwright.sync_api import expect

from tests.e2e.pages import ChatPage, first
from tests.e2e.server import ACCESS_TOKEN_SECONDS, DISPOSABLE_USER, ExampleServer

pytestmark = pytest.mark.e2e

OpenPage = Callable[..., ChatPage]
ALICE = ("alice", "alice-demo-password")
BOB = ("bob", "bob-demo-password")
CAROL = ("carol", "carol-demo-password")  # inactive


@pytest.fixture
def room() -> str:
    """A room of this test's own, so no other test's messages show up in it."""
    return f"e2e-{uuid.uuid4().hex[:12]}"


def deactivate(server: ExampleServer, username: str) -> None:
    """Deactivate a user in the server's database (directly: a Django process takes ~1 s,
    a good part of the token's life)."""
    with closing(sqlite3.connect(server.db_path)) as connection, connection:
        updated = connection.execute(
            "UPDATE auth_user SET is_active = 0 WHERE username = ?", (username,)
        ).rowcount
    assert updated == 1


@contextmanager
def database_unavailable(server: ExampleServer) -> Iterator[None]:
    """Move the server's SQLite file away (Django opens a connection per lookup, which then
    finds an empty database), and put it back afterwards."""
    away = server.db_path.with_name(server.db_path.name + ".away")
    server.db_path.rename(away)
    try:
        yield
    finally:
        server.db_path.unlink(missing_ok=True)
        away.rename(server.db_path)


def test_two_people_see_each_others_messages(open_page: OpenPage, room: str) -> None:
    alice = open_page("alice", room=room)
    bob = open_page("bob", room=room)
    alice.log_in_and_connect(*ALICE)
    bob.log_in_and_connect(*BOB)

    alice.say("Hello Bob, can you read me?")
    bob.expect_message("alice", "Hello Bob, can you read me?")
    bob.say("Loud and clear, Alice.")
    alice.expect_message("bob", "Loud and clear, Alice.")
    alice.expect_message("alice", "Hello Bob, can you read me?")


def test_browser_socket_negotiates_the_marker_subprotocol(open_page: OpenPage, room: str) -> None:
    alice = open_page("alice", room=room)
    alice.log_in_and_connect(*ALICE)

    connected = first(alice.events, "connected")
    assert connected["protocol"] == "access_token"
    assert alice.close_codes == []


@pytest.mark.parametrize(
    ("username", "password"),
    [(ALICE[0], "not-her-password"), CAROL],
    ids=["wrong-password", "inactive-user"],
)
def test_refused_login_shows_an_error(
    open_page: OpenPage, room: str, username: str, password: str
) -> None:
    page = open_page(username, room=room)
    page.log_in(username, password)

    error = page.page.locator("#login-error")
    expect(error).to_be_visible()
    expect(error).to_have_text("Wrong username or password.")
    page.expect_state("logged-out")
    expect(page.page.locator("#chat-view")).to_be_hidden()
    assert [event for event in page.events if event["type"] == "connecting"] == []


def stay_for(page: ChatPage, since_ms: float, seconds: float) -> None:
    """Let the page run until ``seconds`` have passed since ``since_ms`` (its clock)."""
    page.page.wait_for_function(
        "([since, span]) => Date.now() - since >= span",
        arg=[since_ms, seconds * 1000],
        polling=100,
        timeout=(seconds + 5) * 1000,
    )


def handshakes(server: ExampleServer, room: str) -> int:
    """How many WebSocket handshakes to ``room`` the server accepted (its access log)."""
    return server.log().count(f'"WebSocket /ws/chat/{room}/" [accepted]')


def test_token_is_renewed_in_place_and_the_socket_stays_open(
    open_page: OpenPage, room: str, example_server: ExampleServer
) -> None:
    alice = open_page("alice", room=room)
    bob = open_page("bob", room=room)
    alice.log_in_and_connect(*ALICE)
    bob.log_in_and_connect(*BOB)

    connected = first(alice.events, "connected")
    stay_for(alice, connected["at"], 2.5 * ACCESS_TOKEN_SECONDS)

    for page in (alice, bob):
        assert page.close_codes == [], page.label
        sockets = {event["socket"] for event in page.events if event["type"] == "connecting"}
        assert len(sockets) == 1, page.label  # never reconnected
        refreshes = page.refreshes
        assert len(refreshes) >= 2, page.label  # ~one per half lifetime; none would mean 4440
        for renewal in refreshes:
            assert renewal["socket"] in sockets  # on the socket opened first
            assert renewal["at"] < renewal["previous_expires_at"]  # before the old token ended
            assert renewal["expires_at"] > renewal["previous_expires_at"]
    assert alice.refreshes[0]["previous_expires_at"] == connected["expires_at"]
    log = example_server.log()
    assert f"code=4440 path=/ws/chat/{room}/" not in log
    assert handshakes(example_server, room) == 2  # one per page
    expect(alice.page.locator("#status-text")).to_contain_text("Token renewed in place at")
    expect(alice.page.locator("#close-log li[data-renewed]").first).to_contain_text(
        "token renewed in place (same socket, valid until"
    )

    # Still chatting on the same sockets; a message that mentions the refresh frame's type
    # reaches the chat, not the mixin.
    alice.say('Still here, no reconnect: {"type": "token.refresh"}')
    bob.expect_message("alice", 'Still here, no reconnect: {"type": "token.refresh"}')
    bob.say("Same socket here.")
    alice.expect_message("bob", "Same socket here.")
    assert alice.close_codes == bob.close_codes == []


def test_expired_token_is_refreshed_and_the_page_reconnects(open_page: OpenPage, room: str) -> None:
    # Alice's page does not renew its token in place (?refresh=reconnect): the server's timer
    # closes her socket with 4440, and the fallback refreshes and reconnects. Bob's renews.
    alice = open_page("alice", room=room, renew_in_place=False)
    bob = open_page("bob", room=room)
    alice.log_in_and_connect(*ALICE)
    bob.log_in_and_connect(*BOB)

    alice.wait_for_close_code(4440, timeout_ms=(ACCESS_TOKEN_SECONDS + 3) * 1000)
    alice.expect_state("connected")

    events = alice.events
    issued = first(events, "token")
    expired = first(events, "closed", code=4440)
    refreshed = first(events, "refreshed", after=expired["at"])
    reconnected = first(events, "connected", after=refreshed["at"])
    token_life = (expired["at"] - issued["at"]) / 1000
    # The server's timer closed the socket when the token expired (exp is whole seconds).
    assert ACCESS_TOKEN_SECONDS - 1.5 <= token_life <= ACCESS_TOKEN_SECONDS + 1.5
    assert expired["reason"] == "token_expired"  # uvicorn passes close reasons on
    assert reconnected["at"] - expired["at"] < 2000  # at once, not after a backoff
    close_log = alice.page.locator("#close-log li[data-code='4440']").first
    expect(close_log).to_contain_text("the access token expired")
    expect(alice.page.locator("#close-panel")).to_be_visible()  # hidden until then
    assert alice.refreshes == []
    assert [event for event in alice.events if event["type"] == "renewing"] == []

    alice.say("Back after a token refresh.")
    bob.expect_message("alice", "Back after a token refresh.")
    bob.say("Welcome back.")
    alice.expect_message("bob", "Welcome back.")
    assert bob.close_codes == []  # meanwhile, Bob's token was renewed in place
    assert len(bob.refreshes) >= 1


def test_deactivated_user_sees_the_account_disabled_state(
    open_page: OpenPage, room: str, example_server: ExampleServer
) -> None:
    dave = open_page("dave", room=room)
    dave.log_in_and_connect(*DISPOSABLE_USER)

    deactivate(example_server, DISPOSABLE_USER[0])
    dave.switch_room(f"{room}-next")  # a new handshake with the still-valid token

    dave.expect_state("disabled")
    assert dave.close_codes[-1] == 4403
    expect(dave.page.locator("#status-text")).to_contain_text("Account disabled (4403)")
    expect(dave.page.locator("#login-notice")).to_contain_text("this account is disabled")
    expect(dave.page.locator("#chat-view")).to_be_hidden()


def test_unavailable_authentication_is_retried_with_backoff(
    open_page: OpenPage, room: str, example_server: ExampleServer
) -> None:
    alice = open_page("alice", room=room)
    alice.log_in_and_connect(*ALICE)

    with database_unavailable(example_server):
        alice.switch_room(f"{room}-next")  # the user lookup fails: 4503
        alice.wait_for_close_code(4503, timeout_ms=5000)
        alice.expect_state("waiting")
        expect(alice.page.locator("#status-text")).to_contain_text(
            "Disconnected (4503): the server cannot check credentials right now: retrying. "
            "Retrying in"
        )
    alice.expect_state("connected")  # the backoff timer tried again, by itself

    retry = first(alice.events, "retry", code=4503)
    assert 750 <= retry["delay"] <= 1250  # the first step of the backoff: 1 s, with jitter
    assert first(alice.events, "connected", after=retry["at"])["room"] == f"{room}-next"


def test_query_string_client_chats_and_its_token_stays_out_of_the_log(
    open_page: OpenPage, room: str, example_server: ExampleServer
) -> None:
    bob = open_page("bob-query", room=room, transport="query")
    alice = open_page("alice", room=room)
    token = bob.log_in_for_token(*BOB)
    alice.log_in_and_connect(*ALICE)

    assert first(bob.events, "connected")["protocol"] == ""  # no subprotocol offered
    expect(bob.page.locator("#transport")).to_have_text("the query string (?token=)")
    bob.say("Sent over a socket opened with ?token=.")
    alice.expect_message("bob", "Sent over a socket opened with ?token=.")

    log = example_server.log()
    assert f'"WebSocket /ws/chat/{room}/?token=[redacted]" [accepted]' in log
    assert token not in log


def test_first_message_client_chats_and_renews_its_token_in_place(
    open_page: OpenPage, room: str, example_server: ExampleServer
) -> None:
    # ?transport=message: a handshake with no credentials, then {"type": "authenticate",
    # "token": ...} as the first frame (MESSAGE_FORMAT "json").
    bob = open_page("bob-message", room=room, transport="message")
    alice = open_page("alice", room=room)
    token = bob.log_in_for_token(*BOB)
    alice.log_in_and_connect(*ALICE)

    connected = first(bob.events, "connected")
    assert connected["protocol"] == ""  # no subprotocol offered
    expect(bob.page.locator("#transport")).to_have_text("the first message")
    [socket] = bob.sockets
    assert socket.url == f"ws://127.0.0.1:{example_server.port}/ws/chat/{room}/"  # no ?token=
    assert json.loads(socket.sent[0]) == {"type": "authenticate", "token": token}
    bob.say("Sent over a socket that got its token in a frame.")
    alice.expect_message("bob", "Sent over a socket that got its token in a frame.")
    alice.say("Received there too.")
    bob.expect_message("alice", "Received there too.")

    # The same socket outlives its first token: renewed in place (token.refresh).
    bob.page.wait_for_function(
        "end => window.refreshes.length >= 1 && Date.now() > end + 500",
        arg=connected["expires_at"],
        timeout=(ACCESS_TOKEN_SECONDS + 5) * 1000,
    )
    assert bob.close_codes == []
    assert len(bob.sockets) == 1
    assert bob.refreshes[0]["previous_expires_at"] == connected["expires_at"]
    refresh = next(
        frame for frame in map(json.loads, socket.sent) if frame["type"] == "token.refresh"
    )
    bob.say("Still on the socket I opened, after its first token expired.")
    alice.expect_message("bob", "Still on the socket I opened, after its first token expired.")
    assert bob.close_codes == []

    log = example_server.log()
    assert f'"WebSocket /ws/chat/{room}/" [accepted]' in log
    assert token not in log
    assert refresh["token"] not in log
    assert bob.console_errors == bob.failed_requests == []
