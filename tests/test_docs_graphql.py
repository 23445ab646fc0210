"""The GraphQL page (``docs/graphql.md``), followed as printed on the installation page's project.

Issue 16 is done when a new user with Strawberry and Apollo or graphql-ws follows the page and
gets an authenticated subscription with no hand-written authentication code. So the project
is the quickstart's (its commands and files, as ``tests/test_docs.py`` builds it), then the
page: its settings block in place of the quickstart's ``CHANNELS_JWT``, its ``asgi.py``,
``chat/schema.py``, ``chat/graphql.py`` and ``chat/tests.py`` (Strawberry is installed in
this environment, so its ``pip install`` has nothing to do). The project passes
``manage.py check`` without a message and the page's own tests, run by its own command.
Served by uvicorn, it answers GraphQL over HTTP as the page says, and the page's client code
(``auth.js``, ``graphql-ws-client.js``, ``apollo.js``, ``urql.js``), run under Node by
``tests/interop/node/docs_graphql_clients.mjs`` with a token from the quickstart's token
endpoint, subscribes to ``clock`` and queries ``me`` as the user; with a refused token, each
client says why as the page says it does.

Node.js and npm are required (the locked packages are installed with ``npm ci`` on first
use): without them these tests fail, they never skip.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import re
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import jwt
import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from tests.nodejs import INTEROP_DIR, installed_node, run
from tests.test_docs import (
    ALICE,
    DOCS,
    INSTALLATION,
    TIMEOUT,
    DocsProject,
    console_block,
    installation_project,
    named_blocks,
    token_for,
)

GRAPHQL = DOCS / "graphql.md"
#: The page's Python files, written into the project as printed.
PYTHON_FILES = ("myproject/asgi.py", "chat/schema.py", "chat/graphql.py", "chat/tests.py")
#: The page's client modules, in the order a page loads them.
CLIENT_FILES = ("auth.js", "graphql-ws-client.js", "apollo.js", "urql.js")
#: What the page's ``clock`` subscription yields for alice.
TICK = re.compile(r"\d\d:\d\d:\d\d for alice")


def follow_graphql_page(project: DocsProject) -> None:
    """Apply the page to the quickstart's project as a reader would: its ``CHANNELS_JWT``
    "instead of the quickstart's", and its Python files."""
    files = named_blocks(GRAPHQL)
    quickstart = named_blocks(INSTALLATION)["myproject/settings.py"][0]
    assignment = re.search(r"^CHANNELS_JWT = .*\n", quickstart, re.MULTILINE)
    assert assignment is not None
    settings_path = project.path / "myproject" / "settings.py"
    settings = settings_path.read_text()
    assert settings.count(assignment[0]) == 1
    settings_path.write_text(settings.replace(assignment[0], files["myproject/settings.py"][0]))
    for name in PYTHON_FILES:
        (project.path / name).write_text(files[name][0])


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> DocsProject:
    """The installation page's project (its commands and files), then this page's."""
    project = installation_project(tmp_path_factory.mktemp("graphql"))
    follow_graphql_page(project)
    return project


@pytest.fixture(scope="module")
def server(project: DocsProject) -> Iterator[str]:
    """The project under uvicorn, as the installation page starts it but on a free port."""
    with project.serve("myproject.asgi:application") as address:
        yield address


@pytest.fixture(scope="module")
def access_token(server: str) -> str:
    """alice's token, from the quickstart's token endpoint."""
    request = urllib.request.Request(
        f"http://{server}/api/token/",
        data=json.dumps(ALICE).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=TIMEOUT) as response:  # noqa: S310 (loopback)
        access: str = json.load(response)["access"]
    return access


@pytest.fixture(scope="module")
def node() -> str:
    """``node``, with the locked graphql-ws, ws, graphql, Apollo Client, rxjs and urql."""
    return installed_node(
        INTEROP_DIR, "graphql-ws", "ws", "graphql", "@apollo/client", "rxjs", "@urql/core"
    )


@pytest.fixture(scope="module")
def clients(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The page's client modules, as printed, in a folder that resolves their imports to the
    locked packages."""
    folder = tmp_path_factory.mktemp("graphql-clients")
    files = named_blocks(GRAPHQL)
    for name in CLIENT_FILES:
        (folder / name).write_text(files[name][0])
    (folder / "package.json").write_text('{"type": "module"}\n')
    (folder / "node_modules").symlink_to(INTEROP_DIR / "node_modules", target_is_directory=True)
    return folder


def run_clients(node: str, clients: Path, server: str, access: str) -> dict[str, Any]:
    """The page's clients under Node with ``access`` as the logged-in token: what each said,
    by ``"<source> <what>"`` (the first of each)."""
    scenario = {"origin": f"http://{server}", "tokens": {"access": access}}
    printed = run(
        [node, "docs_graphql_clients.mjs", str(clients)],
        INTEROP_DIR,
        stdin=json.dumps(scenario),
        timeout=TIMEOUT * 2,
    )
    events: dict[str, Any] = {}
    for line in printed.splitlines():
        event = json.loads(line)
        events.setdefault(f"{event.pop('source')} {event.pop('what')}", event)
    assert "runner deadline" not in events, events
    return events


def graphql_over_http(server: str, headers: dict[str, str]) -> tuple[int, str | None, Any]:
    """``POST /graphql/ {me}``: the status, ``WWW-Authenticate`` and the JSON body."""
    request = urllib.request.Request(
        f"http://{server}/graphql/",
        data=json.dumps({"query": "{ me }"}).encode(),
        headers={"Content-Type": "application/json", **headers},
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:  # noqa: S310
            return response.status, response.headers["WWW-Authenticate"], json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, error.headers["WWW-Authenticate"], json.load(error)


def test_graphql_page_names_every_file_it_writes() -> None:
    assert set(named_blocks(GRAPHQL)) == {"myproject/settings.py", *PYTHON_FILES, *CLIENT_FILES}


@pytest.mark.live
def test_graphql_project_passes_the_checks_without_a_message(project: DocsProject) -> None:
    checked = project.manage("check", "--fail-level", "INFO")
    assert (checked.returncode, checked.stderr) == (0, "")
    assert checked.stdout == "System check identified no issues (0 silenced).\n"


@pytest.mark.live
def test_graphql_page_tests_pass_with_its_command(project: DocsProject) -> None:
    """The page's ``pytest`` command (its ``pip install`` is done here already)."""
    commands = [
        line
        for line in console_block(GRAPHQL, "chat/tests.py").splitlines()
        if not line.startswith("pip install ")
    ]
    assert commands == ["pytest --ds=myproject.settings -o asyncio_mode=auto chat/tests.py"]
    tested = subprocess.run(
        ["bash", "-euc", "\n".join(commands)],
        cwd=project.path,
        env=project.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert re.search(r"^=+ 2 passed\b", tested.stdout, re.MULTILINE), tested.stdout


@pytest.mark.live
@pytest.mark.parametrize(
    ("authorization", "status", "body"),
    [
        pytest.param("Bearer {access}", 200, {"data": {"me": "alice"}}, id="token"),
        pytest.param(None, 200, {"data": {"me": None}}, id="anonymous"),
        pytest.param(
            "Bearer not-a-jwt", 401, {"code": 4400, "reason": "token_malformed"}, id="not-a-jwt"
        ),
        pytest.param(
            f"Bearer {token_for(1, key='another-key-' + 'x' * 40)}",
            401,
            {"code": 4401, "reason": "token_invalid"},
            id="another-key",
        ),
    ],
)
def test_graphql_over_http_runs_as_the_header_says(
    server: str, access_token: str, authorization: str | None, status: int, body: Any
) -> None:
    """With the header, the user; without, anonymous; a bad token, a JSON 401 that says
    ``WWW-Authenticate`` and never reaches Strawberry."""
    headers = {} if authorization is None else {"Authorization": authorization}
    headers = {name: value.format(access=access_token) for name, value in headers.items()}
    answered, challenge, answer = graphql_over_http(server, headers)
    assert (answered, answer) == (status, body)
    assert challenge == (None if status == 200 else 'Bearer error="invalid_token"')


@pytest.mark.live
def test_graphql_ws_acknowledges_with_the_user_and_their_expiry(
    node: str, server: str, access_token: str
) -> None:
    """graphql-ws (``graphql_client.mjs``) with ``connectionParams`` an async function of
    ``{Authorization: "Bearer <token>"}``: ``on_ws_connect``'s acknowledgement, then a tick."""
    scenario = {
        "url": f"ws://{server}/graphql/",
        "params": [{"Authorization": f"Bearer {access_token}"}],
        "query": "subscription { clock }",
        "deadlineMs": 1500,
    }
    printed = run(
        [node, "graphql_client.mjs"], INTEROP_DIR, stdin=json.dumps(scenario), timeout=TIMEOUT
    )
    events = [json.loads(line) for line in printed.splitlines()]
    names = [event["event"] for event in events]
    assert names[:5] == ["connecting", "opened", "params", "connected", "next"], events
    exp = jwt.decode(access_token, options={"verify_signature": False})["exp"]
    assert events[3]["payload"] == {
        "username": "alice",
        "expiresAt": datetime.fromtimestamp(exp, timezone.utc).isoformat(),
    }
    assert TICK.fullmatch(events[4]["payload"]["data"]["clock"])
    assert "closed" not in names


@pytest.mark.live
def test_page_clients_subscribe_and_query_as_the_user(
    node: str, clients: Path, server: str, access_token: str
) -> None:
    """graphql-ws, Apollo and urql as the page builds them: each gets alice's ticks, and
    Apollo's and urql's ``{ me }`` over HTTP (``fetchWithToken``) answers alice."""
    events = run_clients(node, clients, server, access_token)
    [tick] = events["graphql-ws console.log"]["args"]
    assert TICK.fullmatch(tick)
    assert TICK.fullmatch(events["apollo subscription"]["result"]["data"]["clock"])
    assert TICK.fullmatch(events["urql subscription"]["data"]["clock"])
    assert events["apollo query"]["result"]["data"] == {"me": "alice"}
    assert events["urql query"]["data"] == {"me": "alice"}
    assert "page showLogin" not in events


@pytest.mark.live
def test_page_clients_on_a_refused_token(node: str, clients: Path, server: str) -> None:
    """A token the server refuses (4401): graphql-ws stops and ``on.closed`` shows the login;
    Apollo's subscription gets an ``Error`` whose message holds the code, as the page says."""
    refused = token_for(1, key="another-key-" + "x" * 40)
    events = run_clients(node, clients, server, refused)
    assert events["graphql-ws console.log"]["args"] == ["stopped", 4401]
    assert "page showLogin" in events
    apollo_error = events["apollo subscription"]["result"]["error"]
    assert apollo_error["isError"]
    assert re.search(r"\b4401\b", apollo_error["message"]), apollo_error
    assert "401" in events["apollo query"]["error"]["message"]
    assert events["urql query"]["data"] is None


@pytest.mark.live
@pytest.mark.parametrize("same_origin", [True, False], ids=["same-origin", "other-origin"])
async def test_strawberry_closes_a_page_on_another_origin_with_1000(
    server: str, access_token: str, same_origin: bool
) -> None:
    """The page's warning: channels-jwt authenticates the socket, then Strawberry (from the
    release that checks ``Origin``) closes a page on another origin with 1000."""
    checks_origin = importlib.util.find_spec("strawberry.http.websocket_origin") is not None
    origin = f"http://{server}" if same_origin else "http://localhost:5173"
    init = {"type": "connection_init", "payload": {"Authorization": f"Bearer {access_token}"}}
    async with websockets.connect(
        f"ws://{server}/graphql/", subprotocols=["graphql-transport-ws"], origin=origin
    ) as ws:
        await ws.send(json.dumps(init))
        try:
            reply: Any = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
        except ConnectionClosed as closed:
            reply = closed.rcvd.code if closed.rcvd else None

    refused = checks_origin and not same_origin
    assert reply == (1000 if refused else {"type": "connection_ack", "payload": reply["payload"]})
