"""The verifier judges claims exactly as ``jwt.decode`` does (differential test).

``TokenVerifier`` checks signatures with PyJWT's algorithm objects but validates the registered
claims itself, on the payload it has already parsed strictly. Here every verdict is compared
with ``jwt.decode`` over the same token and the same configuration: a few thousand claim sets
drawn (with a fixed seed) from values around every boundary and of every JSON type PyJWT
treats specially. A success must give the same claims; a failure the exception class that
stands for PyJWT's error (:func:`expected_failure`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import random
import time
from typing import Any

import jwt
import pytest

from channels_jwt.conf import Config, Settings
from channels_jwt.exceptions import AuthenticationFailed, TokenExpired, TokenInvalid, TokenMalformed
from channels_jwt.verify import TokenVerifier
from tests.harness import HS_KEY

CASES = 3000
MISSING = object()
#: Offsets from now in seconds, kept away from the instant of the check so that the two
#: verdicts, taken microseconds apart, cannot straddle a boundary.
OFFSETS = (-1000, -40, -20, 20, 40, 1000)

CLAIM_CHOICES: dict[str, tuple[Any, ...]] = {
    "exp": (1000, MISSING, *OFFSETS),
    "iat": (-1000, MISSING, *OFFSETS),
    "nbf": (MISSING, *OFFSETS),
    "iss": (MISSING, "a", "b", "", 5, None, ["a"]),
    "aud": (MISSING, "x", "z", "", [], ["x"], ["y", "x"], ["z"], [1], ["x", 1], {"x": 1}, 0, None),
    "sub": (MISSING, "s", "", 5, None, ["s"]),
    "jti": (MISSING, "j", "", 7, None),
    "user_id": ("1", MISSING, None),
}
CONFIG_CHOICES: dict[str, tuple[Any, ...]] = {
    "AUDIENCE": (None, "x", ["x", "q"], ["q"]),
    "ISSUER": (None, "a", ["a", "c"]),
    "LEEWAY": (0, 30),
    "REQUIRED_CLAIMS": (("exp", "iat"), (), ("exp", "iat", "nbf", "sub")),
}
TIME_CLAIMS = ("exp", "iat", "nbf")


def draw(rng: random.Random, choices: dict[str, tuple[Any, ...]]) -> dict[str, Any]:
    """Each item is its first, unremarkable choice half the time, so that most draws differ
    from an acceptable token in one or two places: otherwise one early failure would hide
    how every later check treats the rest."""
    return {
        name: values[0] if rng.random() < 0.5 else rng.choice(values)
        for name, values in choices.items()
    }


def hand_signed_token(claims: dict[str, Any], now: int) -> str:
    payload = {
        name: now + value if name in TIME_CLAIMS else value
        for name, value in claims.items()
        if value is not MISSING
    }

    # Signed by hand: jwt.encode refuses some of the claim types under test (a numeric iss).
    def encode(value: dict[str, Any]) -> bytes:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=")

    signing_input = encode({"alg": "HS256", "typ": "JWT"}) + b"." + encode(payload)
    mac = hmac.new(HS_KEY.encode(), signing_input, hashlib.sha256).digest()
    return (signing_input + b"." + base64.urlsafe_b64encode(mac).rstrip(b"=")).decode()


def expected_failure(error: jwt.PyJWTError) -> type[AuthenticationFailed]:
    """What a PyJWT refusal must be here: expired is 4440, undecodable 4400, the rest 4401."""
    if isinstance(error, jwt.ExpiredSignatureError):
        return TokenExpired
    if isinstance(error, jwt.DecodeError):
        return TokenMalformed
    return TokenInvalid


def pyjwt_verdict(token: str, config: dict[str, Any]) -> Any:
    try:
        return jwt.decode(
            token,
            HS_KEY,
            algorithms=["HS256"],
            audience=config["AUDIENCE"],
            issuer=config["ISSUER"],
            leeway=config["LEEWAY"],
            options={"require": [*config["REQUIRED_CLAIMS"], "user_id"]},
        )
    except jwt.PyJWTError as exc:
        return expected_failure(exc)


def our_verdict(token: str, config: dict[str, Any]) -> Any:
    verifier = TokenVerifier.from_config(
        Config.from_settings(Settings({**config, "TOKEN_TYPE_CLAIM": None}))
    )
    try:
        return verifier.verify(token)
    except AuthenticationFailed as exc:
        return type(exc)


def test_claim_verdicts_match_pyjwt_decode() -> None:
    rng = random.Random(20261124)
    now = int(time.time())
    mismatches = []
    outcomes: set[Any] = set()
    for _ in range(CASES):
        claims, config = draw(rng, CLAIM_CHOICES), draw(rng, CONFIG_CHOICES)
        token = hand_signed_token(claims, now)
        expected, actual = pyjwt_verdict(token, config), our_verdict(token, config)
        outcomes.add(expected if isinstance(expected, type) else "accepted")
        if expected != actual:
            mismatches.append((claims, config, expected, actual))
    assert mismatches == []
    # The draw reaches acceptance and both kinds of refusal, or the comparison proves little.
    assert {"accepted", TokenExpired, TokenInvalid} <= outcomes
    assert len(outcomes) == 3


@pytest.mark.parametrize(
    ("claims", "config"),
    [
        pytest.param({"exp": -20}, {"LEEWAY": 30}, id="expired-within-leeway"),
        pytest.param({"iat": 20}, {"LEEWAY": 30}, id="future-iat-within-leeway"),
        pytest.param({"iat": 40, "exp": -40}, {}, id="future-iat-before-expiry"),
        pytest.param({"exp": -40, "iss": "b"}, {"ISSUER": "a"}, id="expiry-before-issuer"),
        pytest.param({"iss": "b", "aud": "z"}, {"ISSUER": "a", "AUDIENCE": "x"}, id="issuer-first"),
        pytest.param({"aud": ""}, {}, id="empty-audience-without-setting"),
        pytest.param({"aud": []}, {"AUDIENCE": "x"}, id="empty-audience-list-with-setting"),
    ],
)
def test_precedence_and_edges_match_pyjwt_decode(
    claims: dict[str, Any], config: dict[str, Any]
) -> None:
    full_config = {"AUDIENCE": None, "ISSUER": None, "LEEWAY": 0, "REQUIRED_CLAIMS": ()}
    full_config.update(config)
    token = hand_signed_token({"user_id": "1", **claims}, int(time.time()))
    assert our_verdict(token, full_config) == pyjwt_verdict(token, full_config)
