"""The system checks: ``manage.py check`` reports what ``config.parse`` found; registration."""

from __future__ import annotations

import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings
from django.core import checks
from django.core.checks.registry import registry
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import override_settings

from channels_jwt.apps import ChannelsJWTConfig
from channels_jwt.checks import check_project_settings, register
from tests.harness import CLEAN, HS_KEY

ROOT = Path(__file__).resolve().parent.parent


# -- manage.py check and registration -----------------------------------------------------------


def test_manage_py_check_fails_on_bad_settings() -> None:
    with (
        override_settings(CHANNELS_JWT={**CLEAN, "LEEWAY": 3600}),
        pytest.raises(SystemCheckError, match=r"channels_jwt\.E014"),
    ):
        call_command("check", stdout=StringIO(), stderr=StringIO())


def test_manage_py_check_says_nothing_about_the_default_sources() -> None:
    stdout, stderr = StringIO(), StringIO()
    with override_settings(CHANNELS_JWT={"SIGNING_KEY": HS_KEY}):
        call_command("check", fail_level="INFO", stdout=stdout, stderr=stderr)
    assert (stdout.getvalue(), stderr.getvalue()) == (
        "System check identified no issues (0 silenced).\n",
        "",
    )


def test_manage_py_check_fails_at_level_info_on_a_listed_query_source() -> None:
    with (
        override_settings(CHANNELS_JWT={**CLEAN, "TOKEN_SOURCES": ["subprotocol", "query"]}),
        pytest.raises(SystemCheckError, match=r"channels_jwt\.I001"),
    ):
        call_command("check", fail_level="INFO", stdout=StringIO(), stderr=StringIO())


def test_manage_py_check_with_the_security_tag_runs_the_checks() -> None:
    with (
        override_settings(CHANNELS_JWT={**CLEAN, "ALGORITHMS": ["none"]}),
        pytest.raises(SystemCheckError, match=r"channels_jwt\.E004"),
    ):
        call_command("check", tags=["security"], stdout=StringIO(), stderr=StringIO())


def test_check_is_registered_by_the_installed_app() -> None:
    assert "channels_jwt" in settings.INSTALLED_APPS
    assert check_project_settings in registry.get_checks()
    assert check_project_settings.tags == (checks.Tags.security,)  # type: ignore[attr-defined]


def test_register_returns_the_project_check() -> None:
    assert register() is check_project_settings
    assert list(registry.get_checks()).count(check_project_settings) == 1


def test_app_config_is_the_default_for_the_package() -> None:
    from django.apps import apps

    assert type(apps.get_app_config("channels_jwt")) is ChannelsJWTConfig


REGISTRATION_SCRIPT = """
import sys
import django
from django.conf import settings

apps = ["django.contrib.auth", "django.contrib.contenttypes"] + sys.argv[1:]
settings.configure(INSTALLED_APPS=apps, SECRET_KEY="s" * 50)
django.setup()
import channels_jwt
import channels_jwt.checks
from django.core.checks.registry import registry

print(channels_jwt.checks.check_project_settings in registry.get_checks())
"""


@pytest.mark.parametrize(
    ("extra_apps", "registered"),
    [
        pytest.param([], "False", id="not-installed"),
        pytest.param(["channels_jwt"], "True", id="installed"),
    ],
)
def test_check_is_registered_only_when_the_app_is_installed(
    extra_apps: list[str], registered: str
) -> None:
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", REGISTRATION_SCRIPT, *extra_apps],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert result.stdout.strip() == registered
