"""Node.js for the tests that run npm packages, installed with ``npm ci`` from a committed lock.

``tests/interop/node/`` (jose, graphql-ws, ws, graphql) and ``example_project/`` (graphql-ws,
which the feed page loads) each have a ``package-lock.json``. :func:`installed_node` runs
``npm ci`` in such a directory when one of its packages is missing, and returns ``node``.
Without Node.js or npm the tests fail with a clear message: they never skip.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

#: The npm packages of the interoperability tests (``tests/interop/node/package.json``).
INTEROP_DIR = Path(__file__).parent / "interop" / "node"
#: ``npm ci``'s time limit, in seconds: a cold cache downloads the packages.
NPM_TIMEOUT = 300


def node_executables() -> tuple[str, str]:
    """``node`` and ``npm`` from PATH, or a failed test saying what to install."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.fail(
            "These tests need Node.js (>= 20) and npm on PATH, to run npm packages installed "
            "with `npm ci` from the repository's lock files; install them (they are part of "
            "the CI image). These tests do not skip.",
            pytrace=False,
        )
    return node, npm


def run(command: list[str], directory: Path, *, stdin: str = "", timeout: float = 120) -> str:
    """``command``'s standard output, run in ``directory``; a failed test if it fails."""
    try:
        result = subprocess.run(
            command, cwd=directory, input=stdin, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"{' '.join(command)} in {directory} took over {timeout}s", pytrace=False)
    if result.returncode != 0:
        pytest.fail(
            f"{' '.join(command)} failed in {directory} (exit {result.returncode}):\n"
            f"{result.stderr}",
            pytrace=False,
        )
    return result.stdout


def installed_node(directory: Path, *packages: str) -> str:
    """``node``, after ``npm ci`` in ``directory`` if any of ``packages`` is not installed."""
    node, npm = node_executables()
    modules = directory / "node_modules"
    if not all((modules / package / "package.json").exists() for package in packages):
        run([npm, "ci", "--no-audit", "--no-fund"], directory, timeout=NPM_TIMEOUT)
    return node
