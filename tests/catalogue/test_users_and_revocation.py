"""U08, U09, U11: users and revocation: a password fingerprint, a denylisted ``jti`` in
every encoding, UUID user ids."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import override_settings
from django.utils.crypto import constant_time_compare

from channels_jwt import JWTAuthMiddleware, TokenRevoked
from channels_jwt.users import database_user
from tests.catalogue.kit import (
    HS_PROFILE,
    INVALID,
    MALFORMED,
    REVOKED,
    TRANSPORTS,
    Kit,
    assert_accepted,
    assert_refused,
    carrying,
    handshake,
    high_s,
    payload_of,
    profile_settings,
)
from tests.harness import (
    RecordingApp,
    claims_for,
    hs_token,
)


@dataclass
class Denylist:
    """A ``REVOCATION_CHECK`` keyed by ``jti`` (never by the token string)."""

    revoked: set[str] = field(default_factory=set)
    checked: list[str] = field(default_factory=list)

    async def __call__(self, claims: Mapping[str, Any]) -> bool:
        self.checked.append(claims["jti"])
        return claims["jti"] in self.revoked


REENCODINGS: dict[str, Callable[[str], str]] = {
    "same-token": lambda token: token,
    "padded-signature": lambda token: token + "=",
    "high-s-signature": high_s,
}


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize(
    ("profile", "encoding", "reason"),
    [
        pytest.param("HS", "same-token", REVOKED, id="U09-revoked-same-token-HS"),
        pytest.param("HS", "padded-signature", MALFORMED, id="U09-revoked-padded-signature-HS"),
        pytest.param("ES256", "same-token", REVOKED, id="U09-revoked-same-token-ES256"),
        pytest.param("ES256", "high-s-signature", REVOKED, id="U09-revoked-high-s-ES256"),
        pytest.param(
            "ES256", "padded-signature", MALFORMED, id="U09-revoked-padded-signature-ES256"
        ),
    ],
)
async def test_U09_revoked_jti_is_refused_in_every_encoding(
    profile: str,
    encoding: str,
    reason: str,
    transport: str,
    kit: Kit,
    caplog: pytest.LogCaptureFixture,
) -> None:
    token = kit.hs() if profile == "HS" else kit.signed(profile)
    jti = payload_of(token)["jti"]
    denylist = Denylist(revoked={jti})
    settings = {**profile_settings(profile, kit.keys), "REVOCATION_CHECK": denylist}
    await assert_refused(
        carrying(REENCODINGS[encoding](token), transport), reason, settings=settings, caplog=caplog
    )
    # Refused as revoked only after the revocation check saw the jti; a padded signature
    # never gets that far (it is not a compact JWS).
    assert denylist.checked == ([jti] if reason == REVOKED else [])


@pytest.mark.parametrize(
    "transport",
    [pytest.param(transport, id=f"U09-other-jti-accepted-{transport}") for transport in TRANSPORTS],
)
async def test_U09_token_with_other_jti_is_accepted_beside_denylist(
    transport: str, kit: Kit, caplog: pytest.LogCaptureFixture
) -> None:
    token = kit.signed("ES256")
    denylist = Denylist(revoked={"some-other-jti"})
    settings = {**profile_settings("ES256", kit.keys), "REVOCATION_CHECK": denylist}
    await assert_accepted(carrying(token, transport), token, settings=settings, caplog=caplog)
    assert denylist.checked == [payload_of(token)["jti"]]


# --- U08: a password-fingerprint claim ----------------------------------------------------------


async def fingerprint_resolver(claims: Mapping[str, Any], scope: Any) -> Any:
    """A project's resolver: the built-in lookup, then the token's ``pwd`` claim compared with
    the user's current session hash (it changes with the password)."""
    user = await database_user(claims, scope)
    fingerprint = claims.get("pwd")
    if not isinstance(fingerprint, str) or not constant_time_compare(
        fingerprint, user.get_session_auth_hash()
    ):
        raise TokenRevoked("password changed since the token was issued")
    return user


FINGERPRINT = {**HS_PROFILE, "USER_RESOLVER": fingerprint_resolver}


@pytest.mark.parametrize("transport", ["subprotocol", "query"])
async def test_U08_token_from_before_a_password_change_is_revoked(
    transport: str, kit: Kit, caplog: pytest.LogCaptureFixture
) -> None:
    alice = await database_sync_to_async(get_user_model().objects.get)(pk=1)
    token = kit.token(pwd=alice.get_session_auth_hash())
    await assert_accepted(carrying(token, transport), token, settings=FINGERPRINT, caplog=caplog)

    alice.set_password("a-new-password")
    await database_sync_to_async(alice.save)()

    await assert_refused(
        carrying(token, transport), "token_revoked", settings=FINGERPRINT, caplog=caplog, queries=1
    )


async def test_U08_token_without_the_fingerprint_claim_is_revoked(
    kit: Kit, caplog: pytest.LogCaptureFixture
) -> None:
    await assert_refused(
        carrying(kit.token(), "subprotocol"),
        "token_revoked",
        settings=FINGERPRINT,
        caplog=caplog,
        queries=1,
    )


# --- U11: a UUID-keyed user model ---------------------------------------------------------------


@pytest.fixture
def uuid_users(transactional_db: None) -> Iterator[Any]:
    """``AUTH_USER_MODEL`` swapped for ``tests.uuid_users.UUIDUser``, its table created."""
    installed = [*django_settings.INSTALLED_APPS, "tests.uuid_users"]
    with override_settings(INSTALLED_APPS=installed, AUTH_USER_MODEL="uuid_users.UUIDUser"):
        model = get_user_model()
        with connection.schema_editor() as editor:
            editor.create_model(model)
        try:
            yield model
        finally:
            with connection.schema_editor() as editor:
                editor.delete_model(model)


@pytest.fixture
def uuid_user(uuid_users: Any) -> Any:
    return uuid_users.objects.create(id=uuid.UUID(int=0x1234), username="carol")


def uuid_token(user_id: Any) -> str:
    """A valid HS256 token whose user id claim is ``user_id``, JSON type kept."""
    return hs_token({**claims_for(), "user_id": user_id})


@pytest.mark.parametrize(
    "user_id",
    [
        pytest.param("not-a-uuid", id="U11-not-a-uuid"),
        pytest.param("1", id="U11-integer-string"),
        pytest.param(1, id="U11-json-integer"),
        pytest.param("00000000000000000000000000001234", id="U11-unhyphenated"),
        pytest.param("{00000000-0000-0000-0000-000000001234}", id="U11-braced"),
        pytest.param(" 00000000-0000-0000-0000-000000001234", id="U11-leading-space"),
        pytest.param("urn:uuid:00000000-0000-0000-0000-000000001234", id="U11-urn"),
    ],
)
async def test_U11_malformed_uuid_user_id_is_invalid_without_a_query(
    user_id: Any, uuid_user: Any, caplog: pytest.LogCaptureFixture
) -> None:
    await assert_refused(
        carrying(uuid_token(user_id), "subprotocol"), INVALID, settings=HS_PROFILE, caplog=caplog
    )


async def test_U11_canonical_uuid_user_id_is_accepted(uuid_user: Any) -> None:
    inner = RecordingApp()
    token = uuid_token(str(uuid_user.pk).upper())
    result = await handshake(
        JWTAuthMiddleware(inner), carrying(token, "subprotocol").scope, accepted=True
    )
    assert result.queries == 1
    assert inner.scopes[0]["user"] == uuid_user
    assert inner.scopes[0]["jwt"].claims["user_id"] == str(uuid_user.pk).upper()


async def test_U11_unknown_uuid_is_rejected_after_one_query(
    uuid_user: Any, caplog: pytest.LogCaptureFixture
) -> None:
    await assert_refused(
        carrying(uuid_token(str(uuid.uuid4())), "subprotocol"),
        "user_rejected",
        settings=HS_PROFILE,
        caplog=caplog,
        queries=1,
    )
