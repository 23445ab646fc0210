"""Settings: the ``CHANNELS_JWT`` dict, read on every access.

One typed property per key. The default for each key is written once, in :data:`DEFAULTS`;
keys marked in :data:`SIMPLEJWT_KEYS` fall back to djangorestframework-simplejwt's effective
settings when that package is installed, so a simplejwt project needs no ``CHANNELS_JWT`` at
all. Explicit keys always win. Objects derived from settings (parsed keys, the verifier) are
cached per :class:`Settings` and dropped whenever Django sends ``setting_changed``, which is
what makes ``override_settings`` work in tests.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from contextvars import ContextVar, Token
from datetime import timedelta
from importlib import import_module
from typing import Any, TypeVar

from django.conf import settings as django_settings
from django.core.signals import setting_changed
from django.utils.module_loading import import_string

from channels_jwt.keys import VerifyingKeys, is_hmac

T = TypeVar("T")

DEFAULTS: dict[str, Any] = {
    "ALGORITHMS": ("HS256",),
    "SIGNING_KEY": None,
    "VERIFYING_KEY": None,
    "PRIVATE_KEY": None,
    "JWK_URL": None,
    "JWKS_CACHE_SECONDS": 300,
    "JWKS_TIMEOUT_SECONDS": 5,
    "AUDIENCE": None,
    "ISSUER": None,
    "LEEWAY": 0,
    "REQUIRED_CLAIMS": ("exp", "iat"),
    "MAX_TOKEN_LIFETIME": None,
    "USER_ID_CLAIM": "user_id",
    "USER_ID_FIELD": "id",
    "TOKEN_TYPE_CLAIM": "token_type",
    "TOKEN_TYPES": ("access",),
    "TOKEN_SOURCES": ("subprotocol", "query"),
    "SUBPROTOCOL": "access_token",
    "QUERY_PARAM": "token",
    "HEADER_SCHEME": "Bearer",
    "COOKIE_NAME": None,
    "MAX_TOKEN_BYTES": 8192,
    "ALLOW_ANONYMOUS": False,
    "USER_RESOLVER": "channels_jwt.users.database_user",
    "USER_CACHE_SECONDS": 0,
    "AUTH_TIMEOUT_SECONDS": 10,
    "REVOCATION_CHECK": None,
    "REVOCATION_CACHE": "default",
    "CLOSE_ON_EXPIRY": True,
    "LIVE_REVOCATION": False,
    "REJECT_MODE": "close",
    "CLOSE_CODES": {},
    "RATE_LIMIT": None,
    "RATE_LIMIT_CACHE": "default",
}

#: Keys whose default comes from simplejwt when it is installed.
SIMPLEJWT_KEYS = frozenset(
    {
        "ALGORITHMS",
        "SIGNING_KEY",
        "VERIFYING_KEY",
        "PRIVATE_KEY",
        "JWK_URL",
        "AUDIENCE",
        "ISSUER",
        "LEEWAY",
        "USER_ID_CLAIM",
        "USER_ID_FIELD",
        "TOKEN_TYPE_CLAIM",
        "TOKEN_TYPES",
    }
)

_UNSET: Any = object()
_generation = 0


def _on_setting_changed(**kwargs: Any) -> None:
    global _generation
    _generation += 1


setting_changed.connect(_on_setting_changed, dispatch_uid="channels_jwt.conf")


def seconds(value: float | timedelta | None) -> float | None:
    """Accept seconds or a ``timedelta``; ``None`` stays ``None``."""
    if isinstance(value, timedelta):
        return value.total_seconds()
    return value


_SIMPLEJWT_SETTINGS = "rest_framework_simplejwt.settings"


def _simplejwt_settings() -> Any:
    # sys.modules first: the import machinery is slow even for a loaded module. simplejwt
    # rebinds ``api_settings`` on ``setting_changed``, so the attribute is read every time.
    module = sys.modules.get(_SIMPLEJWT_SETTINGS)
    if module is None:
        try:
            module = import_module(_SIMPLEJWT_SETTINGS)
        except ImportError:
            return None
    return module.api_settings


def simplejwt_default(name: str) -> Any:
    """The default simplejwt implies for ``name``, or ``_UNSET`` when it implies none."""
    api = _simplejwt_settings() if name in SIMPLEJWT_KEYS else None
    if api is None:
        return _UNSET
    hmac = is_hmac(api.ALGORITHM)
    if name == "ALGORITHMS":
        return (api.ALGORITHM,)
    if name == "SIGNING_KEY":
        return api.SIGNING_KEY if hmac else None
    if name == "PRIVATE_KEY":
        return None if hmac else api.SIGNING_KEY
    if name == "VERIFYING_KEY":
        return api.VERIFYING_KEY or None
    if name == "LEEWAY":
        return seconds(api.LEEWAY)
    if name == "TOKEN_TYPES":
        return tuple(token_class.token_type for token_class in api.AUTH_TOKEN_CLASSES)
    return getattr(api, name)


class Settings:
    """Typed access to ``CHANNELS_JWT``, optionally with per-instance ``overrides``."""

    def __init__(self, overrides: Mapping[str, Any] | None = None) -> None:
        self.overrides: dict[str, Any] = dict(overrides or {})
        self._derived: dict[str, Any] = {}
        self._derived_generation = -1

    def value(self, name: str) -> Any:
        """The effective value of one key: override, then ``CHANNELS_JWT``, then defaults."""
        if name in self.overrides:
            return self.overrides[name]
        configured = self.configured()
        if name in configured:
            return configured[name]
        implied = simplejwt_default(name)
        return DEFAULTS[name] if implied is _UNSET else implied

    def configured(self) -> Mapping[str, Any]:
        """The project's ``CHANNELS_JWT`` dict (empty when absent or not a mapping)."""
        configured = getattr(django_settings, "CHANNELS_JWT", None)
        return configured if isinstance(configured, Mapping) else {}

    def derived(self, name: str, build: Callable[[], T]) -> T:
        """Return a cached object built from settings; rebuilt after ``setting_changed``."""
        if self._derived_generation != _generation:
            self._derived.clear()
            self._derived_generation = _generation
        if name not in self._derived:
            self._derived[name] = build()
        result: T = self._derived[name]
        return result

    def verifying_keys(self) -> VerifyingKeys:
        """``VERIFYING_KEY`` parsed, once until ``setting_changed`` (or ``UnusableKey``)."""
        return self.derived("verifying_keys", lambda: VerifyingKeys.parse(self.VERIFYING_KEY))

    @property
    def ALGORITHMS(self) -> tuple[str, ...]:
        value = self.value("ALGORITHMS")
        return (value,) if isinstance(value, str) else tuple(value)

    @property
    def SIGNING_KEY(self) -> str | bytes | None:
        return self.value("SIGNING_KEY")  # type: ignore[no-any-return]

    @property
    def VERIFYING_KEY(self) -> Any:
        return self.value("VERIFYING_KEY")

    @property
    def PRIVATE_KEY(self) -> Any:
        return self.value("PRIVATE_KEY")

    @property
    def JWK_URL(self) -> str | None:
        return self.value("JWK_URL") or None

    @property
    def JWKS_CACHE_SECONDS(self) -> float:
        return seconds(self.value("JWKS_CACHE_SECONDS")) or 0

    @property
    def JWKS_TIMEOUT_SECONDS(self) -> float:
        return seconds(self.value("JWKS_TIMEOUT_SECONDS")) or 0

    @property
    def AUDIENCE(self) -> str | list[str] | None:
        return self.value("AUDIENCE")  # type: ignore[no-any-return]

    @property
    def ISSUER(self) -> str | list[str] | None:
        return self.value("ISSUER")  # type: ignore[no-any-return]

    @property
    def LEEWAY(self) -> float:
        return seconds(self.value("LEEWAY")) or 0

    @property
    def REQUIRED_CLAIMS(self) -> tuple[str, ...]:
        return tuple(self.value("REQUIRED_CLAIMS"))

    @property
    def MAX_TOKEN_LIFETIME(self) -> float | None:
        return seconds(self.value("MAX_TOKEN_LIFETIME"))

    @property
    def USER_ID_CLAIM(self) -> str:
        return self.value("USER_ID_CLAIM")  # type: ignore[no-any-return]

    @property
    def USER_ID_FIELD(self) -> str:
        return self.value("USER_ID_FIELD")  # type: ignore[no-any-return]

    @property
    def TOKEN_TYPE_CLAIM(self) -> str | None:
        return self.value("TOKEN_TYPE_CLAIM")  # type: ignore[no-any-return]

    @property
    def TOKEN_TYPES(self) -> tuple[str, ...]:
        value = self.value("TOKEN_TYPES")
        return (value,) if isinstance(value, str) else tuple(value)

    @property
    def TOKEN_SOURCES(self) -> tuple[str, ...]:
        value = self.value("TOKEN_SOURCES")
        return (value,) if isinstance(value, str) else tuple(value)

    @property
    def SUBPROTOCOL(self) -> str:
        return self.value("SUBPROTOCOL")  # type: ignore[no-any-return]

    @property
    def QUERY_PARAM(self) -> str:
        return self.value("QUERY_PARAM")  # type: ignore[no-any-return]

    @property
    def HEADER_SCHEME(self) -> str:
        return self.value("HEADER_SCHEME")  # type: ignore[no-any-return]

    @property
    def COOKIE_NAME(self) -> str | None:
        return self.value("COOKIE_NAME")  # type: ignore[no-any-return]

    @property
    def MAX_TOKEN_BYTES(self) -> int:
        return self.value("MAX_TOKEN_BYTES")  # type: ignore[no-any-return]

    @property
    def ALLOW_ANONYMOUS(self) -> bool:
        return bool(self.value("ALLOW_ANONYMOUS"))

    @property
    def USER_RESOLVER(self) -> Callable[..., Any]:
        return _callable(self.value("USER_RESOLVER"))  # type: ignore[return-value]

    @property
    def USER_CACHE_SECONDS(self) -> float:
        return seconds(self.value("USER_CACHE_SECONDS")) or 0

    @property
    def AUTH_TIMEOUT_SECONDS(self) -> float:
        return seconds(self.value("AUTH_TIMEOUT_SECONDS")) or 0

    @property
    def REVOCATION_CHECK(self) -> Callable[..., Any] | None:
        return _callable(self.value("REVOCATION_CHECK"))

    @property
    def REVOCATION_CACHE(self) -> str:
        return self.value("REVOCATION_CACHE")  # type: ignore[no-any-return]

    @property
    def CLOSE_ON_EXPIRY(self) -> bool:
        return bool(self.value("CLOSE_ON_EXPIRY"))

    @property
    def LIVE_REVOCATION(self) -> bool:
        return bool(self.value("LIVE_REVOCATION"))

    @property
    def REJECT_MODE(self) -> str:
        return self.value("REJECT_MODE")  # type: ignore[no-any-return]

    @property
    def CLOSE_CODES(self) -> Mapping[str, int]:
        return self.value("CLOSE_CODES")  # type: ignore[no-any-return]

    @property
    def RATE_LIMIT(self) -> str | None:
        return self.value("RATE_LIMIT")  # type: ignore[no-any-return]

    @property
    def RATE_LIMIT_CACHE(self) -> str:
        return self.value("RATE_LIMIT_CACHE")  # type: ignore[no-any-return]


def _callable(value: Any) -> Callable[..., Any] | None:
    if isinstance(value, str):
        return import_string(value)  # type: ignore[no-any-return]
    return value  # type: ignore[no-any-return]


#: The project-wide settings object.
settings = Settings()

_active: ContextVar[Settings] = ContextVar("channels_jwt_settings")


def active_settings() -> Settings:
    """The settings of the middleware handling the current connection.

    Built-in resolvers read their keys from here, so a middleware constructed with
    ``settings={...}`` overrides reaches them without changing the resolver signature.
    Outside a connection this is the project-wide :data:`settings`.
    """
    return _active.get(settings)


def activate(instance: Settings) -> Token[Settings] | None:
    """Make ``instance`` the active settings of the current task; undo with :func:`deactivate`.

    Returns ``None`` when there is nothing to do (the project-wide settings, with no other
    settings active): setting a context variable costs every connection a context copy.
    """
    if instance is settings and _active.get(None) is None:
        return None
    return _active.set(instance)


def deactivate(token: Token[Settings] | None) -> None:
    """Restore the settings that were active before :func:`activate` returned ``token``."""
    if token is not None:
        _active.reset(token)
