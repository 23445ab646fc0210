#!/usr/bin/env python
"""A command-line chat client: how a native or mobile app talks to the example project.

It logs in over HTTP (``GET /api/csrf``, then ``POST /api/login``; the session cookie stays in
a cookie jar), then opens the WebSocket with an ``Authorization: Bearer <access token>``
header, which non-browser clients can send and browsers cannot. It prints the room's recent
messages and every new one, and can send one (``--say``). When the server closes the socket,
the close code says what happened; the client prints it in words and exits with a status of
its own (see ``EXIT_STATUSES``), except for 4440 (token expired), where a logged-in client
gets a new token from ``/api/refresh`` and reconnects, as an app would.

A logged-in client also renews its token in place, without reconnecting: at 80% of the
token's life (at least 1 s before it expires) it gets a new one from ``/api/refresh`` and sends
``{"type": "token.refresh", "token": ...}`` on the open socket; the server answers
``{"type": "token.refreshed", "expires_at": ...}``. If that fails, the server closes the socket
with 4440 when the old token expires, and the refresh-and-reconnect above takes over.

Examples (with ``make demo`` running)::

    python example_project/clients/chat_client.py --username alice --password alice-demo-password
    python example_project/clients/chat_client.py --username bob --password bob-demo-password \\
        --say "hello from the terminal"
    python example_project/clients/chat_client.py --token not-a-jwt       # exits 10 (4400)

Needs only the standard library and ``websockets`` 14.1 or later (``pip install websockets``).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import http.cookiejar
import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from contextlib import suppress
from datetime import datetime
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

#: Close code → (exit status, what it means for this client).
EXIT_STATUSES: dict[int, tuple[int, str]] = {
    4400: (10, "the server says the token is malformed: fix the client, do not retry"),
    4401: (11, "the server did not accept the token: log in to get a valid one"),
    4403: (13, "this account is disabled (or does not exist): stop"),
    4429: (12, "too many failed attempts from this address: back off"),
    4440: (14, "the token expired and could not be refreshed: log in again"),
    4441: (15, "the token was revoked: log in again"),
    4503: (16, "the server cannot check credentials right now: try again later"),
}
EXIT_OK = 0
EXIT_LOGIN_FAILED = 3
EXIT_UNREACHABLE = 4
EXIT_OTHER_CLOSE = 5
EXIT_TIMEOUT = 6
#: A logged-in client refreshes its token after a 4440 at most this many times in a row.
MAX_REFRESHES = 3

EPILOG = "exit statuses:\n" + "\n".join(
    [
        f"  {EXIT_OK:>2}  done (--say confirmed, or --count messages received)",
        f"  {EXIT_LOGIN_FAILED:>2}  login failed (wrong username or password, or HTTP error)",
        f"  {EXIT_UNREACHABLE:>2}  the server could not be reached or refused the upgrade",
        f"  {EXIT_OTHER_CLOSE:>2}  the socket closed with another code",
        f"  {EXIT_TIMEOUT:>2}  --timeout passed",
        *(
            f"  {status:>2}  close code {code}: {text}"
            for code, (status, text) in EXIT_STATUSES.items()
        ),
    ]
)


class LoginFailed(Exception):
    """The HTTP login or refresh did not produce a token."""


class ClientExit(Exception):
    """Stop with ``status`` after printing ``message`` to stderr."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Session:
    """The HTTP side: a cookie jar with the session and CSRF cookies, JSON in and out."""

    def __init__(self, server: str) -> None:
        self.server = server.rstrip("/")
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))

    def _csrf_token(self) -> str:
        return next((cookie.value or "" for cookie in self.jar if cookie.name == "csrftoken"), "")

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """Send one request; return the JSON body, or raise ``LoginFailed``."""
        headers = {
            "Accept": "application/json",
            # Django's CSRF protection: the token from the cookie, echoed in a header, and a
            # Referer from this site (checked on https only).
            "X-CSRFToken": self._csrf_token(),
            "Referer": f"{self.server}/",
        }
        data = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            data = json.dumps(body).encode()
        request = urllib.request.Request(  # noqa: S310 (the scheme is checked in main())
            self.server + path, data=data, headers=headers, method=method
        )
        try:
            with self.opener.open(request, timeout=10) as response:
                return json.load(response)
        except urllib.error.HTTPError as exc:
            try:
                detail = json.load(exc).get("detail", "")
            except (ValueError, AttributeError):
                detail = ""
            raise LoginFailed(f"{method} {path}: HTTP {exc.code} {detail}".strip()) from exc
        except (urllib.error.URLError, OSError) as exc:
            raise ClientExit(EXIT_UNREACHABLE, f"cannot reach {self.server}: {exc}") from exc

    def log_in(self, username: str, password: str) -> dict[str, Any]:
        """Get the CSRF cookie, log in, and return ``{"access", "expires_in", "username"}``."""
        self.request("GET", "/api/csrf")
        result: dict[str, Any] = self.request(
            "POST", "/api/login", {"username": username, "password": password}
        )
        return result

    def refresh(self) -> dict[str, Any]:
        """A new access token from the session."""
        result: dict[str, Any] = self.request("POST", "/api/refresh", {})
        return result


def websocket_url(server: str, room: str) -> str:
    """``http://host:port`` → ``ws://host:port/ws/chat/<room>/`` (https → wss)."""
    parts = urllib.parse.urlsplit(server)
    scheme = "wss" if parts.scheme == "https" else "ws"
    return f"{scheme}://{parts.netloc}/ws/chat/{room}/"


def renew_delay(expires_in: float, received_at: float) -> float:
    """Seconds from now until the token received at ``received_at`` (``time.monotonic()``)
    should be renewed: at 80% of its life, at least 1 s before its end, not before half of it.
    ``exp`` is whole seconds, so the token may end up to 1 s sooner than ``expires_in`` says."""
    life = max(0.0, expires_in - 1)
    at = max(0.5, life / 2, min(life * 0.8, life - 1))
    return max(0.0, received_at + at - time.monotonic())


def show(message: dict[str, Any]) -> None:
    """Print one chat message."""
    sent = datetime.fromisoformat(message["sent_at"]).strftime("%H:%M:%S")
    print(f"[#{message['room']} {sent}] {message['username']}: {message['text']}", flush=True)


class Chat:
    """One run of the client: connect, reconnect after a refresh, stop when done."""

    def __init__(
        self, args: argparse.Namespace, session: Session | None, login: dict[str, Any]
    ) -> None:
        self.args = args
        self.session = session
        self.token = ""
        self.expires_in: float | None = None
        self.received_at = 0.0
        self.set_token(login)
        self.client_id = uuid.uuid4().hex  # the same on a resend, so it is stored once
        self.received = 0
        self.refreshes = 0  # in a row, without a working connection in between
        self.shown: set[int] = set()  # ids of the messages printed (history repeats them)

    def set_token(self, data: dict[str, Any]) -> None:
        """Use the token of a login or refresh answer (``{"access", "expires_in"}``)."""
        self.token = data["access"]
        self.expires_in = data.get("expires_in")
        self.received_at = time.monotonic()

    async def run(self) -> int:
        while True:
            try:
                return await self.once()
            except ConnectionClosed as exc:
                code = exc.rcvd.code if exc.rcvd else 1006
                reason = exc.rcvd.reason if exc.rcvd else ""
                if code == 4440 and self.session is not None and self.refreshes < MAX_REFRESHES:
                    self.refreshes += 1
                    print("token expired (4440): refreshing and reconnecting", flush=True)
                    try:
                        self.set_token(self.session.refresh())
                    except LoginFailed as failure:
                        raise self.closed(code, reason) from failure
                    continue
                raise self.closed(code, reason) from exc

    def closed(self, code: int, reason: str) -> ClientExit:
        status, meaning = EXIT_STATUSES.get(code, (EXIT_OTHER_CLOSE, "closed"))
        detail = f" ({reason})" if reason else ""
        return ClientExit(status, f"connection closed with {code}{detail}: {meaning}")

    async def once(self) -> int:
        url = websocket_url(self.args.server, self.args.room)
        headers = {"Authorization": f"Bearer {self.token}"}
        try:
            async with connect(url, additional_headers=headers, open_timeout=10) as ws:
                return await self.converse(ws)
        except (InvalidHandshake, OSError, asyncio.TimeoutError) as exc:
            raise ClientExit(EXIT_UNREACHABLE, f"cannot open {url}: {exc}") from exc

    async def converse(self, ws: ClientConnection) -> int:
        # The first frame is the room's history; a refused handshake closes before it.
        hello = json.loads(await ws.recv())
        print(f"connected to #{hello['room']} as {hello['username']}", flush=True)
        self.refreshes = 0
        renewer = asyncio.create_task(self.renew_in_place(ws))
        try:
            return await self.chat(ws, hello)
        finally:
            renewer.cancel()
            with suppress(asyncio.CancelledError):
                await renewer

    async def renew_in_place(self, ws: ClientConnection) -> None:
        """Send a new token on the open socket before the current one expires, as long as the
        session gives one. Without a session (``--token``), or once it fails, the server closes
        the socket with 4440 at expiry and ``run`` takes over."""
        if self.session is None or not self.expires_in:
            return
        while True:
            await asyncio.sleep(renew_delay(self.expires_in, self.received_at))
            try:
                data = await asyncio.to_thread(self.session.refresh)
            except (LoginFailed, ClientExit) as exc:
                print(f"could not renew the token in place: {exc}", file=sys.stderr, flush=True)
                return
            self.set_token(data)
            try:
                await ws.send(json.dumps({"type": "token.refresh", "token": self.token}))
            except ConnectionClosed:
                return  # the reading side sees the close and its code

    async def chat(self, ws: ClientConnection, hello: dict[str, Any]) -> int:
        for message in hello["messages"][-self.args.history :] if self.args.history else []:
            self.show(message)
        if self.args.say:
            frame = {"type": "message", "text": self.args.say, "client_id": self.client_id}
            await ws.send(json.dumps(frame))
        async for raw in ws:
            frame = json.loads(raw)
            if frame.get("type") == "error":
                print(f"server: {frame.get('detail')}", file=sys.stderr, flush=True)
                continue
            if frame.get("type") == "token.refreshed":
                exp = frame.get("expires_at")
                until = datetime.fromtimestamp(exp).strftime("%H:%M:%S") if exp else "?"
                print(f"token renewed in place, valid until {until}", flush=True)
                continue
            if frame.get("type") != "message":
                continue
            self.show(frame)
            mine = frame["username"] == hello["username"]
            if self.args.say and mine and frame["client_id"] == self.client_id:
                if not self.args.count:
                    return EXIT_OK
                continue
            self.received += 1
            if self.args.count and self.received >= self.args.count:
                return EXIT_OK
        # The server closed with 1000 or 1001 (a restart, say): not a refusal, but the end.
        raise self.closed(ws.close_code or 1005, ws.close_reason or "")

    def show(self, message: dict[str, Any]) -> None:
        """Print a chat message once (history after a reconnect repeats recent ones)."""
        if message["id"] not in self.shown:
            self.shown.add(message["id"])
            show(message)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Chat with the channels-jwt example project from a terminal.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--server", default="http://127.0.0.1:8000", help="the site's URL")
    parser.add_argument("--room", default="lobby", help="room name (default: lobby)")
    parser.add_argument("--username", help="log in as this user")
    parser.add_argument("--password", help="password (asked for when missing)")
    parser.add_argument("--token", help="use this access token instead of logging in")
    parser.add_argument("--say", help="send this message, exit once the room has it")
    parser.add_argument(
        "--count", type=int, default=0, help="exit after this many new messages (0: never)"
    )
    parser.add_argument(
        "--history", type=int, default=10, help="recent messages to print on connecting"
    )
    parser.add_argument("--timeout", type=float, help="give up after this many seconds")
    args = parser.parse_args(argv)
    if urllib.parse.urlsplit(args.server).scheme not in ("http", "https"):
        parser.error("--server must be an http:// or https:// URL")
    if args.token is None and not args.username:
        parser.error("give --username (and --password), or --token")
    return args


async def amain(args: argparse.Namespace) -> int:
    session = None
    login: dict[str, Any] = {"access": args.token}  # no expires_in: no renewal in place
    if args.token is None:
        session = Session(args.server)
        password = args.password if args.password is not None else getpass.getpass()
        try:
            login = session.log_in(args.username, password)
        except LoginFailed as exc:
            raise ClientExit(EXIT_LOGIN_FAILED, f"login failed: {exc}") from exc
    chat = Chat(args, session, login)
    if args.timeout is None:
        return await chat.run()
    try:
        return await asyncio.wait_for(chat.run(), args.timeout)
    except asyncio.TimeoutError as exc:
        raise ClientExit(EXIT_TIMEOUT, f"timed out after {args.timeout} s") from exc


def main(argv: list[str] | None = None) -> int:
    """Run the client; return the exit status."""
    args = parse_args(argv)
    try:
        return asyncio.run(amain(args))
    except ClientExit as exc:
        print(f"chat_client: {exc.message}", file=sys.stderr, flush=True)
        return exc.status
    except KeyboardInterrupt:
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
