"""Smoke test of the built wheel, run by ``make smoke`` in a clean venv (``nox -s smoke``).

The checkout is not on ``sys.path``: a throwaway project in a temporary directory imports the
installed package, the way a user's project does. It checks that ``channels_jwt`` imports
before ``django.setup()``, that ``manage.py check`` has nothing to say about a default
configuration, and that one handshake through a real uvicorn is authenticated (the marker
echoed, the user handed to the consumer) while one without a token is refused with 4401.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SETTINGS = """
SECRET_KEY = {secret_key!r}
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1"]
USE_TZ = True
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "channels_jwt",
]
DATABASES = {{
    "default": {{"ENGINE": "django.db.backends.sqlite3", "NAME": {database!r}}}
}}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
CHANNELS_JWT = {{"SIGNING_KEY": {signing_key!r}}}
"""

ASGI = """
from django.core.asgi import get_asgi_application

django_asgi_app = get_asgi_application()

from channels.generic.websocket import AsyncJsonWebsocketConsumer
from channels.routing import ProtocolTypeRouter, URLRouter
from django.urls import path

from channels_jwt import JWTAuthMiddlewareStack


class WhoAmI(AsyncJsonWebsocketConsumer):
    async def connect(self):
        await self.accept()
        await self.send_json({"username": self.scope["user"].get_username()})


application = ProtocolTypeRouter({
    "http": django_asgi_app,
    "websocket": JWTAuthMiddlewareStack(URLRouter([path("ws/whoami/", WhoAmI.as_asgi())])),
})
"""


def fail(message: str) -> None:
    print(f"wheel smoke test FAILED: {message}", file=sys.stderr)
    raise SystemExit(1)


def write_project(root: Path) -> None:
    package = root / "smokeproject"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "settings.py").write_text(
        SETTINGS.format(
            secret_key=secrets.token_urlsafe(50),
            signing_key=secrets.token_urlsafe(48),
            database=str(root / "db.sqlite3"),
        )
    )
    (package / "asgi.py").write_text(ASGI)


def import_before_setup() -> str:
    import channels_jwt

    installed = Path(channels_jwt.__file__).resolve()
    if "site-packages" not in installed.parts:
        fail(f"channels_jwt imported from {installed}, not from the installed wheel")
    if not (installed.parent / "py.typed").is_file():
        fail("py.typed is missing from the wheel")
    return f"channels_jwt {channels_jwt.__version__} from {installed.parent}"


def check_and_migrate() -> None:
    from io import StringIO

    import django
    from django.core.management import call_command

    django.setup()
    output = StringIO()
    call_command("check", fail_level="INFO", stdout=output, stderr=output)
    if output.getvalue().strip() != "System check identified no issues (0 silenced).":
        fail(f"manage.py check printed:\n{output.getvalue()}")
    call_command("migrate", verbosity=0, interactive=False)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_until_listening(server: subprocess.Popen[bytes], port: int) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if server.poll() is not None:
            fail(f"uvicorn exited with {server.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    fail("uvicorn did not listen within 15 s")


async def handshakes(port: int, token: str) -> None:
    import websockets
    from websockets.asyncio.client import connect

    url = f"ws://127.0.0.1:{port}/ws/whoami/"
    async with connect(url, subprotocols=["access_token", token]) as socket_:
        if socket_.subprotocol != "access_token":
            fail(f"accepted subprotocol {socket_.subprotocol!r}, expected the marker")
        greeting = json.loads(await socket_.recv())
        if greeting != {"username": "smoke"}:
            fail(f"the consumer saw {greeting!r}")
    async with connect(url) as socket_:
        try:
            await socket_.recv()
        except websockets.ConnectionClosed as closed:
            if closed.rcvd is None or closed.rcvd.code != 4401:
                fail(f"a handshake without a token closed with {closed.rcvd!r}, expected 4401")
        else:
            fail("a handshake without a token was served")


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="channels-jwt-smoke-") as directory:
        root = Path(directory)
        write_project(root)
        os.chdir(root)
        sys.path.insert(0, str(root))
        os.environ["DJANGO_SETTINGS_MODULE"] = "smokeproject.settings"
        origin = import_before_setup()
        check_and_migrate()

        from django.contrib.auth import get_user_model

        from channels_jwt import issue_token

        token = issue_token(get_user_model().objects.create_user(username="smoke"))
        port = free_port()
        server = subprocess.Popen(  # noqa: S603 (our own interpreter and arguments)
            [sys.executable, "-m", "uvicorn", "smokeproject.asgi:application", "--port", str(port)],
            cwd=root,
            stdin=subprocess.DEVNULL,
        )
        try:
            wait_until_listening(server, port)
            asyncio.run(handshakes(port, token))
        finally:
            server.terminate()
            server.wait(timeout=10)
    print(f"wheel smoke test passed: {origin}; check clean; handshake authenticated, 4401 without")


if __name__ == "__main__":
    main()
