"""Settings (``channels_jwt.conf``): ``override_settings`` and per-instance overrides.

A running middleware sees ``override_settings`` at once; an instance's own settings sit on
top of the global ones and apply to that instance only.
"""

from __future__ import annotations

from dataclasses import FrozenInstanceError
from datetime import timedelta
from typing import Any

import pytest
import rest_framework_simplejwt.settings as simplejwt_settings
from django.conf import settings
from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from channels_jwt import JWTAuthMiddleware
from channels_jwt.checks import check_settings, serious
from channels_jwt.conf import Config, Settings
from channels_jwt.config import config_of, parse, parsed
from tests.harness import (
    CLEAN,
    HS_KEY,
    PATH,
    Keys,
    RecordingApp,
    check_problems,
    claims_for,
    close_message,
    hs_token,
    never_revoked,
    only_check_message,
    open_connection,
    private_pem,
    public_pem,
    rejection,
    run_checks,
    token_for,
)

# Settings: override_settings and per-instance overrides.


async def test_override_settings_changes_a_running_middleware(
    user: Any, inner: RecordingApp
) -> None:
    app = JWTAuthMiddleware(inner)
    token = token_for(user)
    _, close = await rejection(app, f"{PATH}?jwt={token}")
    assert close == close_message(4401, "token_missing")
    with override_settings(CHANNELS_JWT={**django_settings.CHANNELS_JWT, "QUERY_PARAM": "jwt"}):
        communicator, outcome = await open_connection(app, f"{PATH}?jwt={token}")
        assert outcome == (True, None)
        await communicator.disconnect()
    _, close = await rejection(app, f"{PATH}?jwt={token}")
    assert close == close_message(4401, "token_missing")


@override_settings(CHANNELS_JWT={**django_settings.CHANNELS_JWT, "TOKEN_SOURCES": ["header"]})
async def test_override_settings_token_sources_header_only(user: Any, inner: RecordingApp) -> None:
    _, close = await rejection(
        JWTAuthMiddleware(inner), subprotocols=["access_token", token_for(user)]
    )
    assert close == close_message(4401, "token_missing")


@override_settings(CHANNELS_JWT={**django_settings.CHANNELS_JWT, "TOKEN_SOURCES": "header"})
async def test_token_sources_may_be_a_single_string(user: Any, inner: RecordingApp) -> None:
    headers = [(b"authorization", f"Bearer {token_for(user)}".encode())]
    communicator, outcome = await open_connection(JWTAuthMiddleware(inner), headers=headers)
    assert outcome == (True, None)
    assert inner.scopes[0]["jwt"].source == "header"
    await communicator.disconnect()


async def test_default_token_sources_take_the_subprotocol(user: Any, inner: RecordingApp) -> None:
    communicator, outcome = await open_connection(
        JWTAuthMiddleware(inner), subprotocols=["access_token", token_for(user)]
    )
    assert outcome == (True, "access_token")
    await communicator.disconnect()


async def test_per_instance_settings_apply_to_that_instance_only(
    user: Any, inner: RecordingApp
) -> None:
    token = token_for(user)
    custom = JWTAuthMiddleware(inner, settings={"QUERY_PARAM": "jwt"})
    default = JWTAuthMiddleware(inner)
    communicator, outcome = await open_connection(custom, f"{PATH}?jwt={token}")
    assert outcome == (True, None)
    await communicator.disconnect()
    _, close = await rejection(default, f"{PATH}?jwt={token}")
    assert close == close_message(4401, "token_missing")
    _, close = await rejection(custom, f"{PATH}?token={token}")
    assert close == close_message(4401, "token_missing")


async def test_per_instance_settings_reach_the_database_resolver(
    user: Any, inner: RecordingApp
) -> None:
    app = JWTAuthMiddleware(
        inner, settings={"USER_ID_CLAIM": "username", "USER_ID_FIELD": "username"}
    )
    claims = claims_for(user.pk, username="alice")
    del claims["user_id"]
    token = hs_token(claims)
    communicator, outcome = await open_connection(app, subprotocols=["access_token", token])
    assert outcome == (True, "access_token")
    assert inner.scopes[0]["user"] == user
    await communicator.disconnect()


async def test_per_instance_settings_sit_on_top_of_global_settings(
    user: Any, inner: RecordingApp, settings: Any
) -> None:
    settings.CHANNELS_JWT = {**settings.CHANNELS_JWT, "QUERY_PARAM": "jwt"}
    app = JWTAuthMiddleware(inner, settings={"TOKEN_SOURCES": ["query"]})
    communicator, outcome = await open_connection(app, f"{PATH}?jwt={token_for(user)}")
    assert outcome == (True, None)
    await communicator.disconnect()


# -- per-instance overrides ------------------------------------------------------------------------


def test_overrides_are_checked() -> None:
    with override_settings(CHANNELS_JWT=CLEAN):
        messages = check_settings(Settings({"ALGORITHMS": ["HS256", "none"]}))
    only_check_message(messages, "channels_jwt.E004")


def test_overrides_win_over_the_project_settings() -> None:
    with override_settings(CHANNELS_JWT={**CLEAN, "LEEWAY": 600}):
        assert check_problems(check_settings(Settings({"LEEWAY": 5}))) == []


def test_override_with_an_unknown_key_warns() -> None:
    with override_settings(CHANNELS_JWT=CLEAN):
        message = only_check_message(check_settings(Settings({"LEEWAYS": 5})), "channels_jwt.W001")
    assert message.hint == "Did you mean 'LEEWAY'?"


def test_override_does_not_touch_the_project_settings() -> None:
    with override_settings(CHANNELS_JWT=CLEAN):
        check_settings(Settings({"REJECT_MODE": "refuse"}))
        assert check_problems(check_settings(Settings())) == []


# -- simplejwt defaults ----------------------------------------------------------------------------


def test_simplejwt_default_signing_key_is_secret_key_and_warns() -> None:
    with override_settings(CHANNELS_JWT={}):
        assert Settings().value("SIGNING_KEY") == settings.SECRET_KEY
        only_check_message(run_checks({}), "channels_jwt.W002")


def test_simplejwt_default_applies_without_any_channels_jwt_setting() -> None:
    with override_settings():
        del settings.CHANNELS_JWT
        messages = check_settings(Settings())
    only_check_message(messages, "channels_jwt.W002")


def test_explicit_signing_key_wins_over_simplejwt() -> None:
    assert check_problems(run_checks({"SIGNING_KEY": HS_KEY})) == []


def test_simplejwt_rs256_without_keys_needs_a_verifying_key_and_a_pem_private_key() -> None:
    # simplejwt signs RS256 with its SIGNING_KEY, which defaults to SECRET_KEY: not a PEM.
    with override_settings(SIMPLE_JWT={"ALGORITHM": "RS256"}):
        assert check_problems(run_checks({})) == ["channels_jwt.E008", "channels_jwt.E013"]


def test_simplejwt_signing_key_is_frozen_when_simplejwt_is_imported() -> None:
    # simplejwt evaluates settings.SECRET_KEY once, at import: overriding SECRET_KEY later
    # leaves its SIGNING_KEY (and so ours) at the old value, which is no longer SECRET_KEY.
    frozen = simplejwt_settings.DEFAULTS["SIGNING_KEY"]
    assert frozen == settings.SECRET_KEY
    with override_settings(CHANNELS_JWT={}, SECRET_KEY="another-secret-key-" + "x" * 50):
        assert frozen == Settings().value("SIGNING_KEY")
        assert check_problems(check_settings(Settings())) == []


def test_repr_of_a_configuration_shows_no_key(keys: Keys) -> None:
    hmac = Config.from_settings(Settings({"SIGNING_KEY": "s3cret-" * 8}))
    assert "s3cret" not in repr(hmac)
    pem = private_pem(keys.rsa)
    values = {"ALGORITHMS": ["RS256"], "VERIFYING_KEY": public_pem(keys.rsa), "PRIVATE_KEY": pem}
    rsa = Config.from_settings(Settings(values))
    assert rsa.private_key is not None
    assert "PRIVATE" not in repr(rsa)
    assert "RSAPrivateKey" not in repr(rsa)


# -- the parsed configuration --------------------------------------------------------------


def test_a_clean_configuration_parses_into_typed_values() -> None:
    values = {
        **CLEAN,
        "ALGORITHMS": ["HS256", "HS384"],
        "LEEWAY": timedelta(seconds=5),
        "TOKEN_TYPES": ["access", "ws"],
        "CLOSE_CODES": {"token_expired": 4000},
        "REVOCATION_CHECK": "tests.harness.never_revoked",
        "SIGNING_KEY": "k" * 48,
    }
    config, problems = parse(Settings(values))
    assert serious(problems) == []
    assert config is not None
    assert config.ALGORITHMS == ("HS256", "HS384")
    assert config.LEEWAY == 5.0
    assert config.TOKEN_TYPES == ("access", "ws")
    assert config.TOKEN_SOURCES == ("subprotocol",)
    assert config.REVOCATION_CHECK is never_revoked
    assert config.CLOSE_CODES == {"token_expired": 4000}
    assert config.verifying_keys is None
    assert config.private_key is None


def test_a_configuration_with_an_error_parses_into_problems_only() -> None:
    config, problems = parse(Settings({**CLEAN, "LEEWAY": 3600}))
    assert config is None
    assert check_problems(list(problems)) == ["channels_jwt.E014"]


def test_config_of_names_the_first_error() -> None:
    with pytest.raises(ImproperlyConfigured, match=r"^channels_jwt\.E014: CHANNELS_JWT LEEWAY"):
        config_of(Settings({**CLEAN, "LEEWAY": 3600}))


def test_the_configuration_is_frozen() -> None:
    config = config_of(Settings(CLEAN))
    with pytest.raises(FrozenInstanceError):
        config.LEEWAY = 60  # type: ignore[misc]
    with pytest.raises(TypeError):
        config.CLOSE_CODES["token_expired"] = 4000  # type: ignore[index]


def test_settings_are_parsed_once_until_setting_changed() -> None:
    own = Settings(CLEAN)
    first = parsed(own)
    assert parsed(own) is first
    assert config_of(own) is first.config
    with override_settings(CHANNELS_JWT={**CLEAN, "LEEWAY": 3}):
        changed = config_of(own)
        assert changed is not first.config
        assert changed.LEEWAY == 3


def test_keys_are_parsed_from_pem_once_by_the_rules(keys: Keys) -> None:
    own = Settings(
        {
            **CLEAN,
            "ALGORITHMS": ["RS256"],
            "VERIFYING_KEY": public_pem(keys.rsa),
            "PRIVATE_KEY": private_pem(keys.rsa),
        }
    )
    config = config_of(own)
    assert config.verifying_keys is own.verifying_keys()
    assert config.private_key is own.private_key()
    assert config.private_key is not None
