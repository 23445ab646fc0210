"""A newcomer's first visit to the example chat page, on a phone and on a laptop.

A fresh load logs nothing in red (no console error, no failed request: nobody logged in is an
answer, not an HTTP error), shows no empty panel, and the page fits the screen: on a 390x844
phone the message box and the Send button are on screen, and sending works. Each layout test
leaves a screenshot in ``test-artifacts/first-visit/`` for a person to look at.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
from playwright.sync_api import Locator, expect

from tests.e2e.conftest import ARTIFACTS, DESKTOP
from tests.e2e.pages import ChatPage

pytestmark = pytest.mark.e2e

OpenPage = Callable[..., ChatPage]
ALICE = ("alice", "alice-demo-password")
#: A phone's screen in CSS pixels (an iPhone 12 to 15: the common small size).
PHONE = (390, 844)
SCREENSHOTS = ARTIFACTS / "first-visit"
VIEWPORTS = [
    pytest.param(PHONE, True, id="phone-390x844"),
    pytest.param(DESKTOP, False, id="desktop-1100x720"),
]


@pytest.fixture
def room() -> str:
    """A room of this test's own."""
    return f"first-{uuid.uuid4().hex[:12]}"


def assert_on_screen(element: Locator, viewport: tuple[int, int]) -> None:
    """``element`` is visible and lies wholly inside the viewport (no scrolling sideways)."""
    expect(element).to_be_visible()
    box = element.bounding_box()
    assert box is not None
    width, height = viewport
    assert box["x"] >= 0, box
    assert box["y"] >= 0, box
    assert box["x"] + box["width"] <= width, box
    assert box["y"] + box["height"] <= height, box


def assert_no_sideways_scrolling(page: ChatPage, viewport: tuple[int, int]) -> None:
    """The page is as wide as the screen: a phone did not zoom out to fit wider content."""
    widths = page.page.evaluate("[window.innerWidth, document.documentElement.scrollWidth]")
    assert widths == [viewport[0], viewport[0]]


@pytest.mark.parametrize(("viewport", "mobile"), VIEWPORTS)
def test_fresh_load_logs_no_error_and_requests_nothing_that_fails(
    open_page: OpenPage, room: str, viewport: tuple[int, int], mobile: bool
) -> None:
    page = open_page("newcomer", room=room, viewport=viewport, mobile=mobile)

    # open() waited for the session check's answer: "logged-out", the form shown.
    expect(page.page.locator("#status-text")).to_have_text("Not logged in.")
    assert page.console_errors == []
    assert page.errors == []
    assert page.failed_requests == []


def test_close_codes_panel_is_hidden_until_it_has_something_to_show(
    open_page: OpenPage, room: str
) -> None:
    page = open_page("alice", room=room)
    panel = page.page.locator("#close-panel")
    expect(panel).to_be_hidden()

    page.log_in_and_connect(*ALICE)
    expect(panel).to_be_hidden()
    expect(page.page.locator("#close-log li")).to_have_count(0)
    # test_browser.py shows it with entries (a 4440, renewals in place).


@pytest.mark.parametrize(("viewport", "mobile"), VIEWPORTS)
def test_page_fits_the_screen_and_sends_a_message(
    open_page: OpenPage, room: str, viewport: tuple[int, int], mobile: bool
) -> None:
    page = open_page("alice", room=room, viewport=viewport, mobile=mobile)
    name = f"{viewport[0]}x{viewport[1]}"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    assert_on_screen(page.page.locator("#login-submit"), viewport)
    assert_no_sideways_scrolling(page, viewport)
    page.page.screenshot(path=str(SCREENSHOTS / f"login-{name}.png"))

    page.log_in_and_connect(*ALICE)
    message_input = page.page.locator("#message-input")
    send = page.page.locator("#send")
    assert_on_screen(message_input, viewport)
    assert_on_screen(send, viewport)
    assert_on_screen(page.page.locator("#room-title"), viewport)
    assert_no_sideways_scrolling(page, viewport)

    message_input.fill(f"Sent from a {name} screen.")
    if mobile:
        send.tap()
    else:
        send.click()
    page.expect_message("alice", f"Sent from a {name} screen.")
    expect(message_input).to_have_value("")
    assert_on_screen(page.message(f"Sent from a {name} screen."), viewport)
    assert_no_sideways_scrolling(page, viewport)
    page.page.screenshot(path=str(SCREENSHOTS / f"chat-{name}.png"))
