"""``authenticate_token`` / ``aauthenticate_token``: the pipeline for tokens from elsewhere."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ImproperlyConfigured

from channels_jwt import (
    AuthenticatedToken,
    AuthenticationFailed,
    ChannelsJWTError,
    ResolverError,
    TokenExpired,
    TokenInvalid,
    TokenMalformed,
    TokenMissing,
    TokenRevoked,
    UserRejected,
    aauthenticate_token,
    authenticate_token,
)
from channels_jwt.authentication import SCOPE_TYPE
from channels_jwt.users import TokenUser
from tests.harness import (
    Configure,
    claims_for,
    expired_token_for,
    hs_token,
    token_for,
)

User = get_user_model()


async def test_a_valid_token_gives_its_user_claims_and_expiry(configure: Configure) -> None:
    claims = claims_for("7")
    authenticated = await aauthenticate_token(hs_token(claims))

    assert isinstance(authenticated, AuthenticatedToken)
    assert isinstance(authenticated.user, TokenUser)
    assert authenticated.user.pk == 7
    assert authenticated.claims["jti"] == claims["jti"]
    assert authenticated.expires_at == datetime.fromtimestamp(claims["exp"], tz=timezone.utc)
    with pytest.raises(TypeError):
        authenticated.claims["user_id"] = "8"  # type: ignore[index]


def test_the_synchronous_twin_gives_the_same(configure: Configure) -> None:
    assert authenticate_token(token_for(9)).user.pk == 9


@pytest.mark.parametrize(
    ("token", "refused"),
    [
        (lambda: "", TokenMissing),
        (lambda: "not-a-token", TokenMalformed),
        (lambda: "e" * 9000, TokenMalformed),
        (lambda: token_for(1, key="another-key-" * 4), TokenInvalid),
        (lambda: expired_token_for(1), TokenExpired),
    ],
    ids=["empty", "malformed", "too-large", "bad-signature", "expired"],
)
async def test_a_bad_token_raises_what_the_middleware_closes_with(
    configure: Configure, token: Any, refused: type[AuthenticationFailed]
) -> None:
    with pytest.raises(refused):
        await aauthenticate_token(token())


async def always_revoked(claims: Any) -> bool:
    return True


async def test_a_revoked_token_raises_token_revoked(configure: Configure) -> None:
    configure(REVOCATION_CHECK=always_revoked)

    with pytest.raises(TokenRevoked):
        await aauthenticate_token(token_for(1))


async def test_an_inactive_user_is_rejected(configure: Configure, transactional_db: None) -> None:
    configure(USER_RESOLVER="channels_jwt.users.database_user")
    user = await User.objects.acreate(username="dormant", is_active=False)

    with pytest.raises(UserRejected):
        await aauthenticate_token(token_for(user.pk))


async def test_an_active_user_comes_from_the_database(
    configure: Configure, transactional_db: None
) -> None:
    configure(USER_RESOLVER="channels_jwt.users.database_user")
    user = await User.objects.acreate(username="present")

    assert (await aauthenticate_token(token_for(user.pk))).user == user


scopes: list[Any] = []


async def recording_resolver(claims: Any, scope: Any) -> TokenUser:
    scopes.append(scope)
    return TokenUser(claims["user_id"], claims)


async def crashing_resolver(claims: Any, scope: Any) -> Any:
    raise ConnectionError("the database is down")


async def test_a_resolver_is_told_it_runs_outside_a_connection(configure: Configure) -> None:
    scopes.clear()
    configure(USER_RESOLVER=recording_resolver)

    await aauthenticate_token(token_for(1))

    assert scopes == [{"type": SCOPE_TYPE}]


async def test_a_check_that_cannot_run_is_not_an_authentication_failure(
    configure: Configure,
) -> None:
    configure(USER_RESOLVER=crashing_resolver)

    with pytest.raises(ResolverError) as raised:
        await aauthenticate_token(token_for(1))

    assert not isinstance(raised.value, AuthenticationFailed)
    assert isinstance(raised.value, ChannelsJWTError)


async def test_settings_override_the_projects_for_this_call(configure: Configure) -> None:
    other_key = "authenticate-token-other-key-0123456789abcdefghij"
    token = token_for(3, key=other_key)

    authenticated = await aauthenticate_token(
        token, settings={"SIGNING_KEY": other_key, "USER_RESOLVER": "channels_jwt.users.token_user"}
    )

    assert authenticated.user.pk == 3
    with pytest.raises(TokenInvalid):
        await aauthenticate_token(token)


async def test_a_configuration_with_an_error_is_refused(configure: Configure) -> None:
    with pytest.raises(ImproperlyConfigured, match="E00"):
        await aauthenticate_token(token_for(1), settings={"ALGORITHMS": ["none"]})
