"""``ChatPage``: the example's chat page in Chromium, in the words a person would use.

The page exposes its state for tests: ``<body data-state="...">`` (``logged-out``,
``connecting``, ``connected``, ``refreshing``, ``waiting``, ``disabled``, ``failed``),
``window.closeCodes`` (every close code seen), ``window.refreshes`` (every ``token.refreshed``
reply: the token renewed in place) and ``window.chatEvents`` (each step, with the time in
milliseconds since the epoch).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from playwright.sync_api import ConsoleMessage, Error, Locator, Page, Request, Response, expect


class ChatPage:
    """One person's tab: a Playwright page with its console, errors and requests recorded."""

    def __init__(self, label: str, page: Page, base_url: str) -> None:
        self.label = label
        self.page = page
        self.base_url = base_url
        self.console: list[str] = []
        self.console_errors: list[str] = []
        self.errors: list[str] = []
        #: Requests that got no response, and responses with an HTTP error status.
        self.failed_requests: list[str] = []
        page.on("console", self._on_console)
        page.on("pageerror", self._on_error)
        page.on("requestfailed", self._on_request_failed)
        page.on("response", self._on_response)

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

    def open(self, *, room: str, transport: str | None = None, renew_in_place: bool = True) -> None:
        """Load the page in ``room`` and wait for the login form.

        ``transport="query"`` sends the token as ``?token=``; ``renew_in_place=False`` opens
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

    def expect_state(self, state: str, *, timeout: float | None = None) -> None:
        """Wait until ``<body data-state>`` is ``state``."""
        expect(self.page.locator("body")).to_have_attribute("data-state", state, timeout=timeout)

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
    def close_codes(self) -> list[int]:
        """Every close code the page has seen, in order."""
        codes: list[int] = self.page.evaluate("window.closeCodes")
        return codes

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

    def wait_for_close_code(self, code: int, *, timeout_ms: float) -> None:
        """Wait until the page has seen ``code``."""
        self.page.wait_for_function(
            "code => window.closeCodes.includes(code)", arg=code, timeout=timeout_ms
        )

    def status_text(self) -> str:
        """The connection indicator's words."""
        return self.page.inner_text("#status-text")
