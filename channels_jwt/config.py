"""``CHANNELS_JWT`` parsed once: a typed :class:`~channels_jwt.conf.Config` and its problems.

:func:`parse` applies every rule of one effective configuration (the project's, or a
middleware's with its overrides), each rule written once, and returns every problem as a
Django check message (``channels_jwt.E0xx``, ``W0xx``, ``I0xx``) together with the
:class:`~channels_jwt.conf.Config` the runtime works with, when there is no error. The system
checks only report these problems; the runtime refuses to authenticate anyone with a
configuration that has an error (:func:`config_of`). The result is kept per
:class:`~channels_jwt.conf.Settings` until Django sends ``setting_changed``.

:func:`current_config` is the one ambient lookup, for callers outside the middleware
(``revoke_token`` from a view, ``issue_token``, a built-in resolver called directly): the
configuration of the connection in progress, or else the project's.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any, NamedTuple

from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from django.conf import settings as django_settings
from django.core import checks
from django.core.exceptions import FieldDoesNotExist, ImproperlyConfigured
from django.db.models import Field

from channels_jwt.cachestores import shared_store, stores
from channels_jwt.conf import (
    DEFAULTS,
    MESSAGE_FORMATS,
    Config,
    Settings,
    active_settings,
    import_callable,
    seconds,
)
from channels_jwt.exceptions import REASONS, CloseCode
from channels_jwt.jwks import is_allowed_jwks_url
from channels_jwt.keys import (
    SUPPORTED_ALGORITHMS,
    KeyTooSmall,
    PrivateKeyGiven,
    UnusableKey,
    VerifyingKeys,
    hmac_secret,
    is_hmac,
    key_fits,
)
from channels_jwt.ratelimit import parse_rate
from channels_jwt.sources import SOURCES

if TYPE_CHECKING:
    from django.db.models import Model

MAX_LEEWAY_SECONDS = 60
MAX_JWKS_TIMEOUT = 30
MAX_AUTH_TIMEOUT = 60
MAX_TOKEN_BYTES_LIMIT = 65536
REJECT_MODES = ("close", "deny")
_SUBPROTOCOL_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
Message = checks.CheckMessage


def _error(number: int, msg: str, hint: str) -> Message:
    return checks.Error(msg, hint=hint, id=f"channels_jwt.E{number:03d}")


class Parsed(NamedTuple):
    """One configuration parsed: its problems, and the :class:`Config` if none is an error."""

    config: Config | None
    problems: tuple[Message, ...]


def parse(settings: Settings) -> Parsed:
    """Apply every rule to ``settings``; convert them when no problem is an error."""
    problems = tuple(_problems(settings))
    if serious(problems):
        return Parsed(None, problems)
    return Parsed(Config.from_settings(settings), problems)


def parsed(settings: Settings) -> Parsed:
    """:func:`parse` of ``settings``, once until ``setting_changed``."""
    return settings.derived("parsed", lambda: parse(settings))


def check_settings(settings: Settings) -> list[Message]:
    """Every problem of one effective configuration (what the system checks report)."""
    return list(parsed(settings).problems)


def config_of(settings: Settings) -> Config:
    """The configuration of ``settings``; ``ImproperlyConfigured`` when it has an error."""
    config, problems = parsed(settings)
    if config is None:
        error = serious(problems)[0]
        raise ImproperlyConfigured(f"{error.id}: {error.msg}")
    return config


def current_config() -> Config:
    """The configuration of the connection in progress, or else the project's.

    For callers outside the middleware only: everything inside a handshake is handed its
    configuration.
    """
    return config_of(active_settings())


def _problems(settings: Settings) -> list[Message]:
    configured = {**settings.configured(), **settings.overrides}
    raw = getattr(django_settings, "CHANNELS_JWT", {})
    if not isinstance(raw, Mapping):
        return [
            _error(
                1,
                "CHANNELS_JWT must be a dict.",
                "Set CHANNELS_JWT = {...} with the keys you need, or remove it.",
            )
        ]
    messages: list[Message] = []
    messages += _unknown_keys(configured)
    algorithms = _algorithms(settings.value("ALGORITHMS"), messages)
    if algorithms:
        messages += _keys(settings, algorithms)
    messages += _numbers(settings)
    messages += _value_types(settings)
    messages += _sources(settings)
    messages += _user_and_hooks(settings)
    messages += _rejection(settings)
    messages += _revocation(settings)
    messages += _rate_limit(settings)
    messages += _message(settings)
    messages += _keeping_nothing(settings)
    return messages


def _unknown_keys(configured: dict[str, Any]) -> list[Message]:
    messages: list[Message] = []
    for key in configured:
        if key not in DEFAULTS:
            close = difflib.get_close_matches(str(key), DEFAULTS, n=1)
            hint = f"Did you mean {close[0]!r}?" if close else "Remove it; it has no effect."
            messages.append(
                checks.Warning(
                    f"CHANNELS_JWT has unknown key {key!r}.", hint=hint, id="channels_jwt.W001"
                )
            )
    return messages


def _algorithms(value: Any, messages: list[Message]) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, list | tuple) or not value:
        messages.append(
            _error(
                2,
                "CHANNELS_JWT ALGORITHMS must be a non-empty list of algorithm names.",
                'For example ["HS256"]. A string is not accepted: PyJWT would treat it as a '
                "substring allowlist.",
            )
        )
        return ()
    names = tuple(value)
    if any(isinstance(name, str) and name.lower() == "none" for name in names):
        messages.append(
            _error(
                4,
                'CHANNELS_JWT ALGORITHMS contains "none".',
                "Unsigned tokens are never accepted; remove it.",
            )
        )
        return ()
    unknown = [
        name for name in names if not isinstance(name, str) or name not in SUPPORTED_ALGORITHMS
    ]
    if unknown:
        messages.append(
            _error(
                3,
                f"CHANNELS_JWT ALGORITHMS has unsupported algorithms {unknown!r}.",
                f"Use some of: {', '.join(sorted(SUPPORTED_ALGORITHMS))}.",
            )
        )
        return ()
    if len({is_hmac(name) for name in names}) > 1:
        messages.append(
            _error(
                5,
                "CHANNELS_JWT ALGORITHMS mixes HMAC and asymmetric algorithms.",
                "Allow one family only (RFC 8725 section 3.1): either HS* or RS*/PS*/ES*/EdDSA.",
            )
        )
        return ()
    return names


def _keys(settings: Settings, algorithms: tuple[str, ...]) -> list[Message]:
    jwk_url = settings.value("JWK_URL")
    if is_hmac(algorithms[0]):
        messages = _hmac_key(settings.value("SIGNING_KEY"), algorithms)
        if jwk_url:
            messages.append(
                _error(
                    31,
                    "CHANNELS_JWT JWK_URL is set but ALGORITHMS are HMAC algorithms.",
                    "Keys from a JWKS are public keys: allow the identity provider's algorithm "
                    '(e.g. ["RS256"]). Shared (oct) keys from a JWKS are never used.',
                )
            )
        return messages
    if jwk_url:
        return _jwks(settings, jwk_url) + _private_key(settings, algorithms, None)
    messages = _verifying_key(settings, algorithms)
    verifying_keys = None if messages else settings.verifying_keys()
    return messages + _private_key(settings, algorithms, verifying_keys)


def _jwks(settings: Settings, jwk_url: Any) -> list[Message]:
    messages: list[Message] = []
    if not is_allowed_jwks_url(jwk_url):
        messages.append(
            _error(
                29,
                "CHANNELS_JWT JWK_URL must be an https URL (http only to a loopback host).",
                "Keys fetched over plain http could be replaced by anyone on the path.",
            )
        )
    if settings.value("VERIFYING_KEY"):
        messages.append(
            checks.Warning(
                "CHANNELS_JWT VERIFYING_KEY is ignored because JWK_URL is set.",
                hint="Keys come from the JWKS only; remove VERIFYING_KEY (or JWK_URL).",
                id="channels_jwt.W004",
            )
        )
    return messages


def _hmac_key(key: Any, algorithms: tuple[str, ...]) -> list[Message]:
    if not key:
        return [
            _error(
                6,
                "CHANNELS_JWT has no SIGNING_KEY for its HMAC algorithms.",
                "Set SIGNING_KEY to a random secret of at least 32 bytes "
                "(secrets.token_urlsafe(64)), or configure simplejwt.",
            )
        ]
    secret = key.encode() if isinstance(key, str) else key
    messages: list[Message] = []
    try:
        hmac_secret(secret, algorithms)
    except UnusableKey as exc:
        messages.append(
            _error(
                7,
                f"CHANNELS_JWT {exc}.",
                "RFC 7518 section 3.2: an HMAC key must be at least as long as the hash output.",
            )
        )
    project_secret = getattr(django_settings, "SECRET_KEY", None) or ""
    if secret == project_secret.encode():
        messages.append(
            checks.Warning(
                "CHANNELS_JWT SIGNING_KEY is the project's SECRET_KEY.",
                hint="Use a separate random key for tokens, so one key does not serve two "
                "purposes (sessions, password resets) and can be rotated on its own.",
                id="channels_jwt.W002",
            )
        )
    return messages


def _verifying_key(settings: Settings, algorithms: tuple[str, ...]) -> list[Message]:
    if not settings.value("VERIFYING_KEY"):
        return [
            _error(
                8,
                "CHANNELS_JWT has no VERIFYING_KEY or JWK_URL for its asymmetric algorithms.",
                "Set VERIFYING_KEY to the issuer's PEM public key (or a list, or a "
                "{kid: pem} map), or JWK_URL to its JWKS endpoint.",
            )
        ]
    try:
        keys = settings.verifying_keys()
    except PrivateKeyGiven:
        return [
            _error(
                11,
                "CHANNELS_JWT VERIFYING_KEY is a private key.",
                "Verification needs only the public key; keep the private key out of the "
                "verifying configuration (use PRIVATE_KEY to sign with issue_token).",
            )
        ]
    except KeyTooSmall as exc:
        return [_rsa_too_small("VERIFYING_KEY", exc)]
    except UnusableKey as exc:
        return [
            _error(
                9,
                f"CHANNELS_JWT VERIFYING_KEY cannot be used: {exc}.",
                "Give PEM text (-----BEGIN PUBLIC KEY-----), a list of them, or a {kid: pem} map.",
            )
        ]
    unfit = [key for key in keys.all() if not any(key_fits(name, key) for name in algorithms)]
    if unfit:
        return [
            _error(
                12,
                "CHANNELS_JWT VERIFYING_KEY has a key that fits none of ALGORITHMS.",
                "RS*/PS* need RSA keys, ES256/384/512 EC keys on P-256/384/521, EdDSA "
                "Ed25519 or Ed448 keys.",
            )
        ]
    return []


def _rsa_too_small(name: str, exc: KeyTooSmall) -> Message:
    return _error(
        10,
        f"CHANNELS_JWT {name}: {exc}.",
        "RFC 7518 section 3.3: RSA keys must be 2048 bits or larger.",
    )


def _private_key(
    settings: Settings, algorithms: tuple[str, ...], verifying_keys: VerifyingKeys | None
) -> list[Message]:
    try:
        key = settings.private_key()
    except KeyTooSmall as exc:
        return [_rsa_too_small("PRIVATE_KEY", exc)]
    except UnusableKey as exc:
        return [
            _error(
                13,
                f"CHANNELS_JWT PRIVATE_KEY cannot be used: {exc}.",
                "Give an unencrypted PEM private key (-----BEGIN PRIVATE KEY-----).",
            )
        ]
    if key is None:
        return []
    if not key_fits(algorithms[0], key):
        return [
            _error(
                37,
                f"CHANNELS_JWT PRIVATE_KEY does not fit {algorithms[0]}.",
                "issue_token signs with the first algorithm of ALGORITHMS.",
            )
        ]
    if verifying_keys is not None and not any(
        _same_key(key.public_key(), candidate) for candidate in verifying_keys.all()
    ):
        return [
            checks.Warning(
                "CHANNELS_JWT PRIVATE_KEY does not match any VERIFYING_KEY.",
                hint="Tokens minted by issue_token would be refused; add the private key's "
                "public half to VERIFYING_KEY.",
                id="channels_jwt.W003",
            )
        ]
    return []


def _same_key(first: Any, second: Any) -> bool:
    encoding, public_format = Encoding.DER, PublicFormat.SubjectPublicKeyInfo
    return bool(
        first.public_bytes(encoding, public_format) == second.public_bytes(encoding, public_format)
    )


def _seconds(value: float | timedelta) -> float:
    return seconds(value)  # type: ignore[return-value]


def _is_seconds(value: Any) -> bool:
    if isinstance(value, timedelta):
        return value.total_seconds() >= 0
    return type(value) in (int, float) and value >= 0


def _numbers(settings: Settings) -> list[Message]:
    messages: list[Message] = []
    leeway = settings.value("LEEWAY")
    if not _is_seconds(leeway) or (_seconds(leeway) > MAX_LEEWAY_SECONDS):
        messages.append(
            _error(
                14,
                f"CHANNELS_JWT LEEWAY must be between 0 and {MAX_LEEWAY_SECONDS} seconds.",
                "Clock skew between servers is seconds, not minutes (RFC 7519 section 4.1.4); "
                "a large leeway extends every token's life.",
            )
        )
    size = settings.value("MAX_TOKEN_BYTES")
    if type(size) is not int or not 0 < size <= MAX_TOKEN_BYTES_LIMIT:
        messages.append(
            _error(
                20,
                f"CHANNELS_JWT MAX_TOKEN_BYTES must be an integer from 1 to "
                f"{MAX_TOKEN_BYTES_LIMIT}.",
                "The default, 8192, fits every realistic access token.",
            )
        )
    for name in ("MAX_TOKEN_LIFETIME", "USER_CACHE_SECONDS", "JWKS_CACHE_SECONDS"):
        value = settings.value(name)
        if value is not None and not _is_seconds(value):
            messages.append(
                _error(
                    22,
                    f"CHANNELS_JWT {name} must be a number of seconds or a timedelta.",
                    f"For example {name!r}: 300.",
                )
            )
    timeout = settings.value("JWKS_TIMEOUT_SECONDS")
    if not _is_seconds(timeout) or not 0 < _seconds(timeout) <= MAX_JWKS_TIMEOUT:
        messages.append(
            _error(
                30,
                f"CHANNELS_JWT JWKS_TIMEOUT_SECONDS must be more than 0 and at most "
                f"{MAX_JWKS_TIMEOUT} seconds.",
                "Handshakes that need a new key wait this long at most; a few seconds is plenty.",
            )
        )
    timeout = settings.value("AUTH_TIMEOUT_SECONDS")
    if not _is_seconds(timeout) or not 0 < _seconds(timeout) <= MAX_AUTH_TIMEOUT:
        messages.append(
            _error(
                34,
                f"CHANNELS_JWT AUTH_TIMEOUT_SECONDS must be more than 0 and at most "
                f"{MAX_AUTH_TIMEOUT} seconds.",
                "It bounds key fetching, the revocation check and the user lookup of one "
                "handshake; past it the client gets 4503 and can retry.",
            )
        )
    return messages


def _is_string_list(value: Any) -> bool:
    return isinstance(value, list | tuple) and all(isinstance(item, str) for item in value)


def _value_types(settings: Settings) -> list[Message]:
    messages: list[Message] = []
    for name in ("ALLOW_ANONYMOUS", "CLOSE_ON_EXPIRY", "LIVE_REVOCATION", "AUTHENTICATE_HTTP"):
        if not isinstance(settings.value(name), bool):
            messages.append(
                _error(
                    25,
                    f"CHANNELS_JWT {name} must be True or False.",
                    'A string such as "false" would be true; use the Python booleans.',
                )
            )
    for name in ("REQUIRED_CLAIMS", "TOKEN_TYPES"):
        if not _is_string_list(settings.value(name)):
            messages.append(
                _error(
                    26,
                    f"CHANNELS_JWT {name} must be a list of strings.",
                    f"For example {DEFAULTS[name]!r}; a bare string would be split into letters.",
                )
            )
    user_id_claim = settings.value("USER_ID_CLAIM")
    type_claim = settings.value("TOKEN_TYPE_CLAIM")
    if not (isinstance(user_id_claim, str) and user_id_claim) or not (
        type_claim is None or (isinstance(type_claim, str) and type_claim)
    ):
        messages.append(
            _error(
                27,
                "CHANNELS_JWT USER_ID_CLAIM must be a claim name, TOKEN_TYPE_CLAIM a claim "
                "name or None.",
                'For example "user_id" (simplejwt) or "sub" (identity providers).',
            )
        )
    for name in ("AUDIENCE", "ISSUER"):
        value = settings.value(name)
        if not (value is None or isinstance(value, str) or (_is_string_list(value) and value)):
            messages.append(
                _error(
                    28,
                    f"CHANNELS_JWT {name} must be a string, a non-empty list of strings, or None.",
                    'For example "https://auth.example.com/".',
                )
            )
    return messages


def _message(settings: Settings) -> list[Message]:
    """The ``"message"`` source's keys (checked whether or not it is listed: cheap, and a
    project that lists it later meets no surprise)."""
    messages: list[Message] = []
    fmt = settings.value("MESSAGE_FORMAT")
    if fmt not in MESSAGE_FORMATS and not callable(fmt) and not _importable_callable(fmt):
        messages.append(
            _error(
                38,
                f"CHANNELS_JWT MESSAGE_FORMAT {fmt!r} is not a format channels_jwt knows.",
                f"Use one of {', '.join(MESSAGE_FORMATS)}, or the dotted path of a callable "
                "taking the first message and returning (token, message to pass on or None).",
            )
        )
    timeout = settings.value("MESSAGE_TIMEOUT_SECONDS")
    if not _is_seconds(timeout) or not 0 < _seconds(timeout) <= MAX_AUTH_TIMEOUT:
        messages.append(
            _error(
                39,
                f"CHANNELS_JWT MESSAGE_TIMEOUT_SECONDS must be more than 0 and at most "
                f"{MAX_AUTH_TIMEOUT} seconds.",
                'How long the "message" source waits for the first frame before closing '
                "with 4408; a few seconds is plenty.",
            )
        )
    protocols = settings.value("MESSAGE_SUBPROTOCOLS")
    if not _is_string_list(protocols) or not all(protocols):
        messages.append(
            _error(
                40,
                "CHANNELS_JWT MESSAGE_SUBPROTOCOLS must be a list of subprotocol names.",
                f"For example {list(DEFAULTS['MESSAGE_SUBPROTOCOLS'])!r} (GraphQL clients).",
            )
        )
    return messages


def _importable_callable(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        return callable(import_callable(value))
    except ImportError:
        return False


def _sources(settings: Settings) -> list[Message]:
    messages: list[Message] = []
    sources = settings.value("TOKEN_SOURCES")
    if isinstance(sources, str) or not isinstance(sources, list | tuple) or not sources:
        sources = [sources]
    unknown = [source for source in sources if source not in SOURCES]
    if unknown:
        messages.append(
            _error(
                15,
                f"CHANNELS_JWT TOKEN_SOURCES has unknown sources {unknown!r}.",
                f"Use a list of: {', '.join(SOURCES)}.",
            )
        )
    if "cookie" in sources and not settings.value("COOKIE_NAME"):
        messages.append(
            _error(
                16,
                'CHANNELS_JWT TOKEN_SOURCES has "cookie" but COOKIE_NAME is not set.',
                "Set COOKIE_NAME to the name of the cookie that holds the access token.",
            )
        )
    # Said to projects that list "query" themselves: the default has it too (for clients that
    # can send nothing else), and a default project must check clean. The docs give the advice.
    chosen = "TOKEN_SOURCES" in settings.overrides or "TOKEN_SOURCES" in settings.configured()
    if chosen and "query" in sources:
        messages.append(
            checks.Info(
                'CHANNELS_JWT TOKEN_SOURCES has "query": tokens in query strings are accepted.',
                hint="Query strings reach access logs (uvicorn logs them at INFO). Prefer the "
                "subprotocol source, or attach channels_jwt.logs.RedactTokens to your "
                "server's loggers.",
                id="channels_jwt.I001",
            )
        )
    for name in ("SUBPROTOCOL", "QUERY_PARAM", "HEADER_SCHEME"):
        value = settings.value(name)
        valid = isinstance(value, str) and bool(_SUBPROTOCOL_TOKEN.fullmatch(value))
        if not valid:
            messages.append(
                _error(
                    24,
                    f"CHANNELS_JWT {name} must be a non-empty token (letters, digits, -._~ ...).",
                    "RFC 6455 and RFC 7230 token characters only: no spaces, commas or quotes.",
                )
            )
    return messages


def _user_and_hooks(settings: Settings) -> list[Message]:
    messages: list[Message] = []
    for name in ("USER_RESOLVER", "REVOCATION_CHECK"):
        try:
            value = import_callable(settings.value(name))
        except ImportError as exc:
            value, problem = None, f"cannot be imported ({exc})"
        else:
            problem = "" if value is None or callable(value) else "is not callable"
        if name == "USER_RESOLVER" and value is None and not problem:
            problem = "is not set"
        if problem:
            messages.append(
                _error(
                    17,
                    f"CHANNELS_JWT {name} {problem}.",
                    "Give a dotted path to, or the object of, a function (claims, scope) "
                    "returning a user (REVOCATION_CHECK: (claims) returning a bool); async def "
                    "is preferred, a plain def runs in Channels' database thread.",
                )
            )
    types = settings.value("TOKEN_TYPES")
    if settings.value("TOKEN_TYPE_CLAIM") is not None and not types:
        messages.append(
            _error(
                23,
                "CHANNELS_JWT TOKEN_TYPES is empty while TOKEN_TYPE_CLAIM is set.",
                'List the accepted types (["access"]) or set TOKEN_TYPE_CLAIM to None.',
            )
        )
    messages += _user_id_field(settings.value("USER_ID_FIELD"))
    return messages


def user_id_field(user_model: type[Model], field_name: Any) -> Field[Any, Any]:
    """The field ``USER_ID_FIELD`` names: a concrete field of the user model, not a relation.

    Raises ``ImproperlyConfigured`` otherwise. (The rules also require it unique.)
    """
    try:
        field = user_model._meta.get_field(field_name)
    except (FieldDoesNotExist, TypeError) as exc:
        raise ImproperlyConfigured(
            f"USER_ID_FIELD {field_name!r} is not a field of {user_model._meta.label}"
        ) from exc
    if not isinstance(field, Field) or field.is_relation:
        raise ImproperlyConfigured(f"USER_ID_FIELD {field_name!r} is a relation, not a field")
    return field


def _user_id_field(field_name: Any) -> list[Message]:
    from django.contrib.auth import get_user_model

    user_model = get_user_model()
    try:
        unique = user_id_field(user_model, field_name).unique
    except ImproperlyConfigured:
        unique = False
    if not unique:
        return [
            _error(
                21,
                f"CHANNELS_JWT USER_ID_FIELD {field_name!r} is not a unique, non-relation field "
                f"of {user_model._meta.label}.",
                'Name a unique field of the user model, e.g. "id" or "username".',
            )
        ]
    return []


def _rejection(settings: Settings) -> list[Message]:
    messages: list[Message] = []
    if settings.value("REJECT_MODE") not in REJECT_MODES:
        messages.append(
            _error(
                18,
                f"CHANNELS_JWT REJECT_MODE must be one of {REJECT_MODES}.",
                '"close" lets browsers see the close code; "deny" refuses the upgrade.',
            )
        )
    overrides = settings.value("CLOSE_CODES")
    reasons = REASONS
    bad = (
        ["CLOSE_CODES"]
        if not isinstance(overrides, dict)
        else [
            str(reason)
            for reason, code in overrides.items()
            if reason not in reasons or type(code) is not int or not 3000 <= code <= 4999
        ]
    )
    if bad:
        messages.append(
            _error(
                19,
                f"CHANNELS_JWT CLOSE_CODES has invalid entries {bad!r}.",
                f"Map reasons ({', '.join(sorted(reasons))}) to codes from 3000 to 4999 "
                f"(daphne refuses others). Defaults: {', '.join(str(c.value) for c in CloseCode)}.",
            )
        )
    return messages


def _revocation(settings: Settings) -> list[Message]:
    messages: list[Message] = []
    layers = getattr(django_settings, "CHANNEL_LAYERS", None)
    if settings.value("LIVE_REVOCATION") is True and not layers:
        messages.append(
            _error(
                32,
                "CHANNELS_JWT LIVE_REVOCATION needs a channel layer, but CHANNEL_LAYERS is empty.",
                "Configure channels_redis (or another layer every server process shares); "
                "the in-memory layer only reaches sockets of the same process.",
            )
        )
    elif settings.value("LIVE_REVOCATION") is True and _in_memory(layers):
        messages.append(
            checks.Warning(
                "CHANNELS_JWT LIVE_REVOCATION is on, but the channel layer is in memory: "
                "disconnect_user and revoke_token reach only the sockets of the process that "
                "calls them.",
                hint="A view, a management command or a worker is another process, and so is "
                "every other server process: use channels_redis (RedisChannelLayer).",
                id="channels_jwt.W005",
            )
        )
    elif settings.value("LIVE_REVOCATION") is True and _core_capacity(layers) < LAYER_CAPACITY:
        messages.append(
            checks.Warning(
                "CHANNELS_JWT LIVE_REVOCATION is on, with channels_redis' core layer at a "
                f"capacity of {_core_capacity(layers)}: messages beyond what one process's "
                "channels hold together are dropped without an error, so a burst of "
                "disconnect_user or revoke_token calls leaves sockets open.",
                hint=f"Set CHANNEL_LAYERS['default']['CONFIG']['capacity'] to at least "
                f"{LAYER_CAPACITY} (more than the matching sockets one process may hold in a "
                "burst), or use RedisPubSubChannelLayer, which has no capacity.",
                id="channels_jwt.W009",
            )
        )
    alias = settings.value("REVOCATION_CACHE")
    if not _is_cache_alias(alias):
        messages.append(
            _error(
                33,
                f"CHANNELS_JWT REVOCATION_CACHE {alias!r} is not an alias in CACHES.",
                "Name the cache every server process shares (Redis in production).",
            )
        )
    elif _uses_denylist(settings) and _is_local_memory(alias):
        messages.append(
            checks.Warning(
                f"CHANNELS_JWT REVOCATION_CACHE {alias!r} is a local-memory cache: revoke_token "
                "reaches only this process, and culling drops entries before they expire.",
                hint="Name a cache every server process shares that does not evict (Redis "
                "with maxmemory-policy noeviction, or a database cache with MAX_ENTRIES above "
                "the most entries it will ever hold).",
                id="channels_jwt.W006",
            )
        )
    return messages


def _uses_denylist(settings: Settings) -> bool:
    """Whether the denylist of ``revoke_token`` is read: ``cache_denylist``, or live revocation."""
    check = settings.value("REVOCATION_CHECK")
    named = check if isinstance(check, str) else _dotted_name(check)
    return named == "channels_jwt.revocation.cache_denylist" or (
        settings.value("LIVE_REVOCATION") is True
    )


def _dotted_name(value: Any) -> str:
    return f"{getattr(value, '__module__', '')}.{getattr(value, '__qualname__', '')}"


def _is_local_memory(alias: str) -> bool:
    backend = django_settings.CACHES[alias].get("BACKEND", "")
    return bool(backend == "django.core.cache.backends.locmem.LocMemCache")


def _keeping_nothing(settings: Settings) -> list[Message]:
    """The denylist, or the rate-limit counters, in a cache that keeps nothing (DummyCache)."""
    uses = (
        ("REVOCATION_CACHE", _uses_denylist(settings), "revoke_token revokes nothing"),
        ("RATE_LIMIT_CACHE", settings.value("RATE_LIMIT") is not None, "nothing is limited"),
    )
    return [
        checks.Warning(
            f"CHANNELS_JWT {name} {settings.value(name)!r} is a dummy cache: it keeps nothing, "
            f"so {effect}.",
            hint="Name a cache every server process shares (Redis in production).",
            id="channels_jwt.W008",
        )
        for name, used, effect in uses
        if used and _is_cache_alias(settings.value(name)) and not stores(settings.value(name))
    ]


def _in_memory(layers: Any) -> bool:
    default = layers.get("default") if isinstance(layers, Mapping) else None
    backend = default.get("BACKEND") if isinstance(default, Mapping) else None
    return backend == "channels.layers.InMemoryChannelLayer"


#: The least ``capacity`` of channels_redis' core layer that check W009 accepts.
LAYER_CAPACITY = 1000
_CORE_LAYER = "channels_redis.core.RedisChannelLayer"
_CORE_DEFAULT_CAPACITY = 100


def _core_capacity(layers: Any) -> float:
    """The ``capacity`` of the default layer if it is channels_redis' core one, else infinity."""
    default = layers.get("default") if isinstance(layers, Mapping) else None
    if not isinstance(default, Mapping) or default.get("BACKEND") != _CORE_LAYER:
        return math.inf
    config = default.get("CONFIG")
    capacity = config.get("capacity") if isinstance(config, Mapping) else None
    if capacity is None:
        return _CORE_DEFAULT_CAPACITY
    return capacity if isinstance(capacity, int | float) else math.inf


def _is_cache_alias(alias: Any) -> bool:
    return isinstance(alias, str) and alias in getattr(django_settings, "CACHES", {})


def _rate_limit(settings: Settings) -> list[Message]:
    rate = settings.value("RATE_LIMIT")
    if rate is None:
        return []
    messages: list[Message] = []
    if parse_rate(rate) is None:
        messages.append(
            _error(
                35,
                f"CHANNELS_JWT RATE_LIMIT {rate!r} is not a rate like '20/min'.",
                "Failed handshakes allowed per client address: a count, '/', and a period "
                "(s, sec, second, m, min, minute, h, hour, d, day); None turns limiting off.",
            )
        )
    alias = settings.value("RATE_LIMIT_CACHE")
    denylist = settings.value("REVOCATION_CACHE")
    shared = _is_cache_alias(alias) and _is_cache_alias(denylist)
    store = shared_store(alias, denylist) if shared and _uses_denylist(settings) else None
    if store is not None:
        where = (
            f"RATE_LIMIT_CACHE and REVOCATION_CACHE are both {alias!r} ({store})"
            if alias == denylist
            else f"RATE_LIMIT_CACHE {alias!r} and REVOCATION_CACHE {denylist!r} both write to "
            f"{store}"
        )
        messages.append(
            checks.Warning(
                f"CHANNELS_JWT {where}: the rate-limit counters share the denylist's memory "
                "and its eviction.",
                hint="Every failed handshake from a new address writes a counter; a flood of "
                "them makes the store evict denylist entries (an LRU, LFU, random or volatile-* "
                "policy, or culling), and revoked tokens work again, or fills one that never "
                "evicts, and then handshakes fail with 4503. Another database number or key "
                "prefix on the same server does not separate them: give the denylist a server "
                "of its own with maxmemory-policy noeviction.",
                id="channels_jwt.W007",
            )
        )
    if not _is_cache_alias(alias):
        messages.append(
            _error(
                36,
                f"CHANNELS_JWT RATE_LIMIT_CACHE {alias!r} is not an alias in CACHES.",
                "Name the cache every server process shares (Redis in production), or each "
                "process counts failures on its own.",
            )
        )
    return messages


def serious(messages: Iterable[Message]) -> list[Message]:
    """The messages that make a configuration unusable."""
    return [message for message in messages if message.is_serious()]
