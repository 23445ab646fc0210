"""Test matrix: each supported (Python, Django) pair, plus the lowest declared dependencies.

Every session runs the in-process suite. The folders that start real processes (servers,
Redis, PostgreSQL, Chromium) are shared out so that each runs on at least two sessions, every
Python runs some, and the newest pair runs them all: the whole of ``make test`` stays within
the 30 minutes CI allows it on a 2-core machine. Coverage is combined across every session,
so a line that only one Python or Django reaches still counts.
"""

from __future__ import annotations

import glob
import os
import re
from pathlib import Path

import nox

nox.options.default_venv_backend = "venv"
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True

PYPROJECT = nox.project.load_toml("pyproject.toml")

#: The folders of tests that start real processes (tests/<name>).
REAL_PROCESSES = ("live", "redis", "postgres", "e2e")

#: (Python, Django, database of the in-process tests, real-process folders): what the
#: classifiers promise.
MATRIX = [
    ("3.10", "5.2", "sqlite", ("redis",)),
    ("3.11", "5.2", "sqlite", ("e2e",)),
    ("3.12", "6.0", "postgresql", ("postgres",)),
    ("3.13", "6.1", "sqlite", ("live", "redis", "postgres", "e2e")),
]
#: The real-process folders of the session with the lowest declared dependencies.
LOWEST_REAL_PROCESSES = ("live",)
LOWEST_PYTHON = "3.10"


def interpreter(version: str) -> str:
    """The newest pyenv build of ``version`` if there is one, else what nox finds on PATH."""
    root = os.environ.get("PYENV_ROOT", str(Path.home() / ".pyenv"))
    builds = sorted(glob.glob(f"{root}/versions/{version}.*/bin/python{version}"))
    return builds[-1] if builds else version


def lowest_constraints() -> list[str]:
    """``name==version`` for every runtime dependency, at the lowest version it declares."""
    pins = []
    for requirement in PYPROJECT["project"]["dependencies"]:
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)(\[[^\]]*\])?>=([^,;\s]+)", requirement)
        if match is None:
            raise ValueError(f"dependency without a plain lower bound: {requirement}")
        pins.append(f"{match[1]}=={match[3]}")
    return pins


def run_suite(
    session: nox.Session, *, real_processes: tuple[str, ...], database: str = "sqlite"
) -> None:
    """Run pytest under coverage: the in-process suite and the ``real_processes`` folders.

    ``database`` is what the in-process tests use.
    """
    env = {"CHANNELS_JWT_TEST_DATABASE": database}
    skipped = [f"--ignore=tests/{name}" for name in REAL_PROCESSES if name not in real_processes]
    session.run("coverage", "run", "-m", "pytest", *skipped, *session.posargs, env=env)


@nox.session
@nox.parametrize(
    ("python", "django", "database", "real_processes"),
    [(interpreter(python), django, database, real) for python, django, database, real in MATRIX],
    ids=[f"py{python}-django{django}-{database}" for python, django, database, _ in MATRIX],
)
def tests(
    session: nox.Session, django: str, database: str, real_processes: tuple[str, ...]
) -> None:
    """The in-process suite and its share of the real processes on one pair of the matrix."""
    session.install(
        "-e", ".", *nox.project.dependency_groups(PYPROJECT, "test"), f"django~={django}.0"
    )
    run_suite(session, real_processes=real_processes, database=database)


@nox.session(python=interpreter(LOWEST_PYTHON))
def lowest(session: nox.Session) -> None:
    """The in-process suite and the live servers on the lowest Python and dependencies."""
    constraints = Path(session.create_tmp()) / "lowest.txt"
    constraints.write_text("\n".join(lowest_constraints()) + "\n")
    session.install(
        "-e", ".", *nox.project.dependency_groups(PYPROJECT, "test"), "-c", str(constraints)
    )
    session.run("pip", "list", "--format=freeze")
    run_suite(session, real_processes=LOWEST_REAL_PROCESSES)


@nox.session(python=interpreter("3.13"))
def smoke(session: nox.Session) -> None:
    """The built wheel (``make dist``) in a clean venv on the newest Python and Django."""
    wheels = glob.glob("dist/*.whl")
    if len(wheels) != 1:
        session.error(f"expected one wheel in dist/ (run make dist first), found {wheels}")
    session.install(wheels[0], "django~=6.1.0", "uvicorn", "websockets")
    session.run("python", ".ci/wheel_smoke.py")
