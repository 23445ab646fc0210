"""K01-K10: configurations that must refuse to start.

Each is a system check error, and a handshake closed 4503 instead of anyone being let in.
"""

from __future__ import annotations

import importlib.metadata
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt
import pytest
from django.conf import settings as django_settings
from django.core import checks
from django.test import override_settings
from packaging.requirements import Requirement

from channels_jwt import JWTAuthMiddleware
from channels_jwt.checks import check_settings
from channels_jwt.conf import Settings
from tests.catalogue.kit import (
    UNAVAILABLE,
    Kit,
    assert_accepted,
    carrying,
    handshake,
    refused_outcome,
)
from tests.harness import (
    HS_KEY,
    Keys,
    RecordingApp,
    private_pem,
    public_pem,
)

# --- K01-K10: configurations that must refuse to start -----------------------------------------


@dataclass(frozen=True)
class BootRow:
    """A bad configuration, the check that names it, and a token its author would send."""

    id: str
    config: Callable[[Keys], dict[str, Any]]
    check: str
    token: Callable[[Kit], str]


def hs256_with(secret: bytes) -> Callable[[Kit], str]:
    return lambda kit: kit.hs(key=secret)


BOOT_ROWS = [
    BootRow(
        "K01-alg-none",
        lambda k: {"ALGORITHMS": ["none"]},
        "E004",
        lambda kit: kit.unsecured({"alg": "none"}),
    ),
    BootRow(
        "K01-none-in-any-case-beside-hs256",
        lambda k: {"ALGORITHMS": ["HS256", "NoNe"], "SIGNING_KEY": HS_KEY},
        "E004",
        lambda kit: kit.hs(),
    ),
    BootRow(
        "K02-mixed-families",
        lambda k: {
            "ALGORITHMS": ["RS256", "HS256"],
            "SIGNING_KEY": HS_KEY,
            "VERIFYING_KEY": public_pem(k.rsa),
        },
        "E005",
        lambda kit: kit.hs(),
    ),
    BootRow(
        "K03-hmac-key-31-bytes",
        lambda k: {"ALGORITHMS": ["HS256"], "SIGNING_KEY": "k" * 31},
        "E007",
        hs256_with(b"k" * 31),
    ),
    BootRow(
        "K03-hmac-key-empty",
        lambda k: {"ALGORITHMS": ["HS256"], "SIGNING_KEY": ""},
        "E006",
        hs256_with(b""),
    ),
    BootRow(
        "K05-algorithms-as-a-string",
        lambda k: {"ALGORITHMS": "RS256,HS256", "SIGNING_KEY": HS_KEY},
        "E002",
        lambda kit: kit.hs(),
    ),
    BootRow(
        "K06-rsa-1024-verifying-key",
        lambda k: {"ALGORITHMS": ["RS256"], "VERIFYING_KEY": public_pem(k.rsa_small)},
        "E010",
        lambda kit: kit.rs256(key=kit.keys.rsa_small),
    ),
    BootRow(
        "K07-private-key-as-verifying-key",
        lambda k: {"ALGORITHMS": ["RS256"], "VERIFYING_KEY": private_pem(k.rsa)},
        "E011",
        lambda kit: kit.signed("RS256"),
    ),
    *[
        BootRow(
            f"K08-jwks-url-{label}",
            lambda k, u=url: {"ALGORITHMS": ["RS256"], "JWK_URL": u},
            "E029",
            lambda kit: kit.rs256(kid="k1"),
        )
        for label, url in (
            ("http-not-loopback", "http://idp.example/.well-known/jwks.json"),
            ("file-scheme", "file:///etc/jwks.json"),
            ("ftp-scheme", "ftp://idp.example/jwks.json"),
        )
    ],
    *[
        BootRow(
            f"K09-leeway-{label}",
            lambda k, v=value: {"ALGORITHMS": ["HS256"], "SIGNING_KEY": HS_KEY, "LEEWAY": v},
            "E014",
            lambda kit: kit.hs(),
        )
        for label, value in (("negative", -1), ("61-seconds", 61), ("300-seconds", 300))
    ],
]


@pytest.mark.parametrize("row", [pytest.param(row, id=row.id) for row in BOOT_ROWS])
async def test_K_bad_configuration_refuses_every_handshake(
    row: BootRow, kit: Kit, caplog: pytest.LogCaptureFixture
) -> None:
    """BOOT: the system check reports an error (``manage.py check`` fails on it), and the
    middleware, if started anyway, lets nobody in: 4503 and an ERROR naming the check."""
    config = row.config(kit.keys)
    inner = RecordingApp()
    caplog.set_level(logging.INFO, "channels_jwt")
    with override_settings(CHANNELS_JWT=config):
        messages = check_settings(Settings())
        result = await handshake(
            JWTAuthMiddleware(inner), carrying(row.token(kit), "subprotocol").scope, accepted=False
        )

    errors = [message.id for message in messages if message.level >= checks.ERROR]
    assert f"channels_jwt.{row.check}" in errors
    assert refused_outcome(result) == (4503, UNAVAILABLE)
    assert result.finished_cleanly
    assert not inner.called
    assert result.queries == 0
    logged = [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR]
    assert len(logged) == 1
    assert logged[0].startswith("channels_jwt is misconfigured: channels_jwt.E0")


async def test_K04_signing_key_equal_to_secret_key_warns_loudly(
    kit: Kit, caplog: pytest.LogCaptureFixture
) -> None:
    """Key reuse across purposes (RFC 8725 section 3.5): a warning, not a refusal (the
    catalogue allows either); tokens signed with that key still authenticate."""
    config = {"ALGORITHMS": ["HS256"], "SIGNING_KEY": django_settings.SECRET_KEY}
    with override_settings(CHANNELS_JWT=config):
        warnings = [message.id for message in check_settings(Settings())]
    assert "channels_jwt.W002" in warnings
    token = kit.hs(key=django_settings.SECRET_KEY.encode())
    await assert_accepted(carrying(token, "subprotocol"), token, settings=config, caplog=caplog)


def test_K10_pyjwt_older_than_2_14_cannot_be_installed_with_the_package() -> None:
    """The PyJWT releases before 2.14 accept forged and non-canonical tokens (research 3.1):
    the package's requirement excludes them, so an installer refuses the combination."""
    requirements = [
        Requirement(text)
        for text in importlib.metadata.requires("channels-jwt") or []
        if Requirement(text).name.lower() == "pyjwt" and Requirement(text).marker is None
    ]
    assert len(requirements) == 1
    specifier = requirements[0].specifier
    assert not specifier.contains("2.13.99")
    assert not specifier.contains("2.12.1")
    assert specifier.contains("2.14.0")
    assert specifier.contains(jwt.__version__)
