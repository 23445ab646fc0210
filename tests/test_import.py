"""channels_jwt can be imported, and its stack built, before Django is set up."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

NOT_SET_UP = """
from django.apps import apps
from django.conf import settings
assert not settings.configured, "settings were configured"
assert not apps.ready, "the app registry was populated"
"""


def run_without_django_settings(code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter with no DJANGO_SETTINGS_MODULE."""
    env = {name: value for name, value in os.environ.items() if name != "DJANGO_SETTINGS_MODULE"}
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run(
        [sys.executable, "-W", "error", "-c", code + NOT_SET_UP],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    "code",
    [
        pytest.param("import channels_jwt", id="channels_jwt"),
        pytest.param("import channels_jwt.testing", id="channels_jwt.testing"),
        pytest.param("from channels_jwt.logs import RedactTokens", id="channels_jwt.logs"),
    ],
)
def test_import_before_django_setup(code: str) -> None:
    result = run_without_django_settings(code)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


def test_stack_can_be_built_before_django_setup() -> None:
    result = run_without_django_settings(
        "from channels_jwt import JWTAuthMiddleware, JWTAuthMiddlewareStack\n"
        "async def app(scope, receive, send): pass\n"
        "stack = JWTAuthMiddlewareStack(app)\n"
        "assert isinstance(stack, JWTAuthMiddleware)\n"
        "assert stack.inner is app\n"
        "custom = JWTAuthMiddlewareStack(app, settings={'QUERY_PARAM': 'jwt'})\n"
        "assert isinstance(custom, JWTAuthMiddleware)\n"
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
