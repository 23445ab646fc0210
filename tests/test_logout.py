"""simplejwt's logout reaches open sockets (``channels_jwt.logout``), in one process.

simplejwt's blacklist app is installed for each test (``blacklist_app``), and simplejwt's
``tokens`` and ``serializers`` modules are imported again with it installed (``simplejwt``):
simplejwt decides at import whether its refresh tokens record themselves as outstanding and
can be blacklisted. Tokens come from simplejwt itself (``RefreshToken.for_user``), sockets are
opened with their access tokens on the in-memory channel layer, and nothing connects the
receiver but ``ChannelsJWTConfig.ready()``.
"""

from __future__ import annotations

import importlib
import logging
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from types import ModuleType
from typing import Any

import jwt
import pytest
from channels.db import database_sync_to_async
from django.apps import apps
from django.conf import settings as django_settings
from django.core import serializers as django_serializers
from django.db import transaction
from django.db.models.signals import post_save
from django.utils import timezone
from rest_framework.test import APIRequestFactory
from rest_framework_simplejwt import settings as simplejwt_settings
from rest_framework_simplejwt.views import TokenRefreshView

from channels_jwt import JWTAuthMiddleware
from channels_jwt import logout as bridge
from channels_jwt.logout import TokenBlacklistView
from tests.harness import (
    CLOSE_REVOKED,
    LOGGER,
    TIMEOUT,
    Configure,
    RecordingApp,
    Sockets,
    claims_for,
    hs_token,
    warnings_of,
)
from tests.processes import free_port
from tests.test_revocation import blacklist_app  # noqa: F401  (shared: one registered model)

#: simplejwt's modules that decide at import whether the blacklist app is installed.
SIMPLEJWT_MODULES = ("rest_framework_simplejwt.tokens", "rest_framework_simplejwt.serializers")
#: Those modules imported once with the blacklist app installed (once per session).
_installed_modules: dict[str, ModuleType] = {}
#: How long a socket that must stay open is watched.
QUIET = 0.3


@dataclass
class SimpleJWT:
    """simplejwt with its blacklist app installed: tokens and the blacklist's models."""

    tokens: ModuleType
    models: ModuleType

    def session(self, user: Any) -> tuple[str, str]:
        """Log ``user`` in, as simplejwt's login view does: a refresh and an access token."""
        refresh = self.tokens.RefreshToken.for_user(user)
        return str(refresh), str(refresh.access_token)

    def logout(self, refresh: str) -> None:
        """Blacklist ``refresh`` through simplejwt, as its logout view does."""
        self.tokens.RefreshToken(refresh).blacklist()

    def blacklist_all(self, user: Any) -> None:
        """Blacklist every outstanding token of ``user``, as an administrator would."""
        for outstanding in self.models.OutstandingToken.objects.filter(user=user):
            self.models.BlacklistedToken.objects.get_or_create(token=outstanding)

    def is_blacklisted(self, refresh: str) -> bool:
        return bool(
            self.models.BlacklistedToken.objects.filter(token__jti=jti_of(refresh)).exists()
        )

    def expire(self, refresh: str) -> None:
        """Record ``refresh`` as expired a minute ago (as it would be a day after login)."""
        expired = timezone.now() - timedelta(minutes=1)
        self.models.OutstandingToken.objects.filter(jti=jti_of(refresh)).update(expires_at=expired)


def jti_of(token: str) -> str:
    """The ``jti`` of a token (simplejwt's tokens are HS256 JWTs; not verified here)."""
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return str(claims["jti"])


def _swap_modules(modules: dict[str, ModuleType | None]) -> None:
    """Put ``modules`` in ``sys.modules`` and on their package (``None``: remove them)."""
    for name, module in modules.items():
        package_name, _, attribute = name.rpartition(".")
        package = sys.modules[package_name]
        if module is None:
            sys.modules.pop(name, None)
            if hasattr(package, attribute):
                delattr(package, attribute)
        else:
            sys.modules[name] = module
            setattr(package, attribute, module)


@pytest.fixture
def simplejwt(
    blacklist_app: ModuleType,  # noqa: F811
    configure: Configure,
    settings: Any,
) -> Iterator[SimpleJWT]:
    """simplejwt issuing and blacklisting tokens, ``LIVE_REVOCATION`` on, its key verifying.

    simplejwt signs with ``SECRET_KEY`` (its default ``SIGNING_KEY``), so channels_jwt is
    configured with that key too (as a project on simplejwt's settings alone would be).
    """
    originals = {name: sys.modules.get(name) for name in SIMPLEJWT_MODULES}
    if not _installed_modules:
        for name in SIMPLEJWT_MODULES:
            sys.modules.pop(name, None)
            _installed_modules[name] = importlib.import_module(name)
    _swap_modules(dict(_installed_modules))
    configure(SIGNING_KEY=settings.SECRET_KEY, LIVE_REVOCATION=True)
    try:
        yield SimpleJWT(tokens=_installed_modules[SIMPLEJWT_MODULES[0]], models=blacklist_app)
    finally:
        _swap_modules(originals)


@pytest.fixture
def app() -> JWTAuthMiddleware:
    return JWTAuthMiddleware(RecordingApp())


@pytest.fixture
def other_user(django_user_model: Any, transactional_db: None) -> Any:
    return django_user_model.objects.create_user(username="carol", password="pw-carol")


def in_thread(function: Callable[..., Any]) -> Callable[..., Any]:
    """``function`` run in Channels' database thread, as a view or a task would run it."""
    return database_sync_to_async(function)


async def stays_open(*communicators: Any) -> bool:
    return all([await communicator.receive_nothing(QUIET) for communicator in communicators])


async def closed_revoked(*communicators: Any) -> bool:
    closes = [await communicator.receive_output(TIMEOUT) for communicator in communicators]
    return closes == [CLOSE_REVOKED] * len(communicators)


def unreachable_layer(settings: Any) -> None:
    """A real channels_redis layer on a loopback port nothing listens on."""
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [f"redis://127.0.0.1:{free_port()}/0"]},
        }
    }


# The receiver: a user's last session ending closes their sockets.


async def test_the_last_session_ending_closes_the_users_sockets_and_not_before(
    simplejwt: SimpleJWT, user: Any, other_user: Any, app: Any, sockets: Sockets
) -> None:
    (laptop_refresh, laptop_access), (phone_refresh, phone_access) = [
        await in_thread(simplejwt.session)(user) for _ in range(2)
    ]
    laptop = await sockets.open(app, laptop_access)
    phone = await sockets.open(app, phone_access)
    carols = await sockets.open(app, (await in_thread(simplejwt.session)(other_user))[1])

    await in_thread(simplejwt.logout)(laptop_refresh)
    assert await stays_open(laptop, phone)

    await in_thread(simplejwt.logout)(phone_refresh)
    assert await closed_revoked(laptop, phone)
    assert await stays_open(carols)


async def test_an_administrator_blacklisting_every_token_closes_the_users_sockets(
    simplejwt: SimpleJWT, user: Any, app: Any, sockets: Sockets
) -> None:
    accesses = [(await in_thread(simplejwt.session)(user))[1] for _ in range(3)]
    opened = [await sockets.open(app, access) for access in accesses]

    await in_thread(transaction.atomic()(simplejwt.blacklist_all))(user)

    assert await closed_revoked(*opened)


async def test_a_rolled_back_blacklisting_closes_nothing(
    simplejwt: SimpleJWT, user: Any, app: Any, sockets: Sockets
) -> None:
    refresh, access = await in_thread(simplejwt.session)(user)
    socket = await sockets.open(app, access)

    def log_out_then_fail() -> None:
        with transaction.atomic():
            simplejwt.logout(refresh)
            raise RuntimeError("the view failed after blacklisting")

    with pytest.raises(RuntimeError):
        await in_thread(log_out_then_fail)()
    assert await stays_open(socket)
    assert not await in_thread(simplejwt.is_blacklisted)(refresh)

    await in_thread(simplejwt.logout)(refresh)  # the same logout, committed this time
    assert await closed_revoked(socket)


async def test_the_sessions_left_are_counted_once_the_transaction_commits(
    simplejwt: SimpleJWT, user: Any, app: Any, sockets: Sockets
) -> None:
    # A transaction that ends the last session and starts another (a logout and a login, a
    # rotation under ATOMIC_REQUESTS) leaves the user a session: counted at the blacklisting,
    # there was none. Counted when committed, two last sessions ending at once in two
    # transactions also see each other's end.
    refresh, access = await in_thread(simplejwt.session)(user)
    socket = await sockets.open(app, access)

    def log_out_and_in() -> str:
        with transaction.atomic():
            simplejwt.logout(refresh)
            return simplejwt.session(user)[0]

    refresh = await in_thread(log_out_and_in)()
    assert await stays_open(socket)

    await in_thread(simplejwt.logout)(refresh)
    assert await closed_revoked(socket)


async def test_expired_tokens_are_no_sessions(
    simplejwt: SimpleJWT, user: Any, app: Any, sockets: Sockets
) -> None:
    # Two sessions that ended already (their refresh tokens expired, as a day after login).
    (cleaned_up, access), (forgotten, _) = [
        await in_thread(simplejwt.session)(user) for _ in range(2)
    ]
    socket = await sockets.open(app, access)
    await in_thread(simplejwt.expire)(cleaned_up)
    await in_thread(simplejwt.expire)(forgotten)

    # A clean-up blacklisting one of them ends no session, even with none left.
    await in_thread(simplejwt.logout)(cleaned_up)
    assert await stays_open(socket)

    # The last live session ending closes the sockets: the other expired one does not count.
    live, _ = await in_thread(simplejwt.session)(user)
    await in_thread(simplejwt.logout)(live)
    assert await closed_revoked(socket)


async def test_live_revocation_off_in_the_project_closes_nothing(
    simplejwt: SimpleJWT, configure: Configure, user: Any, sockets: Sockets
) -> None:
    # The bridge follows the project's LIVE_REVOCATION, not one middleware's.
    configure(LIVE_REVOCATION=False)
    app = JWTAuthMiddleware(RecordingApp(), settings={"LIVE_REVOCATION": True})
    refresh, access = await in_thread(simplejwt.session)(user)
    socket = await sockets.open(app, access)

    await in_thread(simplejwt.logout)(refresh)

    assert await stays_open(socket)
    assert await in_thread(simplejwt.is_blacklisted)(refresh)


async def test_loading_or_saving_blacklist_rows_again_closes_nothing(
    simplejwt: SimpleJWT, user: Any, app: Any, sockets: Sockets
) -> None:
    refresh, access = await in_thread(simplejwt.session)(user)
    socket = await sockets.open(app, access)
    models = simplejwt.models

    def dumped_blacklisting() -> str:
        """The JSON ``dumpdata`` would write for a blacklisting of ``refresh`` (rolled back)."""
        with transaction.atomic():
            outstanding = models.OutstandingToken.objects.get(jti=jti_of(refresh))
            dumped = django_serializers.serialize(
                "json", [models.BlacklistedToken.objects.create(token=outstanding)]
            )
            transaction.set_rollback(True)
        return dumped

    def load(dumped: str) -> None:
        for loaded in django_serializers.deserialize("json", dumped):
            loaded.save()  # as loaddata does: a raw save

    def save_again() -> None:
        models.BlacklistedToken.objects.get(token__jti=jti_of(refresh)).save()

    def unblacklist() -> None:
        models.BlacklistedToken.objects.filter(token__jti=jti_of(refresh)).delete()

    await in_thread(load)(await in_thread(dumped_blacklisting)())
    await in_thread(save_again)()
    assert await stays_open(socket)

    await in_thread(unblacklist)()
    await in_thread(simplejwt.logout)(refresh)
    assert await closed_revoked(socket)


async def test_a_token_of_a_deleted_user_closes_nothing(
    simplejwt: SimpleJWT, user: Any, app: Any, sockets: Sockets, caplog: pytest.LogCaptureFixture
) -> None:
    refresh, access = await in_thread(simplejwt.session)(user)
    socket = await sockets.open(app, access)  # stateless users: the socket outlives the row
    await user.adelete()  # simplejwt keeps the outstanding token, without its user

    await in_thread(simplejwt.logout)(refresh)

    assert await stays_open(socket)
    assert warnings_of(caplog) == []


async def test_a_failing_channel_layer_logs_a_warning_and_the_logout_stands(
    simplejwt: SimpleJWT, user: Any, settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    refresh, access = await in_thread(simplejwt.session)(user)
    unreachable_layer(settings)

    await in_thread(simplejwt.logout)(refresh)  # raises nothing

    assert await in_thread(simplejwt.is_blacklisted)(refresh)
    assert warnings_of(caplog) == [
        f"The logout of user {user.pk} closed no socket (ConnectionError): "
        "they close when their tokens expire"
    ]
    assert_quiet_about(caplog, refresh, access)


async def test_an_error_in_channels_jwt_settings_logs_a_warning_and_the_logout_stands(
    simplejwt: SimpleJWT, configure: Configure, user: Any, caplog: pytest.LogCaptureFixture
) -> None:
    refresh, access = await in_thread(simplejwt.session)(user)
    configure(ALGORITHMS=["none"])

    await in_thread(simplejwt.logout)(refresh)

    assert await in_thread(simplejwt.is_blacklisted)(refresh)
    assert warnings_of(caplog) == [
        "A logout closed no socket: CHANNELS_JWT has an error (ImproperlyConfigured)"
    ]
    assert_quiet_about(caplog, refresh, access)


def assert_quiet_about(caplog: pytest.LogCaptureFixture, *tokens: str) -> None:
    """No token, and no traceback, in what was logged."""
    assert all(token not in caplog.text for token in tokens)
    assert all(record.exc_info is None for record in caplog.records)


async def test_a_refresh_that_blacklists_the_old_refresh_token_closes_nothing(
    simplejwt: SimpleJWT,
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
    user: Any,
    app: Any,
    sockets: Sockets,
) -> None:
    # With rotation and BLACKLIST_AFTER_ROTATION, a refresh blacklists the old refresh token
    # before it records the new one: for that instant the user has no session left.
    settings.SIMPLE_JWT = {"ROTATE_REFRESH_TOKENS": True, "BLACKLIST_AFTER_ROTATION": True}
    serializers = sys.modules["rest_framework_simplejwt.serializers"]
    # simplejwt's serializers bound its settings at import; a process started so would use these.
    monkeypatch.setattr(serializers, "api_settings", simplejwt_settings.api_settings)
    refresh, access = await in_thread(simplejwt.session)(user)
    socket = await sockets.open(app, access)

    refreshed = await in_thread(post)(TokenRefreshView, {"refresh": refresh})

    assert refreshed.status_code == 200
    assert await in_thread(simplejwt.is_blacklisted)(refresh)
    assert await stays_open(socket)
    # The logout view's blacklisting is a logout, rotation or not: the last session ended.
    logged_out = await in_thread(post)(TokenBlacklistView, {"refresh": refreshed.data["refresh"]})
    assert logged_out.status_code == 200
    assert await closed_revoked(socket)


async def test_the_receiver_is_connected_once_by_the_app_config(simplejwt: SimpleJWT) -> None:
    model = simplejwt.models.BlacklistedToken
    connected_before = len(post_save.receivers)

    apps.get_app_config("channels_jwt").ready()
    bridge.connect(apps)

    assert len(post_save.receivers) == connected_before
    assert [key for key, *_ in post_save.receivers if key[0] == bridge.DISPATCH_UID] == [
        (bridge.DISPATCH_UID, id(model))
    ]


# The logout view: this device's access token too.


def post(view: type[Any], data: dict[str, Any], **headers: str) -> Any:
    """POST ``data`` as JSON to ``view`` (a DRF view class), as a client would."""
    request = APIRequestFactory().post("/api/token/", data, format="json", **headers)
    return view.as_view()(request)


@pytest.mark.parametrize("scheme", ["Bearer", "bearer"])
async def test_the_logout_view_closes_the_sockets_of_the_access_token_it_presents(
    scheme: str, simplejwt: SimpleJWT, user: Any, app: Any, sockets: Sockets
) -> None:
    (laptop_refresh, laptop_access), (_, phone_access) = [
        await in_thread(simplejwt.session)(user) for _ in range(2)
    ]
    laptops = [await sockets.open(app, laptop_access) for _ in range(2)]
    phone = await sockets.open(app, phone_access)

    response = await in_thread(post)(
        TokenBlacklistView,
        {"refresh": laptop_refresh},
        HTTP_AUTHORIZATION=f"{scheme} {laptop_access}",
    )

    assert response.status_code == 200
    assert await closed_revoked(*laptops)
    assert await stays_open(phone)
    assert await in_thread(simplejwt.is_blacklisted)(laptop_refresh)


async def test_the_logout_view_without_a_header_only_blacklists(
    simplejwt: SimpleJWT, user: Any, app: Any, sockets: Sockets
) -> None:
    (laptop_refresh, laptop_access), (phone_refresh, phone_access) = [
        await in_thread(simplejwt.session)(user) for _ in range(2)
    ]
    laptop = await sockets.open(app, laptop_access)
    phone = await sockets.open(app, phone_access)

    response = await in_thread(post)(TokenBlacklistView, {"refresh": laptop_refresh})
    assert response.status_code == 200
    assert await in_thread(simplejwt.is_blacklisted)(laptop_refresh)
    assert await stays_open(laptop, phone)

    response = await in_thread(post)(TokenBlacklistView, {"refresh": phone_refresh})
    assert response.status_code == 200
    assert await closed_revoked(laptop, phone)  # the last session ended


BAD_HEADERS: dict[str, Callable[[str, str], str]] = {
    "another scheme": lambda access, refresh: f"Basic {access}",
    "a scheme simplejwt does not accept": lambda access, refresh: f"JWT {access}",
    "three parts": lambda access, refresh: f"Bearer {access} {access}",
    "no token": lambda access, refresh: "Bearer",
    "not a token": lambda access, refresh: "Bearer not.a.token",
    "a refresh token": lambda access, refresh: f"Bearer {refresh}",
    "an expired token": lambda access, refresh: f"Bearer {expired_twin(access)}",
}


def expired_twin(access: str) -> str:
    """``access`` expired a minute ago (same jti, same key: only ``exp`` keeps it out)."""
    claims = jwt.decode(access, options={"verify_signature": False})
    claims["exp"] = int(timezone.now().timestamp()) - 60
    return hs_token(claims, key=django_settings.SECRET_KEY)


@pytest.mark.parametrize("header", list(BAD_HEADERS.values()), ids=list(BAD_HEADERS))
async def test_the_logout_view_with_a_bad_header_blacklists_and_answers_200(
    header: Callable[[str, str], str],
    simplejwt: SimpleJWT,
    user: Any,
    app: Any,
    sockets: Sockets,
    caplog: pytest.LogCaptureFixture,
) -> None:
    (laptop_refresh, laptop_access), (phone_refresh, _) = [
        await in_thread(simplejwt.session)(user) for _ in range(2)
    ]
    laptop = await sockets.open(app, laptop_access)

    response = await in_thread(post)(
        TokenBlacklistView,
        {"refresh": phone_refresh},
        HTTP_AUTHORIZATION=header(laptop_access, laptop_refresh),
    )

    assert response.status_code == 200
    assert await in_thread(simplejwt.is_blacklisted)(phone_refresh)
    assert await stays_open(laptop)
    assert warnings_of(caplog) == []


async def test_a_refused_logout_revokes_nothing(
    simplejwt: SimpleJWT, user: Any, app: Any, sockets: Sockets
) -> None:
    _, access = await in_thread(simplejwt.session)(user)
    socket = await sockets.open(app, access)

    response = await in_thread(post)(
        TokenBlacklistView, {"refresh": "not.a.token"}, HTTP_AUTHORIZATION=f"Bearer {access}"
    )

    assert response.status_code == 401
    assert await stays_open(socket)


async def test_the_logout_view_with_a_failing_channel_layer_logs_a_warning_and_answers_200(
    simplejwt: SimpleJWT, user: Any, settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    (laptop_refresh, laptop_access), _ = [
        await in_thread(simplejwt.session)(user) for _ in range(2)
    ]
    unreachable_layer(settings)

    response = await in_thread(post)(
        TokenBlacklistView,
        {"refresh": laptop_refresh},
        HTTP_AUTHORIZATION=f"Bearer {laptop_access}",
    )

    assert response.status_code == 200
    assert await in_thread(simplejwt.is_blacklisted)(laptop_refresh)
    assert warnings_of(caplog) == [
        "A logout closed no socket of its access token: revoke_token failed (ConnectionError)"
    ]
    assert_quiet_about(caplog, laptop_refresh, laptop_access)


async def test_the_logout_view_ignores_a_token_without_jti_when_nothing_needs_one(
    simplejwt: SimpleJWT,
    configure: Configure,
    user: Any,
    settings: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Without LIVE_REVOCATION or a REVOCATION_CHECK a token needs no jti; nothing can revoke it.
    configure(LIVE_REVOCATION=False)
    refresh, _ = await in_thread(simplejwt.session)(user)
    no_jti = hs_token(claims_for(user.pk, jti=...), key=settings.SECRET_KEY)

    response = await in_thread(post)(
        TokenBlacklistView, {"refresh": refresh}, HTTP_AUTHORIZATION=f"Bearer {no_jti}"
    )

    assert response.status_code == 200
    assert await in_thread(simplejwt.is_blacklisted)(refresh)
    assert warnings_of(caplog) == []
