"""Keys, the database, one user, one session and the tokens the benchmarks present.

Keys are generated once into ``benchmarks/.state/keys.json`` so the benchmark process (which
signs) and the servers it starts (which verify) agree. Nothing here touches Django at import
time: the settings module imports it.
"""

from __future__ import annotations

import json
import os
import secrets
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

STATE_DIR = Path(__file__).resolve().parent / ".state"
KEYS_FILE = STATE_DIR / "keys.json"
#: Environment variable naming this run's SQLite file (inherited by the servers it starts).
DATABASE_ENV = "CHANNELS_JWT_BENCH_DATABASE"
#: Asymmetric algorithms benchmarked, and the key each is signed with.
ASYMMETRIC = ("RS256", "ES256", "EdDSA")
#: Tokens outlive the run (the expiry timer is armed, but never fires during a benchmark).
TOKEN_LIFETIME_SECONDS = 3600


def _private_pem(key: Any) -> str:
    return str(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
    )


def _public_pem(key: Any) -> str:
    public = key.public_key()
    return str(
        public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode()
    )


def _generate_keys() -> dict[str, Any]:
    private = {
        "RS256": rsa.generate_private_key(public_exponent=65537, key_size=2048),
        "ES256": ec.generate_private_key(ec.SECP256R1()),
        "EdDSA": ed25519.Ed25519PrivateKey.generate(),
    }
    keys: dict[str, Any] = {"hs256": secrets.token_urlsafe(48)}
    for algorithm, key in private.items():
        keys[algorithm] = {"private": _private_pem(key), "public": _public_pem(key)}
    return keys


def load_keys() -> dict[str, Any]:
    """The benchmark keys: read from the state directory, generated on first use."""
    if KEYS_FILE.exists():
        keys: dict[str, Any] = json.loads(KEYS_FILE.read_text())
        return keys
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    keys = _generate_keys()
    partial = KEYS_FILE.with_suffix(f".{os.getpid()}.tmp")
    partial.write_text(json.dumps(keys))
    os.replace(partial, KEYS_FILE)
    return keys


@dataclass(frozen=True)
class Fixtures:
    """What a client needs to authenticate against each stack."""

    user_pk: int
    session_key: str
    tokens: dict[str, str]


def claims(user_pk: int, lifetime: float = TOKEN_LIFETIME_SECONDS) -> dict[str, Any]:
    """simplejwt-shaped access-token claims for ``user_pk``."""
    now = int(time.time())
    return {
        "token_type": "access",
        "user_id": str(user_pk),
        "iat": now,
        "exp": now + int(lifetime),
        "jti": uuid.uuid4().hex,
    }


def mint_tokens(user_pk: int, keys: dict[str, Any]) -> dict[str, str]:
    """One valid token per algorithm, a garbage string and a token signed with a wrong key."""
    tokens = {"HS256": jwt.encode(claims(user_pk), keys["hs256"], algorithm="HS256")}
    for algorithm in ASYMMETRIC:
        private = serialization.load_pem_private_key(
            keys[algorithm]["private"].encode(), password=None
        )
        tokens[algorithm] = jwt.encode(claims(user_pk), private, algorithm=algorithm)  # type: ignore[arg-type]
    # Random base64url noise of a realistic token length, no dots: not a compact JWS (4400).
    tokens["garbage"] = secrets.token_urlsafe(150)
    # Well formed, right algorithm, wrong secret: fails the signature check (4401).
    tokens["badsig"] = jwt.encode(claims(user_pk), secrets.token_urlsafe(48), algorithm="HS256")
    return tokens


def prepare_database(keys: dict[str, Any]) -> Fixtures:
    """A fresh SQLite file with the schema, one active user and one logged-in session."""
    from django.conf import settings
    from django.contrib.auth import (
        BACKEND_SESSION_KEY,
        HASH_SESSION_KEY,
        SESSION_KEY,
        get_user_model,
    )
    from django.contrib.sessions.backends.db import SessionStore
    from django.core.management import call_command
    from django.db import connections

    connections.close_all()
    database = Path(str(settings.DATABASES["default"]["NAME"]))
    for leftover in database.parent.glob(database.name + "*"):
        leftover.unlink()
    call_command("migrate", verbosity=0, interactive=False)
    user_model = get_user_model()
    user = user_model(username="bench", email="bench@example.com", is_active=True)
    user.set_unusable_password()  # the session hash is an HMAC of it; no hasher cost here
    user.save()
    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.create()
    assert session.session_key is not None
    connections.close_all()
    return Fixtures(
        user_pk=int(user.pk), session_key=session.session_key, tokens=mint_tokens(user.pk, keys)
    )
