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

from channels_jwt.conf import Config, seconds
from channels_jwt.config import current_config
from channels_jwt.keys import hmac_secret, is_hmac

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
    ``PRIVATE_KEY`` for asymmetric algorithms, with the configuration of the connection in
    progress (or else the project's). Raises ``ImproperlyConfigured`` when that configuration
    has a system-check error or no ``PRIVATE_KEY`` for asymmetric algorithms.
    """
    try:
        config = current_config()
    except ImproperlyConfigured as exc:
        raise ImproperlyConfigured(f"issue_token cannot sign: {exc}") from exc
    algorithm = config.ALGORITHMS[0]
    key = config.derived("signing_key", lambda: _signing_key(config))
    now = int(time.time())
    duration = seconds(lifetime)
    payload: dict[str, Any] = {
        config.USER_ID_CLAIM: str(getattr(user, config.USER_ID_FIELD)),
        "iat": now,
        "exp": now + math.ceil(DEFAULT_LIFETIME_SECONDS if duration is None else duration),
        "jti": uuid.uuid4().hex,
    }
    if config.TOKEN_TYPE_CLAIM:
        payload[config.TOKEN_TYPE_CLAIM] = config.TOKEN_TYPES[0]
    if config.AUDIENCE:
        payload["aud"] = config.AUDIENCE
    issuer = config.ISSUER
    if issuer:
        payload["iss"] = issuer if isinstance(issuer, str) else issuer[0]
    payload.update(claims or {})
    return jwt.encode(payload, key, algorithm=algorithm)


def _signing_key(config: Config) -> Any:
    if is_hmac(config.ALGORITHMS[0]):
        return hmac_secret(config.SIGNING_KEY or b"", config.ALGORITHMS)
    if config.private_key is None:
        raise ImproperlyConfigured(
            "issue_token cannot sign: PRIVATE_KEY is required to sign with asymmetric algorithms"
        )
    return config.private_key
