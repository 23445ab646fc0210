"""Revoking tokens and users: denylists for the handshake, and live disconnection.

Two built-in ``REVOCATION_CHECK`` callables:

- :func:`cache_denylist` looks the token's ``iss`` + ``jti`` up in Django's cache
  (``REVOCATION_CACHE``; Redis in production, so every process sees it);
- :func:`simplejwt_blacklist` asks djangorestframework-simplejwt's token blacklist app.

:func:`revoke_token` adds a token to the cache denylist until it expires and, with
``LIVE_REVOCATION``, closes the sockets it opened in every process; :func:`disconnect_user`
closes every live socket of a user. Both have async twins (``arevoke_token``,
``adisconnect_user``). Tokens are identified by their claims, never by the token string: a
token can be re-encoded (padding, ECDSA malleability) and still verify.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import Any

from asgiref.sync import async_to_sync, sync_to_async
from channels.db import database_sync_to_async
from django.core.cache import caches

from channels_jwt.conf import Config
from channels_jwt.config import current_config
from channels_jwt.exceptions import TokenExpired
from channels_jwt.live import (
    REVOKE_MESSAGE,
    channel_layer,
    token_digest,
    token_group,
    user_group,
)
from channels_jwt.users import user_id_value
from channels_jwt.verify import TokenVerifier

KEY_PREFIX = "channels_jwt:revoked:"
#: Where ``disconnect_user`` notes when it ran, for the handshakes it may have crossed.
DISCONNECTED_PREFIX = "channels_jwt:disconnected:"
#: How long that note outlives the longest handshake (``AUTH_TIMEOUT_SECONDS``), in seconds.
DISCONNECTED_MARGIN_SECONDS = 60


def denylist_key(claims: Mapping[str, Any]) -> str:
    """The cache key of a token's denylist entry (a hash of its ``iss`` and ``jti``)."""
    return KEY_PREFIX + token_digest(claims)


async def cache_denylist(claims: Mapping[str, Any]) -> bool:
    """``REVOCATION_CHECK``: whether :func:`revoke_token` denylisted this token.

    The cache is read in a worker thread, off the event loop and off Channels' database
    thread. If the cache cannot be reached the exception propagates, and the middleware
    refuses the connection with 4503: it fails closed.
    """
    return await _is_denylisted(current_config(), claims)


async def _is_denylisted(config: Config, claims: Mapping[str, Any]) -> bool:
    cache = caches[config.REVOCATION_CACHE]
    value = await sync_to_async(cache.get, thread_sensitive=False)(denylist_key(claims))
    return value is not None


def bound_revocation_check(check: Any, config: Config) -> Any:
    """``check``, or :func:`cache_denylist` bound to ``config`` (no ambient lookup)."""
    if check is not cache_denylist:
        return check

    async def cache_denylist_of_config(claims: Mapping[str, Any]) -> bool:
        return await _is_denylisted(config, claims)

    return cache_denylist_of_config


async def simplejwt_blacklist(claims: Mapping[str, Any]) -> bool:
    """``REVOCATION_CHECK``: whether simplejwt's blacklist app lists this token's ``jti``.

    Needs ``rest_framework_simplejwt.token_blacklist`` in ``INSTALLED_APPS``. simplejwt
    blacklists the tokens it tracks as outstanding (refresh tokens); an access token is found
    only if you record and blacklist it too.
    """
    from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken

    def is_listed() -> bool:
        listed = BlacklistedToken._default_manager.filter(token__jti=claims["jti"])
        return bool(listed.exists())

    return await database_sync_to_async(is_listed)()  # type: ignore[no-any-return]


async def arevoke_token(claims_or_token: Mapping[str, Any] | str) -> None:
    """Revoke a token, given its verified claims or the token itself.

    Adds it to the cache denylist until its ``exp`` (plus ``LEEWAY``), so the next
    handshake with it is refused with 4441 when ``REVOCATION_CHECK`` is
    :func:`cache_denylist`; with ``LIVE_REVOCATION``, also closes the sockets it opened, in
    every process, with 4441. A token string is verified first (an expired one needs no
    revocation and is ignored; a bad one raises its ``AuthenticationFailed``). Uses the
    configuration of the connection in progress, or else the project's; raises
    ``ImproperlyConfigured`` when it has a system-check error.
    """
    config = current_config()
    if isinstance(claims_or_token, str):
        try:
            claims: Mapping[str, Any] = await TokenVerifier.of(config).averify(claims_or_token)
        except TokenExpired:
            return
    else:
        claims = claims_or_token
    if "jti" not in claims:
        raise ValueError("only tokens with a jti claim can be revoked")
    exp = claims.get("exp")
    timeout = None if exp is None else max(1, math.ceil(exp + config.LEEWAY - time.time()))
    cache = caches[config.REVOCATION_CACHE]
    await sync_to_async(cache.set, thread_sensitive=False)(denylist_key(claims), 1, timeout)
    if config.LIVE_REVOCATION:
        await channel_layer().group_send(token_group(claims), {"type": REVOKE_MESSAGE})


async def adisconnect_user(user: Any) -> None:
    """Close every live socket of ``user`` in every process (4441).

    ``user`` is a user (a model instance or a ``TokenUser``) or its ``USER_ID_FIELD`` value
    (the pk by default). Needs ``LIVE_REVOCATION``. It does not refuse the user's future
    handshakes: deactivate the user, or revoke their tokens, for that. Raises ``TypeError``
    for anything else, and ``ValueError`` for a value no user can have.
    """
    config = current_config()
    user_id = user_id_value(config, user)
    # Noted first, then sent: a handshake that joins the user's group too late for the message
    # finds the note once joined (revoked_while_joining).
    cache = caches[config.REVOCATION_CACHE]
    timeout = math.ceil(config.AUTH_TIMEOUT_SECONDS) + DISCONNECTED_MARGIN_SECONDS
    note = sync_to_async(cache.set, thread_sensitive=False)
    await note(_disconnected_key(user_id), time.time(), timeout)
    await channel_layer().group_send(user_group(user_id), {"type": REVOKE_MESSAGE})


def _disconnected_key(user_id: Any) -> str:
    return DISCONNECTED_PREFIX + user_group(user_id).rpartition(".")[2]


async def revoked_while_joining(
    config: Config, claims: Mapping[str, Any], user_id: Any, started: float
) -> bool:
    """Whether, since ``started``, the token was revoked or its user disconnected.

    Asked once a live connection has joined its groups and before it listens: a
    ``revoke_token`` or ``disconnect_user`` that ran between the handshake's own checks and
    the join sent its message to groups the connection was not in yet, but left its note in
    ``REVOCATION_CACHE`` (the denylist entry; the time of the disconnection). One read.
    """
    cache = caches[config.REVOCATION_CACHE]
    keys = [denylist_key(claims), _disconnected_key(user_id)]
    found = await sync_to_async(cache.get_many, thread_sensitive=False)(keys)
    disconnected = found.get(keys[1])
    # Wall clocks of two processes: their skew (NTP keeps it to milliseconds) is the window.
    return keys[0] in found or (isinstance(disconnected, int | float) and disconnected >= started)


def revoke_token(claims_or_token: Mapping[str, Any] | str) -> None:
    """Synchronous :func:`arevoke_token`, for views, management commands and tasks."""
    async_to_sync(arevoke_token)(claims_or_token)


def disconnect_user(user: Any) -> None:
    """Synchronous :func:`adisconnect_user`, for views, management commands and tasks."""
    async_to_sync(adisconnect_user)(user)
