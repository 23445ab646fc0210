"""The example's GraphQL feed page (``/feed/``) in headless Chromium, beside the chat page.

The feed runs on the chat page's session (the same browser context): it subscribes with the
real graphql-ws client, the token in ``connection_init`` (never in a URL), and its ack says who
it is and that the token never reached the application (``receivedParams == ["page"]``).
What is said on the chat page shows up in the feed, and what is posted on the feed (the
``postMessage`` mutation over HTTP) shows up on the chat page. When the token expires, the
server closes the subscription's socket with 4440 and graphql-ws reconnects by itself with a
fresh token; logging out on the chat page closes it with 4441, and it stays closed. Not logged
in, the feed shows its login view and opens no socket. No page logs an error on the way.
"""

from __future__ import annotations

import json
import re
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, expect

from tests.e2e.conftest import ARTIFACTS, DESKTOP, STEP_TIMEOUT_MS, failed, save_page
from tests.e2e.pages import ChatPage, FeedPage, Socket, Tab, first
from tests.e2e.server import ACCESS_TOKEN_SECONDS, ExampleServer

pytestmark = pytest.mark.e2e

OpenPage = Callable[..., ChatPage]
OpenFeed = Callable[..., FeedPage]
ALICE = ("alice", "alice-demo-password")
BOB = ("bob", "bob-demo-password")


@pytest.fixture
def room() -> str:
    """A room of this test's own, so no other test's messages show up in it."""
    return f"feed-{uuid.uuid4().hex[:12]}"


def artifacts_directory(item: pytest.Item) -> Path:
    """Where ``open_page`` leaves a failed test's screenshots and logs."""
    return ARTIFACTS / re.sub(r"[^A-Za-z0-9_.-]+", "_", item.nodeid)


@pytest.fixture(autouse=True)
def feed_artifacts(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Path]:
    """Where ``open_feed`` saves its pages' screenshots and console logs when a test fails.

    Autouse, so it is set up before ``open_page`` and torn down after it: its teardown moves
    them into the test's artifacts directory, which ``open_page``'s teardown empties first.
    """
    directory = tmp_path / "feed-artifacts"
    yield directory
    if directory.is_dir():
        destination = artifacts_directory(request.node)
        destination.mkdir(parents=True, exist_ok=True)
        for path in directory.iterdir():
            shutil.move(path, destination / path.name)


@pytest.fixture
def open_feed(
    request: pytest.FixtureRequest,
    browser: Browser,
    example_server: ExampleServer,
    open_page: OpenPage,
    feed_artifacts: Path,
) -> Iterator[OpenFeed]:
    """``open_feed(label, room=..., context=None)``: the feed page, loaded, in a new tab of
    ``context`` (a chat page's, to share its session), or of a fresh context (nobody logged in).

    Torn down before ``open_page`` (which it requests for that), while the chat pages'
    contexts are still open: on failure, each feed page leaves its screenshot and console log
    with the chat pages'. Uncaught errors in a feed page fail the test, as in a chat page.
    """
    pages: list[FeedPage] = []
    contexts: list[BrowserContext] = []

    def open_one(label: str, *, room: str, context: BrowserContext | None = None) -> FeedPage:
        if context is None:
            width, height = DESKTOP
            context = browser.new_context(viewport={"width": width, "height": height})
            context.set_default_timeout(STEP_TIMEOUT_MS)
            contexts.append(context)
        page = FeedPage(label, context.new_page(), example_server.url)
        pages.append(page)
        page.open(room=room)
        return page

    yield open_one

    try:
        if failed(request.node) and pages:
            feed_artifacts.mkdir()
            for page in pages:
                save_page(page, feed_artifacts)
        errors = [f"{page.label}: {error}" for page in pages for error in page.errors]
        assert not errors, f"uncaught errors in the page: {errors}"
    finally:
        for context in contexts:
            context.close()


def frames(socket: Socket) -> list[dict[str, Any]]:
    """The graphql-ws messages the page sent on ``socket``."""
    return [json.loads(frame) for frame in socket.sent]


def wait_for_subscribe(feed: FeedPage, *, sockets: int = 1) -> None:
    """Wait until the page has sent its ``subscribe`` on its ``sockets``-th socket.

    ``connection_ack`` (the page's "subscribed") comes before the subscription is sent, and the
    protocol confirms nothing after it: a message said before then would not reach the feed.
    """
    deadline = time.monotonic() + STEP_TIMEOUT_MS / 1000
    while time.monotonic() < deadline:
        if len(feed.sockets) >= sockets and any(
            frame["type"] == "subscribe" for frame in frames(feed.sockets[sockets - 1])
        ):
            return
        feed.page.wait_for_timeout(20)  # lets Playwright deliver the page's events
    raise AssertionError(f"no subscribe sent on socket {sockets}: {feed.sockets}")


def subscribed(feed: FeedPage, *, acks: int = 1) -> None:
    """The page is subscribed after its ``acks``-th ``connection_ack``, its subscription sent."""
    feed.expect_subscribed(acks=acks)
    wait_for_subscribe(feed, sockets=acks)


def bearer(socket: Socket) -> str:
    """The token in the socket's ``connection_init``, which must be its first message, and
    carry nothing but the token and the page's own parameter."""
    init = frames(socket)[0]
    assert init["type"] == "connection_init", init
    assert sorted(init["payload"]) == ["Authorization", "page"], init
    assert init["payload"]["page"] == "feed"
    scheme, token = init["payload"]["Authorization"].split(" ")
    assert scheme == "Bearer"
    return str(token)


def assert_quiet(*tabs: Tab) -> None:
    """Nothing in red in the developer tools: no console error, no failed request."""
    for tab in tabs:
        assert tab.console_errors == [], (tab.label, tab.console)
        assert tab.failed_requests == [], tab.label


def test_feed_and_chat_page_see_each_others_messages(
    open_page: OpenPage, open_feed: OpenFeed, room: str, example_server: ExampleServer
) -> None:
    alice = open_page("alice", room=room)
    bob = open_page("bob", room=room)
    alice.log_in_and_connect(*ALICE)
    bob.log_in_and_connect(*BOB)
    feed = open_feed("alice-feed", room=room, context=alice.page.context)
    subscribed(feed)

    ack = feed.acks[0]
    assert ack["username"] == "alice"
    assert ack["receivedParams"] == ["page"]  # the token was taken out before the app
    expires_in = datetime.fromisoformat(ack["expiresAt"]).timestamp() - time.time()
    assert 0 < expires_in <= ACCESS_TOKEN_SECONDS + 1
    expect(feed.page.locator("#login-view")).to_be_hidden()
    expect(feed.page.locator("#feed-title")).to_have_text(f"#{room}")
    [socket] = feed.sockets
    assert socket.url == f"ws://127.0.0.1:{example_server.port}/graphql/"  # no token in it
    token = bearer(socket)

    alice.say("Said on the chat page, read in the feed.")
    feed.expect_entry("alice", "Said on the chat page, read in the feed.")
    bob.say("Bob, from another browser.")
    feed.expect_entry("bob", "Bob, from another browser.")

    feed.post("Posted on the feed, through GraphQL.")
    alice.expect_message("alice", "Posted on the feed, through GraphQL.")
    bob.expect_message("alice", "Posted on the feed, through GraphQL.")
    feed.expect_entry("alice", "Posted on the feed, through GraphQL.")  # its own subscription

    assert feed.close_codes == []
    assert token not in example_server.log()
    assert_quiet(alice, bob, feed)


def test_expired_token_closes_the_feed_and_it_reconnects_with_a_new_one(
    open_page: OpenPage, open_feed: OpenFeed, room: str
) -> None:
    alice = open_page("alice", room=room)
    alice.log_in_and_connect(*ALICE)
    feed = open_feed("alice-feed", room=room, context=alice.page.context)
    subscribed(feed)

    feed.wait_for_close_code(4440, timeout_ms=(ACCESS_TOKEN_SECONDS + 3) * 1000)
    subscribed(feed, acks=2)  # graphql-ws retried and subscribed again, by itself
    assert feed.close_codes == [4440]

    events = feed.events
    issued = first(events, "token")
    expired = first(events, "closed", code=4440)
    renewed = first(events, "token", after=expired["at"])  # connectionParams asked again
    reconnected = first(events, "connected", after=renewed["at"])
    token_life = (expired["at"] - issued["at"]) / 1000
    assert ACCESS_TOKEN_SECONDS - 1.5 <= token_life <= ACCESS_TOKEN_SECONDS + 1.5
    assert expired["reason"] == "token_expired"
    assert reconnected["at"] - expired["at"] < 3000  # graphql-ws' first retry: 0.25 to 0.5 s
    first_ack, second_ack = feed.acks
    assert first_ack["username"] == second_ack["username"] == "alice"
    assert first_ack["receivedParams"] == second_ack["receivedParams"] == ["page"]
    assert datetime.fromisoformat(second_ack["expiresAt"]) > datetime.fromisoformat(
        first_ack["expiresAt"]
    )
    old, new = feed.sockets
    assert bearer(old) != bearer(new)
    assert [frame["type"] for frame in frames(new)][:2] == ["connection_init", "subscribe"]
    expect(feed.page.locator("#close-log li", has_text="Closed 4440")).to_have_count(1)

    alice.say("Still in the feed after its reconnect.")
    feed.expect_entry("alice", "Still in the feed after its reconnect.")
    feed.post("Posted with the renewed token.")
    alice.expect_message("alice", "Posted with the renewed token.")
    assert_quiet(alice, feed)


def test_logging_out_on_the_chat_page_closes_the_feed_for_good(
    open_page: OpenPage, open_feed: OpenFeed, room: str
) -> None:
    alice = open_page("alice", room=room)
    bob = open_page("bob", room=room)
    alice.log_in_and_connect(*ALICE)
    bob.log_in_and_connect(*BOB)
    feed = open_feed("alice-feed", room=room, context=alice.page.context)
    bobs_feed = open_feed("bob-feed", room=room, context=bob.page.context)
    subscribed(feed)
    subscribed(bobs_feed)

    alice.log_out()  # the same session as her feed: every socket of hers closes with 4441

    feed.expect_state("revoked")
    assert feed.close_codes == [4441]
    stopped = first(feed.events, "stopped")  # graphql-ws gave up: shouldRetry said no
    assert stopped["code"] == 4441
    assert len(feed.acks) == 1
    assert [event for event in feed.events if event["type"] == "connecting"] == [
        first(feed.events, "connecting")
    ]
    assert len(feed.sockets) == 1
    expect(feed.page.locator("#login-view")).to_be_visible()
    expect(feed.page.locator("#feed-view")).to_be_hidden()
    expect(feed.page.locator("#status-text")).to_have_text("Not logged in.")

    # Bob is someone else: his feed is still there, and still hears the room.
    bob.say("Alice has left.")
    bobs_feed.expect_entry("bob", "Alice has left.")
    assert 4441 not in bobs_feed.close_codes
    assert feed.entry("Alice has left.").count() == 0
    assert feed.events[-1]["type"] == "stopped"  # and nothing after: no reconnection
    assert_quiet(alice, bob, feed, bobs_feed)


def test_feed_without_a_session_shows_the_login_view_and_opens_no_socket(
    open_feed: OpenFeed, room: str
) -> None:
    feed = open_feed("newcomer", room=room)

    feed.expect_state("logged-out")
    expect(feed.page.locator("#login-view")).to_be_visible()
    expect(feed.page.locator("#login-view a")).to_have_attribute("href", "/")
    expect(feed.page.locator("#feed-view")).to_be_hidden()
    expect(feed.page.locator("#status-text")).to_have_text("Not logged in.")
    assert feed.sockets == []
    assert [event["type"] for event in feed.events] == ["stopped"]
    assert feed.close_codes == feed.acks == []
    assert_quiet(feed)
