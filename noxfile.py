"""Test matrix: the supported Django LTS releases, coverage combined across them."""

from __future__ import annotations

import nox

nox.options.default_venv_backend = "venv"
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True

DJANGO_VERSIONS = ["4.2", "5.2"]


@nox.session
@nox.parametrize("django", DJANGO_VERSIONS)
def tests(session: nox.Session, django: str) -> None:
    """Run the whole suite under coverage against one Django release."""
    session.install("-e", ".[test,example,e2e]", f"django~={django}.0")
    session.run("coverage", "run", "-m", "pytest", *session.posargs)
