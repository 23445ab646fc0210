"""Unit tests for ``channels_jwt.keys``: key parsing, minimum sizes, and key selection."""

from __future__ import annotations

from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed448, x25519
from django.core.exceptions import ImproperlyConfigured

from channels_jwt.keys import (
    UnusableKey,
    VerifyingKeys,
    hmac_secret,
    is_hmac,
    key_fits,
    load_private_key,
    load_public_key,
)
from channels_jwt.verify import TokenVerifier, VerificationRules
from tests.harness import (
    Keys,
    claims_for,
    private_pem,
    public_pem,
    rs_verifier,
    verifier,
)

RSA = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"]


@pytest.fixture(scope="module")
def ed448_key() -> ed448.Ed448PrivateKey:
    """An Ed448 private key (EdDSA's other curve)."""
    return ed448.Ed448PrivateKey.generate()


@pytest.fixture(scope="module")
def x25519_key() -> x25519.X25519PrivateKey:
    """A key-agreement key: valid PEM, but no signature algorithm can use it."""
    return x25519.X25519PrivateKey.generate()


def same_key(one: Any, other: Any) -> bool:
    """Whether two public keys are the same key."""
    encoding = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return bool(one.public_bytes(*encoding) == other.public_bytes(*encoding))


# --- is_hmac / key_fits ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("algorithm", "expected"),
    [("HS256", True), ("HS384", True), ("HS512", True), ("RS256", False), ("none", False)],
)
def test_is_hmac(algorithm: str, expected: bool) -> None:
    assert is_hmac(algorithm) is expected


@pytest.mark.parametrize("algorithm", RSA)
@pytest.mark.parametrize("public", [True, False], ids=["public", "private"])
def test_rsa_key_fits_rsa_algorithms(keys: Keys, algorithm: str, public: bool) -> None:
    key = keys.rsa.public_key() if public else keys.rsa
    assert key_fits(algorithm, key) is True


@pytest.mark.parametrize("algorithm", RSA)
def test_other_keys_do_not_fit_rsa_algorithms(keys: Keys, algorithm: str) -> None:
    assert key_fits(algorithm, keys.p256.public_key()) is False
    assert key_fits(algorithm, keys.ed25519.public_key()) is False


@pytest.mark.parametrize(
    ("algorithm", "curve"), [("ES256", "p256"), ("ES384", "p384"), ("ES512", "p521")]
)
@pytest.mark.parametrize("public", [True, False], ids=["public", "private"])
def test_ec_key_fits_its_curve(keys: Keys, algorithm: str, curve: str, public: bool) -> None:
    private_key = getattr(keys, curve)
    key = private_key.public_key() if public else private_key
    assert key_fits(algorithm, key) is True


@pytest.mark.parametrize(
    ("algorithm", "curve"),
    [("ES256", "p384"), ("ES256", "p521"), ("ES384", "p256"), ("ES512", "p384")],
)
def test_ec_key_does_not_fit_another_curve(keys: Keys, algorithm: str, curve: str) -> None:
    assert key_fits(algorithm, getattr(keys, curve).public_key()) is False


def test_non_ec_key_does_not_fit_ec_algorithm(keys: Keys) -> None:
    assert key_fits("ES256", keys.rsa.public_key()) is False
    assert key_fits("ES256", keys.ed25519.public_key()) is False


def test_edwards_keys_fit_eddsa(keys: Keys, ed448_key: ed448.Ed448PrivateKey) -> None:
    for key in (keys.ed25519, keys.ed25519.public_key(), ed448_key, ed448_key.public_key()):
        assert key_fits("EdDSA", key) is True


def test_other_keys_do_not_fit_eddsa(keys: Keys) -> None:
    assert key_fits("EdDSA", keys.rsa.public_key()) is False
    assert key_fits("EdDSA", keys.p256.public_key()) is False


# --- hmac_secret -------------------------------------------------------------------------


def test_hmac_secret_encodes_a_str() -> None:
    assert hmac_secret("é" * 16, ("HS256",)) == ("é" * 16).encode()


def test_hmac_secret_keeps_bytes() -> None:
    secret = bytes(range(48))
    assert hmac_secret(secret, ("HS384",)) is secret


@pytest.mark.parametrize(
    ("algorithms", "size"),
    [
        pytest.param(("HS256",), 32, id="hs256"),
        pytest.param(("HS384",), 48, id="hs384"),
        pytest.param(("HS512",), 64, id="hs512"),
        pytest.param(("HS512", "HS256"), 64, id="largest-of-several"),
    ],
)
def test_hmac_secret_of_exactly_the_hash_size_is_accepted(
    algorithms: tuple[str, ...], size: int
) -> None:
    assert hmac_secret("s" * size, algorithms) == b"s" * size


@pytest.mark.parametrize(
    ("algorithms", "size"),
    [
        pytest.param(("HS256",), 31, id="hs256"),
        pytest.param(("HS384",), 47, id="hs384"),
        pytest.param(("HS512",), 63, id="hs512"),
        pytest.param(("HS256", "HS512"), 32, id="largest-of-several"),
    ],
)
def test_hmac_secret_shorter_than_the_hash_is_refused(
    algorithms: tuple[str, ...], size: int
) -> None:
    with pytest.raises(UnusableKey, match=f"SIGNING_KEY is {size} bytes") as info:
        hmac_secret("s" * size, algorithms)
    assert "sss" not in str(info.value)


def test_hmac_secret_counts_bytes_not_characters() -> None:
    # 16 characters, 32 bytes in UTF-8.
    assert len(hmac_secret("é" * 16, ("HS256",))) == 32
    with pytest.raises(UnusableKey):
        hmac_secret("é" * 15, ("HS256",))


# --- load_public_key ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["rsa", "p256", "p384", "p521", "ed25519"], ids=lambda name: f"pem-{name}"
)
@pytest.mark.parametrize("as_bytes", [False, True], ids=["str", "bytes"])
def test_load_public_key_from_pem(keys: Keys, name: str, as_bytes: bool) -> None:
    private_key = getattr(keys, name)
    pem: str | bytes = public_pem(private_key)
    if as_bytes:
        pem = pem.encode()
    assert same_key(load_public_key(pem), private_key.public_key())


def test_load_public_key_ed448_pem(ed448_key: ed448.Ed448PrivateKey) -> None:
    assert same_key(load_public_key(public_pem(ed448_key)), ed448_key.public_key())


@pytest.mark.parametrize("name", ["rsa", "p256", "ed25519"])
def test_load_public_key_accepts_a_key_object(keys: Keys, name: str) -> None:
    key = getattr(keys, name).public_key()
    assert load_public_key(key) is key


@pytest.mark.parametrize("name", ["rsa", "p256", "ed25519"])
def test_load_public_key_refuses_a_private_key_object(keys: Keys, name: str) -> None:
    with pytest.raises(UnusableKey, match="private key"):
        load_public_key(getattr(keys, name))


@pytest.mark.parametrize("name", ["rsa", "p256", "ed25519"])
@pytest.mark.parametrize("as_bytes", [False, True], ids=["str", "bytes"])
def test_load_public_key_refuses_a_private_pem(keys: Keys, name: str, as_bytes: bool) -> None:
    pem: str | bytes = private_pem(getattr(keys, name))
    if as_bytes:
        pem = pem.encode()
    with pytest.raises(UnusableKey, match="private key") as info:
        load_public_key(pem)
    assert "BEGIN" not in str(info.value)


def test_load_public_key_refuses_a_traditional_rsa_private_pem(keys: Keys) -> None:
    pem = keys.rsa.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    assert pem.startswith(b"-----BEGIN RSA PRIVATE KEY")
    with pytest.raises(UnusableKey, match="private key"):
        load_public_key(pem)


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("not a key", id="text"),
        pytest.param("", id="empty"),
        pytest.param(b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", id="bad-pem"),
        pytest.param(
            "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n", id="certificate"
        ),
    ],
)
def test_load_public_key_refuses_garbage(value: str | bytes) -> None:
    with pytest.raises(UnusableKey, match="not a PEM public key"):
        load_public_key(value)


@pytest.mark.parametrize(
    "value", [None, 42, ["pem"], {"kid": "pem"}], ids=["none", "int", "list", "dict"]
)
def test_load_public_key_refuses_other_types(value: Any) -> None:
    with pytest.raises(UnusableKey, match=f"got {type(value).__name__}"):
        load_public_key(value)


def test_load_public_key_refuses_a_key_agreement_pem(x25519_key: x25519.X25519PrivateKey) -> None:
    with pytest.raises(UnusableKey, match="unsupported key type X25519PublicKey"):
        load_public_key(public_pem(x25519_key))


def test_load_public_key_refuses_a_key_agreement_object(
    x25519_key: x25519.X25519PrivateKey,
) -> None:
    with pytest.raises(UnusableKey):
        load_public_key(x25519_key.public_key())


def test_load_public_key_refuses_rsa_1024_pem(keys: Keys) -> None:
    with pytest.raises(UnusableKey, match="RSA key is 1024 bits; at least 2048"):
        load_public_key(public_pem(keys.rsa_small))


def test_load_public_key_refuses_rsa_1024_object(keys: Keys) -> None:
    with pytest.raises(UnusableKey, match="1024 bits"):
        load_public_key(keys.rsa_small.public_key())


def test_load_public_key_chains_the_parse_error() -> None:
    with pytest.raises(UnusableKey) as info:
        load_public_key("not a key")
    assert isinstance(info.value.__cause__, ValueError)


# --- load_private_key --------------------------------------------------------------------


@pytest.mark.parametrize("name", ["rsa", "p256", "p384", "p521", "ed25519"])
@pytest.mark.parametrize("as_bytes", [False, True], ids=["str", "bytes"])
def test_load_private_key_from_pem(keys: Keys, name: str, as_bytes: bool) -> None:
    private_key = getattr(keys, name)
    pem: str | bytes = private_pem(private_key)
    if as_bytes:
        pem = pem.encode()
    assert same_key(load_private_key(pem).public_key(), private_key.public_key())


def test_load_private_key_ed448(ed448_key: ed448.Ed448PrivateKey) -> None:
    loaded = load_private_key(private_pem(ed448_key))
    assert same_key(loaded.public_key(), ed448_key.public_key())


@pytest.mark.parametrize("name", ["rsa", "p256", "ed25519"])
def test_load_private_key_accepts_a_key_object(keys: Keys, name: str) -> None:
    key = getattr(keys, name)
    assert load_private_key(key) is key


def test_load_private_key_refuses_a_public_pem(keys: Keys) -> None:
    with pytest.raises(UnusableKey, match="not an unencrypted PEM private key"):
        load_private_key(public_pem(keys.rsa))


def test_load_private_key_refuses_an_encrypted_pem(keys: Keys) -> None:
    pem = keys.p256.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"passphrase"),
    )
    with pytest.raises(UnusableKey, match="not an unencrypted PEM private key"):
        load_private_key(pem)


@pytest.mark.parametrize("value", ["garbage", b""], ids=["text", "empty"])
def test_load_private_key_refuses_garbage(value: str | bytes) -> None:
    with pytest.raises(UnusableKey, match="not an unencrypted PEM private key"):
        load_private_key(value)


@pytest.mark.parametrize("value", [None, 42], ids=["none", "int"])
def test_load_private_key_refuses_other_types(value: Any) -> None:
    with pytest.raises(UnusableKey, match=f"got {type(value).__name__}"):
        load_private_key(value)


def test_load_private_key_refuses_a_public_key_object(keys: Keys) -> None:
    with pytest.raises(UnusableKey, match="got RSAPublicKey"):
        load_private_key(keys.rsa.public_key())


def test_load_private_key_refuses_a_key_agreement_pem(
    x25519_key: x25519.X25519PrivateKey,
) -> None:
    with pytest.raises(UnusableKey, match="unsupported key type X25519PrivateKey"):
        load_private_key(private_pem(x25519_key))


def test_load_private_key_refuses_rsa_1024_pem(keys: Keys) -> None:
    with pytest.raises(UnusableKey, match="RSA key is 1024 bits"):
        load_private_key(private_pem(keys.rsa_small))


def test_load_private_key_refuses_rsa_1024_object(keys: Keys) -> None:
    with pytest.raises(UnusableKey, match="RSA key is 1024 bits"):
        load_private_key(keys.rsa_small)


# --- VerifyingKeys -----------------------------------------------------------------------


def test_parse_one_pem(keys: Keys) -> None:
    parsed = VerifyingKeys.parse(public_pem(keys.rsa))
    assert parsed.by_kid == {}
    assert len(parsed.unnamed) == 1
    assert same_key(parsed.unnamed[0], keys.rsa.public_key())


def test_parse_one_key_object(keys: Keys) -> None:
    key = keys.p256.public_key()
    assert VerifyingKeys.parse(key) == VerifyingKeys({}, (key,))


@pytest.mark.parametrize("container", [list, tuple])
def test_parse_a_sequence_keeps_order(keys: Keys, container: type) -> None:
    parsed = VerifyingKeys.parse(container([public_pem(keys.rsa), public_pem(keys.rsa_other)]))
    assert parsed.by_kid == {}
    assert len(parsed.unnamed) == 2
    assert same_key(parsed.unnamed[0], keys.rsa.public_key())
    assert same_key(parsed.unnamed[1], keys.rsa_other.public_key())


def test_parse_a_mapping_names_keys_by_kid(keys: Keys) -> None:
    parsed = VerifyingKeys.parse({"a": public_pem(keys.rsa), 7: public_pem(keys.p256)})
    assert parsed.unnamed == ()
    assert sorted(parsed.by_kid) == ["7", "a"]
    assert same_key(parsed.by_kid["a"], keys.rsa.public_key())
    assert same_key(parsed.by_kid["7"], keys.p256.public_key())


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("garbage", id="one"),
        pytest.param(["garbage"], id="list"),
        pytest.param({"a": "garbage"}, id="mapping"),
        pytest.param(None, id="none"),
    ],
)
def test_parse_refuses_garbage(value: Any) -> None:
    with pytest.raises(UnusableKey):
        VerifyingKeys.parse(value)


def test_parse_refuses_a_private_key_in_a_list(keys: Keys) -> None:
    with pytest.raises(UnusableKey, match="private key"):
        VerifyingKeys.parse([public_pem(keys.rsa), private_pem(keys.rsa_other)])


@pytest.fixture
def unnamed(keys: Keys) -> VerifyingKeys:
    """RSA, P-256 and Ed25519 public keys without names."""
    return VerifyingKeys(
        {}, (keys.rsa.public_key(), keys.p256.public_key(), keys.ed25519.public_key())
    )


@pytest.fixture
def named(keys: Keys) -> VerifyingKeys:
    """Two RSA keys and a P-256 key named by kid."""
    return VerifyingKeys(
        {
            "r1": keys.rsa.public_key(),
            "r2": keys.rsa_other.public_key(),
            "e1": keys.p256.public_key(),
        },
        (),
    )


@pytest.mark.parametrize(
    ("algorithm", "expected"),
    [("RS256", 0), ("PS512", 0), ("ES256", 1), ("EdDSA", 2)],
)
@pytest.mark.parametrize("kid", [None, "ignored"], ids=["no-kid", "kid"])
def test_unnamed_candidates_are_filtered_by_algorithm_and_ignore_kid(
    unnamed: VerifyingKeys, algorithm: str, expected: int, kid: str | None
) -> None:
    assert unnamed.candidates(algorithm, kid) == [unnamed.unnamed[expected]]


def test_unnamed_candidates_for_an_unfit_algorithm_are_empty(unnamed: VerifyingKeys) -> None:
    assert unnamed.candidates("ES384", None) == []


def test_named_candidates_without_kid_are_every_fitting_key(named: VerifyingKeys) -> None:
    assert named.candidates("RS256", None) == [named.by_kid["r1"], named.by_kid["r2"]]
    assert named.candidates("ES256", None) == [named.by_kid["e1"]]


def test_named_candidates_with_kid_are_that_key(named: VerifyingKeys) -> None:
    assert named.candidates("RS256", "r2") == [named.by_kid["r2"]]


def test_named_candidates_with_unknown_kid_are_empty(named: VerifyingKeys) -> None:
    assert named.candidates("RS256", "r3") == []


def test_named_candidates_with_kid_of_another_type_are_empty(named: VerifyingKeys) -> None:
    assert named.candidates("RS256", "e1") == []


def test_all_lists_named_then_unnamed_keys(keys: Keys) -> None:
    rsa_key, ec_key = keys.rsa.public_key(), keys.p256.public_key()
    assert VerifyingKeys({"r": rsa_key}, (ec_key,)).all() == (rsa_key, ec_key)


def test_all_of_parsed_keys(named: VerifyingKeys, unnamed: VerifyingKeys) -> None:
    assert named.all() == tuple(named.by_kid.values())
    assert unnamed.all() == unnamed.unnamed


# --- unusable keys -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        pytest.param({"SIGNING_KEY": "x" * 31}, "31 bytes", id="hs256-31-bytes"),
        pytest.param({"SIGNING_KEY": b"x" * 31}, "31 bytes", id="hs256-31-bytes-as-bytes"),
        pytest.param(
            {"ALGORITHMS": ["HS512"], "SIGNING_KEY": "x" * 63}, "needs at least 64", id="hs512-63"
        ),
        pytest.param(
            {"ALGORITHMS": ["HS256", "HS384"], "SIGNING_KEY": "x" * 40},
            "needs at least 48",
            id="largest-hash-counts",
        ),
        pytest.param({"SIGNING_KEY": None}, "0 bytes", id="no-signing-key"),
        pytest.param({"SIGNING_KEY": ""}, "0 bytes", id="empty-signing-key"),
    ],
)
def test_unusable_hmac_key_is_improperly_configured(
    overrides: dict[str, Any], fragment: str
) -> None:
    with pytest.raises(ImproperlyConfigured, match=fragment) as info:
        verifier(**overrides)
    assert "xxxx" not in str(info.value)


def test_hmac_key_of_exactly_the_hash_size_is_accepted() -> None:
    key = "k" * 32
    token = jwt.encode(claims_for(), key, algorithm="HS256")
    assert verifier(SIGNING_KEY=key).verify(token)["user_id"] == "1"


def test_rsa_1024_verifying_key_is_improperly_configured(keys: Keys) -> None:
    with pytest.raises(ImproperlyConfigured, match="1024 bits"):
        rs_verifier(keys, VERIFYING_KEY=public_pem(keys.rsa_small))


def test_rsa_1024_in_a_key_list_is_improperly_configured(keys: Keys) -> None:
    with pytest.raises(ImproperlyConfigured, match="1024 bits"):
        rs_verifier(keys, VERIFYING_KEY=[public_pem(keys.rsa), public_pem(keys.rsa_small)])


def test_private_key_as_verifying_key_is_improperly_configured(keys: Keys) -> None:
    pem = private_pem(keys.rsa)
    with pytest.raises(ImproperlyConfigured, match="private key") as info:
        rs_verifier(keys, VERIFYING_KEY=pem)
    assert pem not in str(info.value)


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(None, id="none"),
        pytest.param("not a pem", id="garbage"),
        pytest.param({"one": "not a pem"}, id="map-with-garbage"),
    ],
)
def test_missing_or_garbage_verifying_key_is_improperly_configured(keys: Keys, value: Any) -> None:
    with pytest.raises(ImproperlyConfigured):
        rs_verifier(keys, VERIFYING_KEY=value)


def test_improperly_configured_is_chained() -> None:
    with pytest.raises(ImproperlyConfigured) as info:
        verifier(SIGNING_KEY="short")
    assert type(info.value.__cause__).__name__ == "UnusableKey"


def test_verifier_refuses_an_hmac_secret_shorter_than_its_hash() -> None:
    rules = VerificationRules(
        algorithms=("HS256", "HS512"),
        hmac_secret=b"k" * 32,  # enough for HS256, half of what HS512 needs
        verifying_keys=None,
        audience=None,
        issuer=None,
        leeway=0,
        required_claims=("exp",),
        max_lifetime=None,
        token_type_claim=None,
        token_types=(),
        max_token_bytes=8192,
    )
    with pytest.raises(ImproperlyConfigured, match="HS512"):
        TokenVerifier(rules)
