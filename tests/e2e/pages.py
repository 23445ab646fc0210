"""The example's pages in Chromium, in the words a person would use.

``ChatPage`` (``/``): the page exposes its state for tests: ``<body data-state="...">``
(``logged-out``, ``connecting``, ``connected``, ``refreshing``, ``waiting``, ``disabled``,
``failed``), ``window.closeCodes`` (every close code seen), ``window.refreshes`` (every
``token.refreshed`` reply: the token renewed in place) and ``window.chatEvents`` (each step, with
the time in milliseconds since the epoch).

``FeedPage`` (``/feed/?room=<room>``): the GraphQL feed, a graphql-ws subscription. Its hooks:
``<body data-state="...">`` (``logged-out``, ``connecting``, ``subscribed``, ``reconnecting``,
``revoked``, ``failed``), ``window.closeCodes``, ``window.acks`` (every ``connection_ack``
payload) and ``window.feedEvents`` (each step, ``type`` and ``at``).

Both record what a person would see in the developer tools: console messages, uncaught errors,
failed requests, and every WebSocket the page opened with the frames it sent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from playwright.sync_api import (
    ConsoleMessage,
    Error,
    Locator,
    Page,
    Request,
    Response,
    WebSocket,
    expect,
)


@dataclass
class Socket:
    """A WebSocket the page opened: its URL and the text frames it sent, in order."""

    url: str
    sent: list[str] = field(default_factory=list)


class Tab:
    """A Playwright page with its console, errors, requests and sockets recorded."""

    def __init__(self, label: str, page: Page, base_url: str) -> None:
        self.label = label
        self.page = page
        self.base_url = base_url
        self.console: list[str] = []
        self.console_errors: list[str] = []
        self.errors: list[str] = []
        #: Requests that got no response, and responses with an HTTP error status.
        self.failed_requests: list[str] = []
        #: Every WebSocket the page opened, in order.
        self.sockets: list[Socket] = []
        page.on("console", self._on_console)
        page.on("pageerror", self._on_error)
        page.on("requestfailed", self._on_request_failed)
        page.on("response", self._on_response)
        page.on("websocket", self._on_websocket)

    def _on_console(self, message: ConsoleMessage) -> None:
        self.console.append(f"[{message.type}] {message.text}")
        if message.type == "error":
            self.console_errors.append(message.text)

    def _on_error(self, error: Error) -> None:
        self.errors.append(str(error))

    def _on_request_failed(self, request: Request) -> None:
        self.failed_requests.append(f"{request.method} {request.url}: {request.failure}")

    def _on_response(self, response: Response) -> None:
        if response.status >= 400:
            request = response.request
            self.failed_requests.append(f"{request.method} {request.url}: {response.status}")

    def _on_websocket(self, websocket: WebSocket) -> None:
        socket = Socket(websocket.url)
        self.sockets.append(socket)

        def sent(payload: str | bytes) -> None:
            socket.sent.append(payload if isinstance(payload, str) else repr(payload))

        websocket.on("framesent", sent)

    def expect_state(self, state: str, *, timeout: float | None = None) -> None:
        """Wait until ``<body data-state>`` is ``state``."""
        expect(self.page.locator("body")).to_have_attribute("data-state", state, timeout=timeout)

    @property
    def close_codes(self) -> list[int]:
        """Every close code the page has seen, in order."""
        codes: list[int] = self.page.evaluate("window.closeCodes")
        return codes

    def wait_for_close_code(self, code: int, *, timeout_ms: float) -> None:
        """Wait until the page has seen ``code``."""
        self.page.wait_for_function(
            "code => window.closeCodes.includes(code)", arg=code, timeout=timeout_ms
        )


class ChatPage(Tab):
    """One person's chat tab."""

    def open(self, *, room: str, transport: str | None = None, renew_in_place: bool = True) -> None:
        """Load the page in ``room`` and wait for the login form.

        ``transport="query"`` sends the token as ``?token=``, ``transport="message"`` in the
        socket's first frame (``{"type": "authenticate", "token": ...}``, nothing in the
        handshake); the default is the subprotocol. ``renew_in_place=False`` opens
        the page with ``?refresh=reconnect``: it never renews its token on the open socket,
        so the server closes it with 4440 and the page refreshes and reconnects.
        """
        params = {"transport": transport} if transport else {}
        if not renew_in_place:
            params["refresh"] = "reconnect"
        query = f"?{urlencode(params)}" if params else ""
        self.page.goto(f"{self.base_url}/{query}#{room}")
        self.expect_state("logged-out")
        expect(self.page.locator("#login-view")).to_be_visible()

    def log_in(self, username: str, password: str) -> None:
        """Fill in and submit the login form."""
        self.page.fill("#login-username", username)
        self.page.fill("#login-password", password)
        self.page.click("#login-submit")

    def log_in_and_connect(self, username: str, password: str) -> None:
        """Log in and wait until the room's history has arrived over the socket."""
        self.log_in(username, password)
        self.expect_state("connected")
        expect(self.page.locator("#username")).to_have_text(username)

    def log_in_for_token(self, username: str, password: str) -> str:
        """Log in, wait until connected, and return the access token the login handed out."""
        with self.page.expect_response("**/api/login") as login:
            self.log_in(username, password)
        token: str = login.value.json()["access"]
        self.expect_state("connected")
        return token

    def log_out(self) -> None:
        """Click "Log out" and wait for the login form (the session ends on the server)."""
        with self.page.expect_response("**/api/logout"):
            self.page.click("#logout")
        self.expect_state("logged-out")
        expect(self.page.locator("#login-view")).to_be_visible()

    def say(self, text: str) -> None:
        """Type ``text`` in the message box and send it."""
        self.page.fill("#message-input", text)
        self.page.press("#message-input", "Enter")

    def message(self, text: str) -> Locator:
        """The confirmed message (stored by the server, so it has an id) with this text."""
        return self.page.locator("#messages li[data-id]", has_text=text)

    def expect_message(self, author: str, text: str) -> None:
        """Wait until the room shows ``text``, stamped with ``author`` by the server."""
        item = self.message(text)
        expect(item).to_have_count(1)
        expect(item).to_have_attribute("data-username", author)
        expect(item.locator(".author")).to_have_text(author)

    def switch_room(self, room: str) -> None:
        """Join another room with the room form (the socket reconnects to it)."""
        self.page.fill("#room-input", room)
        self.page.press("#room-input", "Enter")

    @property
    def refreshes(self) -> list[dict[str, Any]]:
        """Every ``token.refreshed`` reply: ``at``, ``socket``, ``expires_at`` and
        ``previous_expires_at`` (epoch milliseconds; the server's word on the token's end)."""
        refreshes: list[dict[str, Any]] = self.page.evaluate("window.refreshes")
        return refreshes

    @property
    def events(self) -> list[dict[str, Any]]:
        """The page's event log (``type``, ``at`` in epoch milliseconds, details)."""
        events: list[dict[str, Any]] = self.page.evaluate("window.chatEvents")
        return events

    def status_text(self) -> str:
        """The connection indicator's words."""
        return self.page.inner_text("#status-text")


class FeedPage(Tab):
    """The GraphQL feed of one room, in a tab of a browser context (its session: log in on a
    ``ChatPage`` of the same context first, or the feed shows its login view)."""

    def open(self, *, room: str) -> None:
        """Load ``/feed/?room=<room>`` and wait until the page knows whether there is a session
        (it then subscribes, or shows its login view)."""
        self.page.goto(f"{self.base_url}/feed/?{urlencode({'room': room})}")
        expect(self.page.locator("body")).not_to_have_attribute("data-state", "starting")

    def expect_subscribed(self, *, acks: int = 1) -> None:
        """Wait until the page has had ``acks`` ``connection_ack`` in all and is subscribed."""
        self.page.wait_for_function("count => window.acks.length >= count", arg=acks)
        self.expect_state("subscribed")
        assert len(self.acks) == acks, self.acks

    def post(self, text: str) -> None:
        """Post ``text`` with the form (the ``postMessage`` mutation over HTTP) and wait until
        the server has answered it without errors."""
        with self.page.expect_response("**/graphql/") as response:
            self.page.fill("#post-input", text)
            self.page.click("#post")
        assert response.value.status == 200, response.value.text()
        result = response.value.json()
        assert "errors" not in result, result
        expect(self.page.locator("#post-input")).to_have_value("")

    def entry(self, text: str) -> Locator:
        """The feed's item with this text."""
        return self.page.locator("#feed li", has_text=text)

    def expect_entry(self, author: str, text: str) -> None:
        """Wait until the feed shows ``text`` from ``author``, once."""
        item = self.entry(text)
        expect(item).to_have_count(1)
        expect(item).to_have_text(f"{author}: {text}")

    @property
    def acks(self) -> list[dict[str, Any]]:
        """Every ``connection_ack`` payload: ``username``, ``expiresAt``, ``receivedParams``."""
        acks: list[dict[str, Any]] = self.page.evaluate("window.acks")
        return acks

    @property
    def events(self) -> list[dict[str, Any]]:
        """The page's event log (``event``, ``at`` in epoch milliseconds, details)."""
        events: list[dict[str, Any]] = self.page.evaluate("window.feedEvents")
        return events


def first(
    events: list[dict[str, Any]], kind: str, after: float = 0, **match: Any
) -> dict[str, Any]:
    """The first event of ``kind`` at or after ``after`` whose fields include ``match``."""
    for event in events:
        if event["type"] == kind and event["at"] >= after and match.items() <= event.items():
            return event
    raise AssertionError(f"no {kind} event {match} after {after} in {events}")
