"""Settings: the raw ``CHANNELS_JWT`` values, and the typed :class:`Config` made from them.

The default for each key is written once, in :data:`DEFAULTS`; keys marked in
:data:`SIMPLEJWT_KEYS` fall back to djangorestframework-simplejwt's effective settings when
that package is installed, so a simplejwt project needs no ``CHANNELS_JWT`` at all. Explicit
keys always win. What is parsed from settings is cached per :class:`Settings` and dropped
whenever Django sends ``setting_changed``, which is what makes ``override_settings`` work in
tests.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from datetime import timedelta
from importlib import import_module
from types import MappingProxyType
from typing import Any, TypeVar

from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.utils.module_loading import import_string

from channels_jwt.keys import (
    PrivateKey,
    UnusableKey,
    VerifyingKeys,
    is_hmac,
    load_private_key,
)

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
    "MESSAGE_FORMAT": "json",
    "MESSAGE_TIMEOUT_SECONDS": 5,
    "MESSAGE_SUBPROTOCOLS": ("graphql-transport-ws", "graphql-ws"),
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
    "AUTHENTICATE_HTTP": False,
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


def simplejwt_revoke_claim() -> str | None:
    """simplejwt's ``REVOKE_TOKEN_CLAIM`` when its ``CHECK_REVOKE_TOKEN`` is on, else ``None``.

    simplejwt then puts a hash of the user's password hash in every token it mints, and
    refuses a token whose hash no longer matches (the password has changed since).
    """
    api = _simplejwt_settings()
    if api is None or not getattr(api, "CHECK_REVOKE_TOKEN", False):
        return None
    claim = getattr(api, "REVOKE_TOKEN_CLAIM", None)
    return claim if isinstance(claim, str) and claim else None


class Settings:
    """The raw values of ``CHANNELS_JWT``, optionally with per-instance ``overrides``.

    Nothing here is validated or converted: :func:`channels_jwt.config.parse` turns these
    values into a :class:`Config` and a list of problems, once per generation of settings.
    """

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
        return self.derived(
            "verifying_keys", lambda: VerifyingKeys.parse(self.value("VERIFYING_KEY"))
        )

    def private_key(self) -> PrivateKey | None:
        """``PRIVATE_KEY`` parsed, once until ``setting_changed`` (or ``UnusableKey``)."""
        return self.derived("private_key", lambda: _private_key(self.value("PRIVATE_KEY")))


def _private_key(value: Any) -> PrivateKey | None:
    return None if value is None else load_private_key(value)


def _names(value: Any) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else tuple(value)


def import_callable(value: Any) -> Callable[..., Any] | None:
    """A dotted path imported (``ImportError`` if it cannot be), anything else as given."""
    if isinstance(value, str):
        return import_string(value)  # type: ignore[no-any-return]
    return value  # type: ignore[no-any-return]


#: The ``MESSAGE_FORMAT`` names channels_jwt reads itself (anything else is a dotted path).
MESSAGE_FORMATS = ("json", "graphql-ws")


def message_format(value: Any) -> str | Callable[..., Any]:
    """A built-in ``MESSAGE_FORMAT`` name as given; a dotted path imported; a callable as is."""
    if value in MESSAGE_FORMATS:
        return str(value)
    return import_callable(value)  # type: ignore[return-value]


@dataclass(frozen=True, slots=True, eq=False)
class Config:
    """One effective ``CHANNELS_JWT``, converted to the types the runtime works with.

    Built by :func:`channels_jwt.config.parse` from settings without errors, and handed to
    the parts of the runtime explicitly. Field names are the setting keys. Objects built
    from a configuration (the verifier, the user cache) are kept with it (:meth:`derived`);
    after ``setting_changed`` a new configuration is parsed, so they are never stale.
    """

    ALGORITHMS: tuple[str, ...]
    # Secrets are left out of repr(): error trackers record the locals of failing frames.
    SIGNING_KEY: str | bytes | None = field(repr=False)
    VERIFYING_KEY: Any
    PRIVATE_KEY: Any = field(repr=False)
    JWK_URL: str | None
    JWKS_CACHE_SECONDS: float
    JWKS_TIMEOUT_SECONDS: float
    AUDIENCE: str | list[str] | None
    ISSUER: str | list[str] | None
    LEEWAY: float
    REQUIRED_CLAIMS: tuple[str, ...]
    MAX_TOKEN_LIFETIME: float | None
    USER_ID_CLAIM: str
    USER_ID_FIELD: str
    TOKEN_TYPE_CLAIM: str | None
    TOKEN_TYPES: tuple[str, ...]
    TOKEN_SOURCES: tuple[str, ...]
    SUBPROTOCOL: str
    QUERY_PARAM: str
    HEADER_SCHEME: str
    COOKIE_NAME: str | None
    #: ``"json"``, ``"graphql-ws"``, or the callable a dotted path named.
    MESSAGE_FORMAT: str | Callable[..., Any]
    MESSAGE_TIMEOUT_SECONDS: float
    MESSAGE_SUBPROTOCOLS: tuple[str, ...]
    MAX_TOKEN_BYTES: int
    ALLOW_ANONYMOUS: bool
    USER_RESOLVER: Callable[..., Any]
    USER_CACHE_SECONDS: float
    AUTH_TIMEOUT_SECONDS: float
    REVOCATION_CHECK: Callable[..., Any] | None
    REVOCATION_CACHE: str
    CLOSE_ON_EXPIRY: bool
    LIVE_REVOCATION: bool
    REJECT_MODE: str
    CLOSE_CODES: Mapping[str, int]
    RATE_LIMIT: str | None
    RATE_LIMIT_CACHE: str
    AUTHENTICATE_HTTP: bool
    #: simplejwt's ``REVOKE_TOKEN_CLAIM`` when its ``CHECK_REVOKE_TOKEN`` is on (not a key of
    #: ``CHANNELS_JWT``): ``database_user`` then refuses tokens minted before a password change.
    revoke_token_claim: str | None
    #: ``VERIFYING_KEY`` parsed (``None`` when the algorithms are HMAC or keys come from a JWKS).
    verifying_keys: VerifyingKeys | None
    #: ``PRIVATE_KEY`` parsed (``None`` when not set), for ``issue_token``.
    private_key: PrivateKey | None = field(repr=False)
    _derived: dict[str, Any] = field(default_factory=dict, init=False, repr=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> Config:
        """Convert the values of ``settings``; callers validate them first.

        Raises ``ImportError`` for a dotted path that cannot be imported and
        ``ImproperlyConfigured`` for a key that cannot be parsed.
        """
        value = settings.value
        algorithms = _names(value("ALGORITHMS"))
        static_keys = not is_hmac(algorithms[0]) and not value("JWK_URL")
        try:
            verifying_keys = settings.verifying_keys() if static_keys else None
            private_key = settings.private_key()
        except UnusableKey as exc:
            raise ImproperlyConfigured(f"CHANNELS_JWT key unusable: {exc}") from exc
        return cls(
            ALGORITHMS=algorithms,
            SIGNING_KEY=value("SIGNING_KEY"),
            VERIFYING_KEY=value("VERIFYING_KEY"),
            PRIVATE_KEY=value("PRIVATE_KEY"),
            JWK_URL=value("JWK_URL") or None,
            JWKS_CACHE_SECONDS=seconds(value("JWKS_CACHE_SECONDS")) or 0,
            JWKS_TIMEOUT_SECONDS=seconds(value("JWKS_TIMEOUT_SECONDS")) or 0,
            AUDIENCE=value("AUDIENCE"),
            ISSUER=value("ISSUER"),
            LEEWAY=seconds(value("LEEWAY")) or 0,
            REQUIRED_CLAIMS=tuple(value("REQUIRED_CLAIMS")),
            MAX_TOKEN_LIFETIME=seconds(value("MAX_TOKEN_LIFETIME")),
            USER_ID_CLAIM=value("USER_ID_CLAIM"),
            USER_ID_FIELD=value("USER_ID_FIELD"),
            TOKEN_TYPE_CLAIM=value("TOKEN_TYPE_CLAIM"),
            TOKEN_TYPES=_names(value("TOKEN_TYPES")),
            TOKEN_SOURCES=_names(value("TOKEN_SOURCES")),
            SUBPROTOCOL=value("SUBPROTOCOL"),
            QUERY_PARAM=value("QUERY_PARAM"),
            HEADER_SCHEME=value("HEADER_SCHEME"),
            COOKIE_NAME=value("COOKIE_NAME"),
            MESSAGE_FORMAT=message_format(value("MESSAGE_FORMAT")),
            MESSAGE_TIMEOUT_SECONDS=seconds(value("MESSAGE_TIMEOUT_SECONDS")) or 0,
            MESSAGE_SUBPROTOCOLS=tuple(value("MESSAGE_SUBPROTOCOLS")),
            MAX_TOKEN_BYTES=value("MAX_TOKEN_BYTES"),
            ALLOW_ANONYMOUS=bool(value("ALLOW_ANONYMOUS")),
            USER_RESOLVER=import_callable(value("USER_RESOLVER")),  # type: ignore[arg-type]
            USER_CACHE_SECONDS=seconds(value("USER_CACHE_SECONDS")) or 0,
            AUTH_TIMEOUT_SECONDS=seconds(value("AUTH_TIMEOUT_SECONDS")) or 0,
            REVOCATION_CHECK=import_callable(value("REVOCATION_CHECK")),
            REVOCATION_CACHE=value("REVOCATION_CACHE"),
            CLOSE_ON_EXPIRY=bool(value("CLOSE_ON_EXPIRY")),
            LIVE_REVOCATION=bool(value("LIVE_REVOCATION")),
            REJECT_MODE=value("REJECT_MODE"),
            CLOSE_CODES=MappingProxyType(dict(value("CLOSE_CODES"))),
            RATE_LIMIT=value("RATE_LIMIT"),
            RATE_LIMIT_CACHE=value("RATE_LIMIT_CACHE"),
            AUTHENTICATE_HTTP=bool(value("AUTHENTICATE_HTTP")),
            revoke_token_claim=simplejwt_revoke_claim(),
            verifying_keys=verifying_keys,
            private_key=private_key,
        )

    def derived(self, name: str, build: Callable[[], T]) -> T:
        """The object ``build`` makes from this configuration, built once."""
        if name not in self._derived:
            self._derived[name] = build()
        result: T = self._derived[name]
        return result


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
