"""The bridge from simplejwt's logout to open sockets.

djangorestframework-simplejwt ends a session by blacklisting its refresh token (its
``TokenBlacklistView``, an administrator, a "log out everywhere" view). The sockets the
session opened are not affected: they stay open until their access tokens expire. With
``LIVE_REVOCATION``, this module closes them, with 4441, in every server process:

- :func:`on_blacklisted`, a ``post_save`` receiver of simplejwt's ``BlacklistedToken``: when a
  blacklisting ends a user's last session (no outstanding token of theirs is left that is
  unexpired and not blacklisted), every live socket of the user closes once the transaction
  commits. Ending one session among several closes nothing. ``ChannelsJWTConfig.ready()``
  connects it when ``rest_framework_simplejwt.token_blacklist`` is installed: no
  configuration.
- :class:`TokenBlacklistView`, simplejwt's logout view that also revokes the access token the
  request presents (``Authorization: Bearer <access token>``), closing the sockets it opened:
  one device's logout closes that device's sockets.

Importing this module imports simplejwt: nothing in the package does unless simplejwt's
blacklist app is installed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import partial
from typing import Any

from django.apps.registry import Apps
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.db.models.signals import post_save
from django.utils import timezone
from rest_framework_simplejwt import settings as simplejwt_settings
from rest_framework_simplejwt import views as simplejwt_views

from channels_jwt.config import current_config
from channels_jwt.exceptions import AuthenticationFailed
from channels_jwt.revocation import disconnect_user, revoke_token
from channels_jwt.users import user_id_value

logger = logging.getLogger("channels_jwt")

#: simplejwt's blacklist app, whose ``BlacklistedToken`` rows end sessions.
BLACKLIST_APP = "rest_framework_simplejwt.token_blacklist"
#: The ``dispatch_uid`` :func:`on_blacklisted` is connected with.
DISPATCH_UID = "channels_jwt.logout.on_blacklisted"

#: Set while :class:`TokenBlacklistView` blacklists: that blacklisting is a logout, whatever
#: simplejwt's rotation settings are.
_logging_out: ContextVar[bool] = ContextVar("channels_jwt_logging_out", default=False)


def connect(registry: Apps) -> None:
    """Connect :func:`on_blacklisted` to the ``post_save`` of simplejwt's ``BlacklistedToken``.

    Called by ``ChannelsJWTConfig.ready()`` when the blacklist app is installed in
    ``registry``; connecting again changes nothing. The model is named lazily, so the receiver
    is connected as soon as the model is registered.
    """
    label = next(app.label for app in registry.get_app_configs() if app.name == BLACKLIST_APP)
    post_save.connect(
        on_blacklisted,
        sender=f"{label}.BlacklistedToken",
        weak=False,
        dispatch_uid=DISPATCH_UID,
        apps=registry,
    )


def on_blacklisted(
    sender: Any, instance: Any, created: bool, raw: bool = False, using: str = "default", **_: Any
) -> None:
    """``post_save`` of ``BlacklistedToken``: close the user's sockets if their last session ended.

    Acts on a new row (not on fixtures being loaded) when the project's ``LIVE_REVOCATION`` is
    on and the blacklisted token had not expired yet. Once the transaction commits (at once
    outside one), if its user is left with no outstanding token that is unexpired and not
    blacklisted, :func:`disconnect_user` closes every live socket of that user in every
    process with 4441. A rolled-back transaction closes nothing.

    Stands aside when simplejwt blacklists on refresh (``ROTATE_REFRESH_TOKENS`` and
    ``BLACKLIST_AFTER_ROTATION``): a refresh blacklists the old refresh token before it records
    the new one, so a user with one session would look logged out at every refresh. Only
    :class:`TokenBlacklistView` counts as a logout then.

    Never fails the blacklisting: when closing fails (the channel layer or the cache is down),
    or ``CHANNELS_JWT`` has an error, it logs a WARNING on ``channels_jwt`` (the exception's
    type and the user id, never a token) and the sockets close when their tokens expire.
    """
    if not created or raw:
        return
    if _refresh_blacklists() and not _logging_out.get():
        return
    try:
        config = current_config()
    except ImproperlyConfigured as exc:
        logger.warning("A logout closed no socket: CHANNELS_JWT has an error (%s)", _name(exc))
        return
    if not config.LIVE_REVOCATION:
        return
    outstanding = instance.token
    if outstanding.user_id is None or outstanding.expires_at <= timezone.now():
        return
    # Judged once committed, not now: two last sessions ending at once in two transactions
    # would each still see the other's (uncommitted) session as live. Every row of the user
    # blacklisted in one transaction judges again, and may disconnect again (harmless).
    sessions = _live_sessions(sender, outstanding, using)
    user_id = user_id_value(config, outstanding.user)
    transaction.on_commit(partial(_close_if_none_left, sessions, user_id), using=using)


def _refresh_blacklists() -> bool:
    """Whether simplejwt blacklists the refresh token a refresh rotates out."""
    api = simplejwt_settings.api_settings
    return bool(api.ROTATE_REFRESH_TOKENS and api.BLACKLIST_AFTER_ROTATION)


def _live_sessions(blacklisted_model: Any, outstanding: Any, using: str) -> Any:
    """The (lazy) query of the tokens of ``outstanding``'s user that end no session yet."""
    blacklisted = blacklisted_model._meta.get_field("token").related_query_name()
    tokens = type(outstanding)._default_manager.using(using)
    return tokens.filter(user_id=outstanding.user_id, **{f"{blacklisted}__isnull": True})


def _close_if_none_left(sessions: Any, user_id: Any) -> None:
    """After the commit: if ``sessions`` has no unexpired token, close the user's sockets."""
    try:
        if not sessions.filter(expires_at__gt=timezone.now()).exists():
            disconnect_user(user_id)
    except Exception as exc:
        logger.warning(
            "The logout of user %s closed no socket (%s): they close when their tokens expire",
            user_id,
            _name(exc),
        )


def _name(exc: BaseException) -> str:
    return type(exc).__name__


@contextmanager
def _logout() -> Iterator[None]:
    marker = _logging_out.set(True)
    try:
        yield
    finally:
        _logging_out.reset(marker)


class TokenBlacklistView(simplejwt_views.TokenBlacklistView):
    """simplejwt's logout view (``POST {"refresh": ...}``) that also closes this device's sockets.

    After simplejwt has blacklisted the refresh token, the access token of the request's
    ``Authorization`` header (simplejwt's ``AUTH_HEADER_NAME`` and ``AUTH_HEADER_TYPES``,
    ``Bearer`` by default: what the client sends to the rest of the API) is revoked with
    :func:`revoke_token`, once the transaction commits: denylisted until it expires, and with
    ``LIVE_REVOCATION`` the sockets it opened close with 4441 in every process. Without that
    header, or with a token that does not verify or has expired, the logout is simplejwt's
    alone; the answer is the same. If revoking fails (the cache or the channel layer is down),
    a WARNING is logged and the logout still succeeds.

    The blacklisting itself counts as a logout for :func:`on_blacklisted`, even when
    simplejwt also blacklists on refresh.
    """

    def post(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        """Blacklist the refresh token (simplejwt), then revoke the request's access token."""
        with _logout():
            response = super().post(request, *args, **kwargs)
        token = _presented_token(request)
        if token is not None:
            transaction.on_commit(partial(_revoke, token))
        return response


def _presented_token(request: Any) -> str | None:
    """The token of the ``Authorization`` header in a scheme simplejwt accepts, if any."""
    api = simplejwt_settings.api_settings
    header = request.META.get(api.AUTH_HEADER_NAME)
    if not isinstance(header, str):
        return None
    schemes = api.AUTH_HEADER_TYPES
    accepted = {schemes.lower()} if isinstance(schemes, str) else {s.lower() for s in schemes}
    parts = header.split()
    if len(parts) != 2 or parts[0].lower() not in accepted:
        return None
    return parts[1]


def _revoke(token: str) -> None:
    try:
        revoke_token(token)
    except (AuthenticationFailed, ValueError):
        # Not a valid token of this site, or one without a jti: no socket it opened is guarded
        # by a revocation check or a live group (either makes the jti required).
        return
    except Exception as exc:
        logger.warning(
            "A logout closed no socket of its access token: revoke_token failed (%s)", _name(exc)
        )
