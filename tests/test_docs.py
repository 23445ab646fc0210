"""The docs: they describe everything the package has, and the code they print works.

The first tests read the Markdown: every setting, close code, reason, check id and public name
is documented, and every Python block compiles. The others run what the pages print, for
real: the Python client recipe against uvicorn, the browser recipe in Chromium, and the
tutorial, built from its own files into a fresh ``startproject``, checked, migrated, tested,
served by uvicorn and talked to by its Python client, its refusal script and its page; and
the installation page's quickstart, from ``django-admin startproject`` (its own commands) to a
socket opened with a token from its token endpoint, checked and migrated without a message.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import channels_jwt
from channels_jwt import config
from channels_jwt.conf import DEFAULTS
from channels_jwt.exceptions import REASONS, CloseCode
from tests import harness
from tests.live.conftest import (
    LiveServer,
    LiveUsers,
    prepare_database,
    running_server,
)
from tests.live.server_settings import SIGNING_KEY
from tests.processes import free_port, stop, wait_until_listening

#: Tokens signed with this suite's servers' key.
token_for = partial(harness.token_for, key=SIGNING_KEY)

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"
#: Every Markdown page of the site (the build output excluded).
PAGES = sorted(page for page in DOCS.rglob("*.md") if "_build" not in page.parts)
#: A fenced block: its info string (language) and its text.
FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```$", re.DOTALL | re.MULTILINE)
#: The first line of a block that names the file it is: ``# path``, ``// path``, ``<!-- path -->``.
FILE_NAME = re.compile(r"\A(?:#|//|<!--) ([\w./-]+\.\w+)( \(add at the end\))?(?: -->)?\n")
#: Seconds any single client step may take in the tests that run the docs' code.
TIMEOUT = 10.0


def read(page: str) -> str:
    return (DOCS / page).read_text()


def page_id(page: Path) -> str:
    return str(page.relative_to(REPO))


def blocks(page: Path, language: str) -> list[str]:
    """The text of every fenced block in ``page`` whose info string is ``language``."""
    return [text for info, text in FENCE.findall(page.read_text()) if info.strip() == language]


def named_blocks(page: Path) -> dict[str, tuple[str, bool]]:
    """The blocks that name their file: path → (text, whether to append it to the file)."""
    named = {}
    for _, text in FENCE.findall(page.read_text()):
        match = FILE_NAME.match(text)
        if match:
            named[match[1]] = (text, bool(match[2]))
    return named


def load_module(name: str, source: str, origin: str) -> ModuleType:
    """Run ``source`` as a fresh module called ``name``."""
    module = ModuleType(name)
    module.__file__ = origin
    # The docs' own code, run exactly as printed: that is the point of these tests.
    exec(compile(source, origin, "exec"), module.__dict__)  # noqa: S102
    return module


# --- What the pages mention --------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(DEFAULTS))
def test_every_setting_is_documented_with_its_type(name: str) -> None:
    assert re.search(rf"^`{name}: [^`]+`$", read("settings.md"), re.MULTILINE)


@pytest.mark.parametrize("name", sorted(DEFAULTS))
def test_every_setting_has_a_default_and_an_example(name: str) -> None:
    page = read("settings.md")
    entry = re.search(rf"^`{name}: [^`]+`\n(.*?)(?=\n\n|\Z)", page, re.MULTILINE | re.DOTALL)
    assert entry is not None
    assert "Default:" in entry[1]
    assert "Example:" in entry[1]


def test_settings_page_documents_no_unknown_setting() -> None:
    documented = re.findall(r"^`([A-Z_]+): ", read("settings.md"), re.MULTILINE)
    assert sorted(documented) == sorted(DEFAULTS)


@pytest.mark.parametrize("code", list(CloseCode), ids=lambda code: code.name)
def test_every_close_code_is_documented(code: CloseCode) -> None:
    page = read("close-codes.md")
    assert f"| {code.value} | `{code.name}` |" in page


@pytest.mark.parametrize("code", list(CloseCode), ids=lambda code: code.name)
def test_every_close_code_is_handled_by_the_client_recipes(code: CloseCode) -> None:
    """The client guide's table says what a client does on each code."""
    assert re.search(rf"^\| {code.value} \|", read("clients/index.md"), re.MULTILINE)


@pytest.mark.parametrize("reason", sorted(REASONS))
def test_every_reason_is_documented(reason: str) -> None:
    assert f"`{reason}`" in read("close-codes.md")


def test_every_check_id_is_documented() -> None:
    source = Path(config.__file__).read_text()
    ids = {f"channels_jwt.E{int(n):03d}" for n in re.findall(r"_error\(\s*(\d+),", source)}
    ids |= set(re.findall(r"channels_jwt\.[WI]\d{3}", source))
    documented = set(re.findall(r"`(channels_jwt\.[EWI]\d{3})`", read("checks.md")))
    assert ids
    assert documented == ids


@pytest.mark.parametrize("name", channels_jwt.__all__)
def test_every_public_name_is_in_the_docs_or_readme(name: str) -> None:
    text = "".join(page.read_text() for page in PAGES)
    text += (REPO / "README.md").read_text() + (REPO / "CHANGELOG.md").read_text()
    assert name in text


@pytest.mark.parametrize("name", channels_jwt.__all__)
def test_every_public_name_is_in_the_api_reference(name: str) -> None:
    """The API page lists each name where users import it from (autodoc does the rest)."""
    assert re.search(rf"^\.\. auto\w+:: channels_jwt\.{name}$", read("api.md"), re.MULTILINE)


def test_public_api_is_sorted() -> None:
    assert channels_jwt.__all__ == sorted(channels_jwt.__all__)


@pytest.mark.parametrize("page", [*PAGES, REPO / "README.md"], ids=page_id)
def test_python_blocks_compile(page: Path) -> None:
    for block in blocks(page, "python"):
        compile(block, page_id(page), "exec")


def test_pages_have_python_blocks() -> None:
    """The block pattern still matches the pages (else the test above proves nothing)."""
    assert sum(len(blocks(page, "python")) for page in PAGES) > 30


# --- The Python client recipe, against uvicorn ----------------------------------------------

RECIPE_PAGE = DOCS / "clients" / "python.md"


@pytest.fixture(scope="module")
def recipe() -> ModuleType:
    """``jwt_socket.py`` from the Python recipe page, as printed."""
    source, _ = named_blocks(RECIPE_PAGE)["jwt_socket.py"]
    return load_module("jwt_socket", source, page_id(RECIPE_PAGE))


@pytest.fixture(scope="module")
def live_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The live servers' directory: their SQLite database and logs (as in tests/live)."""
    return tmp_path_factory.mktemp("docs-live")


@pytest.fixture(scope="module")
def live_users(live_dir: Path) -> LiveUsers:
    """The live database, migrated, with an active and an inactive user (as in tests/live)."""
    return prepare_database(live_dir)


@pytest.fixture(scope="module")
def uvicorn_server(live_dir: Path, live_users: LiveUsers) -> Iterator[LiveServer]:
    """uvicorn serving ``tests.live.asgi_app``: ``/ws/echo/`` closes, ``/ws/deny/`` denies."""
    with running_server("uvicorn", live_dir) as server:
        yield server


@pytest.mark.live
async def test_python_recipe_refreshes_and_reconnects_on_expiry(
    recipe: ModuleType, uvicorn_server: LiveServer, live_users: LiveUsers
) -> None:
    """4440: the recipe asks for a new token at once and is back on the next frame."""
    refreshes: list[bool] = []
    frames: list[dict[str, Any]] = []

    async def get_token(refresh: bool) -> str:
        refreshes.append(refresh)
        return token_for(live_users.active, lifetime=2)

    async def on_message(ws: Any, frame: str) -> bool:
        frames.append(json.loads(frame))
        return len(frames) == 2

    url = uvicorn_server.url("/ws/echo/python-recipe/")
    await asyncio.wait_for(recipe.run(url, get_token, on_message), TIMEOUT)
    assert refreshes == [False, True]
    assert [frame["user"]["pk"] for frame in frames] == [live_users.active] * 2
    assert [frame["subprotocols"] for frame in frames] == [[], []]  # the token stayed out


@dataclass(frozen=True)
class Refusal:
    """A connection the server refuses, and what the recipe must raise for it."""

    route: str
    user: str
    key: str = SIGNING_KEY
    header: bool = False
    token: str | None = None


REFUSALS = {
    "inactive-user": (Refusal("echo", "inactive"), 4403, "user_rejected"),
    "wrong-key": (Refusal("echo", "active", key="another-key-" + "x" * 40), 4401, "token_invalid"),
    "not-a-jwt": (Refusal("echo", "active", token="not-a-jwt"), 4400, "token_malformed"),
    # The live server's TOKEN_SOURCES lack "header": the token is not even looked at.
    "header-not-enabled": (Refusal("echo", "active", header=True), 4401, "token_missing"),
    # REJECT_MODE="deny": an HTTP 403 with a JSON body instead of a close code.
    "denied-upgrade": (Refusal("deny", "inactive"), 4403, "user_rejected"),
}


@pytest.mark.live
@pytest.mark.parametrize(("refusal", "code", "reason"), REFUSALS.values(), ids=REFUSALS.keys())
async def test_python_recipe_stops_where_retrying_cannot_help(
    recipe: ModuleType,
    uvicorn_server: LiveServer,
    live_users: LiveUsers,
    refusal: Refusal,
    code: int,
    reason: str,
) -> None:
    token = refusal.token or token_for(getattr(live_users, refusal.user), key=refusal.key)
    calls = 0

    async def get_token(refresh: bool) -> str:
        nonlocal calls
        calls += 1
        return token

    async def on_message(ws: Any, frame: str) -> bool:
        raise AssertionError(f"a refused connection delivered {frame!r}")

    url = uvicorn_server.url(f"/ws/{refusal.route}/python-recipe/")
    with pytest.raises(recipe.Stopped) as stopped:
        await asyncio.wait_for(
            recipe.run(url, get_token, on_message, header=refusal.header), TIMEOUT
        )
    assert (stopped.value.code, stopped.value.reason) == (code, reason)
    assert calls == 1


async def test_python_recipe_backs_off_and_retries_when_the_server_is_unreachable(
    recipe: ModuleType,
) -> None:
    """No server: the recipe waits (0.5 to 1 s the first time) and tries again."""
    attempts: list[float] = []

    async def get_token(refresh: bool) -> str | None:
        attempts.append(time.monotonic())
        return "a.b.c" if len(attempts) == 1 else None  # the second call ends the run

    async def on_message(ws: Any, frame: str) -> bool:
        raise AssertionError("nothing listens there")

    url = f"ws://127.0.0.1:{free_port()}/ws/nothing/"
    with pytest.raises(recipe.Stopped):
        await asyncio.wait_for(recipe.run(url, get_token, on_message), TIMEOUT)
    assert len(attempts) == 2
    assert attempts[1] - attempts[0] >= 0.5


# --- The browser recipe, in Chromium -----------------------------------------------------

BROWSER_PAGE = DOCS / "clients" / "browser.md"


@pytest.fixture
def chromium() -> Iterator[Any]:
    """Debian's Chromium under Playwright (as in tests/e2e: never a downloaded browser).

    One per test: Playwright's synchronous API keeps an event loop running while it is
    open, which the asynchronous tests of this module cannot share.
    """
    from playwright.sync_api import sync_playwright

    from tests.e2e.conftest import CHROMIUM_ARGS, DEFAULT_CHROMIUM

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=os.environ.get("CHROMIUM_PATH", DEFAULT_CHROMIUM), args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()


#: Runs ``JWTSocket`` until two frames arrived or it stopped; resolves with what happened.
DRIVE_JWT_SOCKET = """
([url, expected]) => new Promise((resolve) => {
  const events = [];
  let frames = 0;
  setTimeout(() => resolve([...events, "timeout"]), 10000);
  new JWTSocket(url, {
    getToken: async ({ refresh }) => {
      events.push(`token refresh=${refresh}`);
      return await window.mintToken(refresh);
    },
    onConnect: () => events.push("connect"),
    onMessage: (data) => {
      events.push(`user ${JSON.parse(data).user.pk}`);
      if (++frames === expected) resolve(events);
    },
    onRetry: (code) => events.push(`retry ${code}`),
    onStop: (code) => {
      events.push(`stop ${code}`);
      resolve(events);
    },
  });
})
"""

CONNECTED = ["connect", "user {active}"]
BROWSER_CASES = {
    # Tokens that live 2 s: 4440, a refreshed token, the same user again.
    "expiry": (
        "active",
        SIGNING_KEY,
        2,
        ["token refresh=false", *CONNECTED, "token refresh=true", *CONNECTED],
    ),
    "inactive-user": ("inactive", SIGNING_KEY, 1, ["token refresh=false", "stop 4403"]),
    "wrong-key": ("active", "another-key-" + "x" * 40, 1, ["token refresh=false", "stop 4401"]),
}


@pytest.mark.e2e
@pytest.mark.live
@pytest.mark.parametrize(
    ("user", "key", "frames", "expected"), BROWSER_CASES.values(), ids=BROWSER_CASES.keys()
)
def test_browser_recipe_acts_on_close_codes(
    chromium: Any,
    uvicorn_server: LiveServer,
    live_users: LiveUsers,
    user: str,
    key: str,
    frames: int,
    expected: list[str],
) -> None:
    source = named_blocks(BROWSER_PAGE)["jwt-socket.js"][0]
    user_id = getattr(live_users, user)
    page = chromium.new_page()
    try:
        page.expose_function(
            "mintToken",
            lambda refresh: token_for(user_id, key=key, lifetime=2 if frames > 1 else 60),
        )
        page.add_script_tag(content=source + "\nwindow.JWTSocket = JWTSocket;", type="module")
        page.wait_for_function("typeof window.JWTSocket === 'function'")
        url = uvicorn_server.url("/ws/echo/browser-recipe/")
        events = page.evaluate(DRIVE_JWT_SOCKET, [url, frames])
    finally:
        page.close()
    assert events == [event.format(active=live_users.active) for event in expected]


# --- Pages that build a project: the tutorial and the installation page ---------------------


@dataclass(frozen=True)
class DocsProject:
    """A project a page builds, on disk, and the environment its commands run in."""

    path: Path
    env: dict[str, str]

    @classmethod
    def empty(cls, path: Path) -> DocsProject:
        """An empty directory, and a shell environment as the pages assume it."""
        env = {name: value for name, value in os.environ.items() if not name.startswith("DJANGO_")}
        # The pages' commands say ``python`` and ``django-admin``: this interpreter's.
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        env["JWT_SIGNING_KEY"] = secrets.token_urlsafe(64)
        env["PYTHONUNBUFFERED"] = "1"
        return cls(path, env)

    def write_files(self, page: Path) -> None:
        """Write (or append) every block of ``page`` that names its file."""
        for name, (text, append) in named_blocks(page).items():
            target = self.path / name
            target.parent.mkdir(parents=True, exist_ok=True)
            with target.open("a" if append else "w") as handle:
                handle.write(("\n" if append else "") + text)

    def run_console(self, page: Path, containing: str) -> None:
        """Run the ``console`` block of ``page`` that contains ``containing``, as printed
        (bash runs multi-line commands), but the server: :meth:`serve` starts that."""
        lines = console_block(page, containing).splitlines()
        commands = "\n".join(line for line in lines if not line.startswith("uvicorn "))
        subprocess.run(
            ["bash", "-euc", commands], cwd=self.path, env=self.env, check=True, timeout=120
        )

    def manage(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=self.path,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    @contextmanager
    def serve(self, application: str) -> Iterator[str]:
        """``application`` under uvicorn, as the page starts it but on a free port."""
        port = free_port()
        log_path = self.path / "uvicorn.log"
        with log_path.open("wb") as log_file:
            process = subprocess.Popen(
                [sys.executable, "-m", "uvicorn", application, "--port", str(port)],
                cwd=self.path,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        try:
            wait_until_listening(process, port, log_path)
            yield f"127.0.0.1:{port}"
        finally:
            stop(process)


def console_block(page: Path, containing: str) -> str:
    """The ``console`` block of ``page`` that contains ``containing``."""
    for text in blocks(page, "console"):
        if containing in text:
            return text
    raise AssertionError(f"no console block with {containing!r} in {page_id(page)}")


# --- The tutorial, from startproject to a chat -----------------------------------------------

TUTORIAL = DOCS / "tutorial.md"


@pytest.fixture(scope="module")
def tutorial(tmp_path_factory: pytest.TempPathFactory) -> DocsProject:
    """``startproject`` and ``startapp`` as the tutorial says, then its files, then step 6."""
    project = DocsProject.empty(tmp_path_factory.mktemp("chatsite"))
    for command in (["startproject", "config", "."], ["startapp", "chat"]):
        subprocess.run(
            [sys.executable, "-m", "django", *command],
            cwd=project.path,
            env=project.env,
            check=True,
            timeout=60,
        )
    project.write_files(TUTORIAL)
    project.run_console(TUTORIAL, "manage.py migrate")
    return project


@pytest.fixture(scope="module")
def tutorial_server(tutorial: DocsProject) -> Iterator[str]:
    """The tutorial's site under uvicorn, as step 6 starts it but on a free port."""
    with tutorial.serve("config.asgi:application") as address:
        yield address


def test_tutorial_names_every_file_it_writes() -> None:
    assert set(named_blocks(TUTORIAL)) == {
        "config/settings.py",
        "config/asgi.py",
        "config/urls.py",
        "chat/consumers.py",
        "chat/routing.py",
        "chat/templates/chat/index.html",
        "chat/tests.py",
        "client.py",
        "refused.py",
    }


@pytest.mark.live
def test_tutorial_project_passes_the_system_checks(tutorial: DocsProject) -> None:
    """``manage.py check`` says what the tutorial promises: no issues, not even I001."""
    checked = tutorial.manage("check", "--fail-level", "INFO")
    assert checked.returncode == 0, checked.stderr
    assert "System check identified no issues" in checked.stdout


@pytest.mark.live
def test_tutorial_tests_pass(tutorial: DocsProject) -> None:
    tested = tutorial.manage("test", "chat")
    assert tested.returncode == 0, tested.stderr
    assert re.search(r"^Ran 3 tests", tested.stderr, re.MULTILINE)


@pytest.mark.live
async def test_tutorial_python_client_chats(tutorial: DocsProject, tutorial_server: str) -> None:
    """``client.py`` logs in over HTTP, joins the room and sees its own message come back."""
    source = (tutorial.path / "client.py").read_text()
    client = load_module("client", source, str(tutorial.path / "client.py"))
    client.SERVER = tutorial_server
    printed: list[dict[str, Any]] = []
    said = asyncio.Event()

    def collect(frame: dict[str, Any]) -> None:
        printed.append(frame)
        if frame["type"] == "message":
            said.set()

    client.print = collect
    tokens = await asyncio.to_thread(client.log_in, "alice", "alice-password")
    chatting = asyncio.create_task(client.chat(tokens["access"], "hello from Python"))
    try:
        await asyncio.wait_for(said.wait(), TIMEOUT)
    finally:
        chatting.cancel()
    assert printed == [
        {"type": "welcome", "username": "alice"},
        {"type": "message", "username": "alice", "text": "hello from Python"},
    ]


@pytest.mark.live
def test_tutorial_refusal_script_prints_4400(tutorial: DocsProject, tutorial_server: str) -> None:
    script = (tutorial.path / "refused.py").read_text().replace("127.0.0.1:8000", tutorial_server)
    refused = subprocess.run(
        [sys.executable, "-c", script],
        env=tutorial.env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert (refused.returncode, refused.stdout) == (0, "4400 token_malformed\n"), refused.stderr


@pytest.mark.e2e
@pytest.mark.live
def test_tutorial_page_chats_in_chromium(chromium: Any, tutorial_server: str) -> None:
    """Two people log in on the tutorial's page; one's message reaches the other."""
    from playwright.sync_api import expect

    context = chromium.new_context()
    try:
        pages = {}
        for username in ("alice", "bob"):
            page = context.new_page()
            page.goto(f"http://{tutorial_server}/")
            page.fill("input[name=username]", username)
            page.fill("input[name=password]", f"{username}-password")
            page.click("#login button")
            expect(page.locator("#status")).to_have_text(
                f"Connected to #lobby as {username}.", timeout=TIMEOUT * 1000
            )
            pages[username] = page
        pages["alice"].fill("#send input[name=text]", "hi bob")
        pages["alice"].click("#send button")
        expect(pages["bob"].locator("#messages li")).to_have_text(
            ["alice: hi bob"], timeout=TIMEOUT * 1000
        )
    finally:
        context.close()


# --- The installation page, from startproject to an authenticated socket ---------------------

INSTALLATION = DOCS / "installation.md"
ALICE = {"username": "alice", "password": "alice-password"}


def installation_project(directory: Path) -> DocsProject:
    """The page's commands as printed (steps 1 and 6) and its files (steps 2 to 5 and 7)."""
    project = DocsProject.empty(directory)
    project.run_console(INSTALLATION, "django-admin startproject")
    project.write_files(INSTALLATION)
    project.run_console(INSTALLATION, "manage.py migrate")
    return project


@pytest.fixture(scope="module")
def installation(tmp_path_factory: pytest.TempPathFactory) -> DocsProject:
    """The installation page's project."""
    return installation_project(tmp_path_factory.mktemp("installation"))


@pytest.fixture(scope="module")
def installation_server(installation: DocsProject) -> Iterator[str]:
    """The installation page's project under uvicorn, as step 6 starts it but on a free port."""
    with installation.serve("myproject.asgi:application") as address:
        yield address


def run_connect_script(project: DocsProject, server: str, token: str) -> str:
    """``python connect.py <token>`` against ``server``; what it prints."""
    script = (project.path / "connect.py").read_text().replace("127.0.0.1:8000", server)
    completed = subprocess.run(
        [sys.executable, "-c", script, token],
        env=project.env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert (completed.returncode, completed.stderr) == (0, "")
    return completed.stdout


def test_installation_names_every_file_it_writes() -> None:
    assert set(named_blocks(INSTALLATION)) == {
        "myproject/settings.py",
        "myproject/asgi.py",
        "myproject/urls.py",
        "chat/consumers.py",
        "chat/routing.py",
        "chat/views.py",
        "connect.py",
    }


@pytest.mark.live
def test_installation_project_passes_the_checks_without_a_message(
    installation: DocsProject,
) -> None:
    """Not even an info: a project that follows the page has nothing to puzzle over."""
    checked = installation.manage("check", "--fail-level", "INFO")
    assert (checked.returncode, checked.stderr) == (0, "")
    assert checked.stdout == "System check identified no issues (0 silenced).\n"


@pytest.mark.live
def test_installation_project_migrates_without_a_message(installation: DocsProject) -> None:
    migrated = installation.manage("migrate")  # the checks run again, as in step 6
    assert (migrated.returncode, migrated.stderr) == (0, "")
    assert "No migrations to apply." in migrated.stdout


@pytest.mark.live
def test_installation_token_from_the_endpoint_opens_the_socket(
    installation: DocsProject, installation_server: str
) -> None:
    request = urllib.request.Request(
        f"http://{installation_server}/api/token/",
        data=json.dumps(ALICE).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=TIMEOUT) as response:  # noqa: S310 (loopback)
        issued = json.load(response)
    assert issued["expires_in"] == 300

    printed = run_connect_script(installation, installation_server, issued["access"])
    frame = json.loads(printed)
    assert frame["hello"] == "alice"
    assert time.time() < frame["expires"] <= time.time() + 300


@pytest.mark.live
@pytest.mark.parametrize(
    ("token", "printed"),
    [
        pytest.param("not-a-jwt", "closed 4400 token_malformed\n", id="not-a-jwt"),
        pytest.param(
            token_for(1, key="another-key-" + "x" * 40),
            "closed 4401 token_invalid\n",
            id="another-key",
        ),
    ],
)
def test_installation_socket_refuses_a_bad_token(
    installation: DocsProject, installation_server: str, token: str, printed: str
) -> None:
    assert run_connect_script(installation, installation_server, token) == printed


def test_every_test_the_threat_model_names_exists() -> None:
    page = (REPO / "docs" / "security.md").read_text()
    model = page[page.index("## Threat model") : page.index("## What it does not protect")]
    sources = "\n".join(path.read_text() for path in (REPO / "tests").rglob("test_*.py"))
    named = set(re.findall(r"`(test_[a-z0-9_]+)`", model))
    files = set(re.findall(r"`([a-z_/]+\.py)`", model))
    assert len(named) >= 15
    assert [name for name in sorted(named) if f"def {name}(" not in sources] == []
    assert [name for name in sorted(files) if not (REPO / "tests" / name).is_file()] == []
