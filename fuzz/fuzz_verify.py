"""Fuzz the verification entry point: ``Pipeline.authenticate`` (``TokenVerifier`` + user).

Each input picks one of four real configurations (HS256 defaults; HS384/HS512 with audience,
issuer, leeway and lifetime cap; ES256 keys named by ``kid`` with a text user id; a list of
Ed25519 keys) and either hands a token string over as it is, or has the harness sign a
fuzzed header and payload with the configuration's real key for the header's ``alg`` (or
with its public key as an HMAC secret, the algorithm-confusion forgery). The second mode
reaches the claim checks that only run after a signature verified.

Allowed outcomes: the ``(claims, user)`` pair, or an ``AuthenticationFailed``. Anything else
escaping is a crash. An accepted token must also pass :func:`harness.check_accepted`: a
valid signature under an allowed algorithm and the key the settings select (checked with
``cryptography`` directly, not PyJWT), live time claims, type, audience, issuer, lifetime,
and a canonical user id.

Run: ``python -m fuzz.fuzz_verify [libFuzzer flags] [corpus dirs]`` (see ``make fuzz``).
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports(include=["channels_jwt", "jwt", "fuzz"]):
    from channels_jwt.exceptions import AuthenticationFailed
    from fuzz.formats import decode_verify_case
    from fuzz.harness import CONFIGS, Outcomes, check_accepted, now, run, sign

OUTCOMES = Outcomes("verify")
SCOPE = {"type": "websocket", "path": "/ws/fuzz/", "client": ("127.0.0.1", 40000)}


def test_one_input(data: bytes) -> None:
    """One case: verify, then hold an acceptance to the oracle."""
    case = decode_verify_case(data, len(CONFIGS))
    config = CONFIGS[case.config]
    token = case.token if case.token is not None else sign(config, case.header, case.payload)
    started = now()
    try:
        claims, user = run(config, config.pipeline.authenticate(token, dict(SCOPE)))
    except AuthenticationFailed as exc:
        OUTCOMES.add(f"{config.name}:{int(exc.close_code)}")
        return
    check_accepted(config, token, claims, user, started, now())
    OUTCOMES.add(f"{config.name}:accepted")


def main() -> None:
    """Hand over to libFuzzer (its flags and corpus directories come from ``sys.argv``)."""
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
