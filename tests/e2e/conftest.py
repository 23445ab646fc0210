"""Fixtures for the end-to-end tests: the example project under uvicorn, and Chromium.

The browser is Debian's ``chromium`` (``CHROMIUM_PATH``, else ``/usr/bin/chromium``) driven by
Playwright; Playwright never downloads a browser here. A missing Chromium fails the tests
rather than skipping them: CI installs it (``.ci/run``), so its absence is a broken set-up.
The feed page loads graphql-ws from ``example_project/node_modules``: ``npm ci`` runs there
before the server starts if it is not installed yet, and missing Node.js or npm fail the tests.

When a test fails, every page it opened leaves a screenshot and its console log, and the
server its log, under ``test-artifacts/<test>/``.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Generator, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Playwright, expect, sync_playwright

from tests.e2e.pages import ChatPage, Tab
from tests.e2e.server import EXAMPLE_DIR, REPO_ROOT, ExampleServer, running_example
from tests.nodejs import installed_node

DEFAULT_CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = REPO_ROOT / "test-artifacts"
#: The pages' default viewport (CSS pixels): a laptop's browser window.
DESKTOP = (1100, 720)
#: Playwright's waits, in milliseconds: generous for a slow CI machine, short for a hang.
STEP_TIMEOUT_MS = 10_000
expect.set_options(timeout=STEP_TIMEOUT_MS)

_reports = pytest.StashKey[dict[str, pytest.TestReport]]()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Keep each phase's report on the item, so fixtures can tell that the test failed."""
    report: pytest.TestReport = yield
    item.stash.setdefault(_reports, {})[report.when] = report
    return report


def failed(item: pytest.Item) -> bool:
    """Whether the set-up or the call of ``item`` failed."""
    reports = item.stash.get(_reports, {})
    return any(report.failed for report in reports.values())


@pytest.fixture(scope="package")
def example_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ExampleServer]:
    """The example project, migrated and seeded, under uvicorn on a free port."""
    installed_node(EXAMPLE_DIR, "graphql-ws")  # the feed page loads it from node_modules
    with running_example(tmp_path_factory.mktemp("example")) as server:
        yield server


@pytest.fixture(scope="package")
def chromium_path() -> str:
    """Debian's Chromium; fails (never skips) when it is not installed."""
    path = os.environ.get("CHROMIUM_PATH") or DEFAULT_CHROMIUM
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        pytest.fail(
            f"Chromium not found at {path}. The end-to-end tests need Debian's chromium: "
            "apt-get install -y --no-install-recommends chromium (as .ci/run does), or set "
            "CHROMIUM_PATH to a Chromium executable."
        )
    return path


@pytest.fixture(scope="package")
def playwright() -> Iterator[Playwright]:
    """Playwright's driver (sync API), for this package's tests only."""
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="package")
def browser(playwright: Playwright, chromium_path: str) -> Iterator[Browser]:
    """One headless Chromium for the package; each test gets fresh contexts."""
    browser = playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
    try:
        yield browser
    finally:
        browser.close()


@pytest.fixture
def open_page(
    request: pytest.FixtureRequest, browser: Browser, example_server: ExampleServer
) -> Iterator[Callable[..., ChatPage]]:
    """``open_page(label, room=..., transport=..., renew_in_place=..., viewport=...,
    mobile=...)``: the chat page in a fresh browser context (see ``ChatPage.open``).

    Each call is a separate context (its own cookies: another person). ``viewport`` is
    ``(width, height)`` in CSS pixels; ``mobile`` makes the context a phone's (the viewport
    meta tag applies, touch events, a 3x screen). Uncaught errors in the page fail the test.
    On failure, screenshots and console logs are saved.
    """
    pages: list[ChatPage] = []

    def open_chat(
        label: str,
        *,
        room: str,
        transport: str | None = None,
        renew_in_place: bool = True,
        viewport: tuple[int, int] = DESKTOP,
        mobile: bool = False,
    ) -> ChatPage:
        width, height = viewport
        context = browser.new_context(
            viewport={"width": width, "height": height},
            is_mobile=mobile,
            has_touch=mobile,
            device_scale_factor=3 if mobile else 1,
        )
        context.set_default_timeout(STEP_TIMEOUT_MS)
        page = ChatPage(label, context.new_page(), example_server.url)
        pages.append(page)
        page.open(room=room, transport=transport, renew_in_place=renew_in_place)
        return page

    yield open_chat

    try:
        if failed(request.node):
            save_artifacts(request.node, pages, example_server)
        errors = [f"{page.label}: {error}" for page in pages for error in page.errors]
        assert not errors, f"uncaught errors in the page: {errors}"
    finally:
        for page in pages:
            page.page.context.close()


def save_artifacts(item: pytest.Item, pages: list[ChatPage], server: ExampleServer) -> None:
    """A screenshot and the console log of every page, and the server log."""
    directory = ARTIFACTS / re.sub(r"[^A-Za-z0-9_.-]+", "_", item.nodeid)
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    for page in pages:
        save_page(page, directory)
    (directory / "server.log").write_text(server.log())


def save_page(page: Tab, directory: Path) -> None:
    """A screenshot and the console log of ``page`` in ``directory``."""
    lines = [
        *page.console,
        *(f"[pageerror] {error}" for error in page.errors),
        *(f"[request] {request}" for request in page.failed_requests),
    ]
    (directory / f"{page.label}.console.log").write_text("\n".join(lines) + "\n")
    try:
        page.page.screenshot(path=str(directory / f"{page.label}.png"), full_page=True)
    except Exception as exc:  # a crashed page still leaves its console log
        (directory / f"{page.label}.screenshot-error.txt").write_text(repr(exc))
