"""Mint access tokens with the configured key and claims (``issue_token``)."""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import jwt
from django.core.exceptions import ImproperlyConfigured

from channels_jwt.conf import Settings, active_settings, seconds
from channels_jwt.keys import UnusableKey, hmac_secret, is_hmac, load_private_key

#: Lifetime of tokens minted by :func:`issue_token` when none is given.
DEFAULT_LIFETIME_SECONDS = 300


def issue_token(
    user: Any,
    *,
    lifetime: timedelta | float | None = None,
    claims: Mapping[str, Any] | None = None,
) -> str:
    """Return a signed access token for ``user`` that channels_jwt will accept.

    The token carries the user id claim (``str`` of ``USER_ID_FIELD``, as simplejwt writes
    it), the token type, ``iat``, ``exp`` (now + ``lifetime``, default 5 minutes), a random
    ``jti``, and ``aud``/``iss`` when configured. ``claims`` are added last and may override
    any of these. Signs with the first of ``ALGORITHMS``: ``SIGNING_KEY`` for HMAC,
    ``PRIVATE_KEY`` for asymmetric algorithms.
    """
    settings = active_settings()
    algorithm = settings.ALGORITHMS[0]
    key = settings.derived("signing_key", lambda: _signing_key(settings))
    now = int(time.time())
    duration = seconds(lifetime)
    payload: dict[str, Any] = {
        settings.USER_ID_CLAIM: str(getattr(user, settings.USER_ID_FIELD)),
        "iat": now,
        "exp": now + math.ceil(DEFAULT_LIFETIME_SECONDS if duration is None else duration),
        "jti": uuid.uuid4().hex,
    }
    if settings.TOKEN_TYPE_CLAIM:
        payload[settings.TOKEN_TYPE_CLAIM] = settings.TOKEN_TYPES[0]
    if settings.AUDIENCE:
        payload["aud"] = settings.AUDIENCE
    issuer = settings.ISSUER
    if issuer:
        payload["iss"] = issuer if isinstance(issuer, str) else issuer[0]
    payload.update(claims or {})
    return jwt.encode(payload, key, algorithm=algorithm)


def _signing_key(settings: Settings) -> Any:
    algorithms = settings.ALGORITHMS
    try:
        if is_hmac(algorithms[0]):
            return hmac_secret(settings.SIGNING_KEY or b"", algorithms)
        if settings.PRIVATE_KEY is None:
            raise UnusableKey("PRIVATE_KEY is required to sign with asymmetric algorithms")
        return load_private_key(settings.PRIVATE_KEY)
    except UnusableKey as exc:
        raise ImproperlyConfigured(f"issue_token cannot sign: {exc}") from exc
