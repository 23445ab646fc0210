"""``channels_jwt.pipeline``: one configuration's verify -> revoked? -> user.

The handshake paths (codes, timeouts, faults) are tested through the middleware in
``test_middleware.py`` and ``test_faults.py``; this file holds what belongs to the pipeline
itself: that it is handed its settings rather than looking them up while it runs.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import caches

from channels_jwt.conf import Settings
from channels_jwt.exceptions import TokenRevoked
from channels_jwt.pipeline import Pipeline
from channels_jwt.revocation import cache_denylist, denylist_key
from channels_jwt.users import TokenUser, token_user
from tests.harness import claims_for, hs_token, websocket_scope

User = get_user_model()


async def test_token_user_is_bound_to_the_pipelines_own_settings() -> None:
    # No middleware is running, so nothing has activated these settings: the resolver can
    # only have read USER_ID_CLAIM from the pipeline that built it.
    settings = Settings({"USER_RESOLVER": token_user, "USER_ID_CLAIM": "sub"})
    token = hs_token({**claims_for("1"), "sub": "7"})

    claims, user = await Pipeline.for_settings(settings).authenticate(token, websocket_scope())

    assert isinstance(user, TokenUser)
    assert user.pk == 7
    assert claims["sub"] == "7"


async def test_database_user_is_bound_to_the_pipelines_own_settings(
    transactional_db: None,
) -> None:
    alice = await User.objects.acreate(username="alice")
    settings = Settings({"USER_ID_FIELD": "username", "USER_ID_CLAIM": "username"})
    token = hs_token({**claims_for("999"), "username": "alice"})  # no user 999

    _, user = await Pipeline.for_settings(settings).authenticate(token, websocket_scope())

    assert user == alice


async def test_cache_denylist_is_bound_to_the_pipelines_own_settings(settings: Any) -> None:
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        "denylist": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": "pipeline-denylist",
        },
    }
    own = Settings({"REVOCATION_CHECK": cache_denylist, "REVOCATION_CACHE": "denylist"})
    claims = claims_for("1", jti="bound-jti")
    # Revoked in the pipeline's cache only: the project's ("default") knows nothing of it.
    caches["denylist"].set(denylist_key(claims), 1)

    with pytest.raises(TokenRevoked):
        await Pipeline.for_settings(own).authenticate(hs_token(claims), websocket_scope())
    assert await cache_denylist(claims) is False


async def test_a_custom_resolver_is_called_as_given() -> None:
    seen: list[Any] = []

    async def resolver(claims: Any, scope: Any) -> TokenUser:
        seen.append(scope)
        return TokenUser(1, claims)

    scope = websocket_scope()
    settings = Settings({"USER_RESOLVER": resolver})

    await Pipeline.for_settings(settings).authenticate(hs_token(claims_for("1")), scope)

    assert seen == [scope]
