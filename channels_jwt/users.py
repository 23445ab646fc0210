"""Turn verified claims into a user, asynchronously.

Two built-in resolvers, selected with ``USER_RESOLVER``:

- :func:`database_user` loads the user with one database round trip (off the event loop) and
  requires ``is_active``. A user that does not exist and an inactive user get the same answer.
- :func:`token_user` builds a :class:`TokenUser` from the claims alone, without the database.

Both first canonicalise the user id claim against the type of ``USER_ID_FIELD``: ``True``,
``1.9``, ``" 1 "`` or a full-width digit one never become user 1.

Lookups that arrive while one is in flight share the next hop to the database thread and one
query (``channels_jwt.coalesce``); :func:`batched` gives a resolver of your own the same.
"""

from __future__ import annotations

import copy
import re
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model
from django.core.exceptions import EmptyResultSet, ValidationError
from django.db import connections
from django.db.models import Field, QuerySet
from django.db.models.manager import BaseManager

from channels_jwt.coalesce import LoopCoalescers
from channels_jwt.conf import Config
from channels_jwt.config import current_config, user_id_field
from channels_jwt.exceptions import TokenInvalid, TokenRevoked, UserRejected
from channels_jwt.types import Claims, Scope, read_only

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser
    from django.db.backends.base.base import BaseDatabaseWrapper
    from django.db.models import Manager, Model

INTEGER_FIELDS = frozenset(
    {
        "AutoField",
        "BigAutoField",
        "SmallAutoField",
        "IntegerField",
        "BigIntegerField",
        "SmallIntegerField",
        "PositiveIntegerField",
        "PositiveBigIntegerField",
        "PositiveSmallIntegerField",
    }
)
TEXT_FIELDS = frozenset({"CharField", "EmailField", "SlugField", "TextField"})
_CANONICAL_INT = re.compile(r"0|-?[1-9][0-9]{0,18}")
_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I)
_INT64 = 2**63
USER_CACHE_MAX_ENTRIES = 10_000
#: Ids per ``IN (...)`` query: under every backend's parameter limit (SQLite's is 999 before 3.32).
LOOKUP_CHUNK = 500


def canonical_user_id(value: Any, field: Field[Any, Any]) -> Any:
    """Return ``value`` converted to ``field``'s Python type, accepting only canonical forms.

    Integer fields take a JSON integer or its canonical decimal string (simplejwt stores
    ``str(pk)``); UUID fields take the canonical hyphenated form; text fields take a
    non-empty string without NUL or lone surrogates that fits ``max_length``. Anything else
    raises :class:`TokenInvalid` before the database is asked.
    """
    kind = field.get_internal_type()
    if kind in INTEGER_FIELDS:
        if type(value) is int:
            number = value
        elif isinstance(value, str) and _CANONICAL_INT.fullmatch(value):
            number = int(value)
        else:
            raise TokenInvalid("user id is not a canonical integer")
        if not -_INT64 <= number < _INT64:
            raise TokenInvalid("user id out of range")
        return number
    if kind == "UUIDField":
        if isinstance(value, str) and _CANONICAL_UUID.fullmatch(value):
            return uuid.UUID(value)
        raise TokenInvalid("user id is not a canonical UUID")
    if kind in TEXT_FIELDS:
        if not isinstance(value, str) or not value or not _storable_text(value):
            raise TokenInvalid("user id is not a usable string")
        if field.max_length is not None and len(value) > field.max_length:
            raise TokenInvalid("user id longer than the field allows")
        return value
    if type(value) not in (int, str):
        raise TokenInvalid("user id is neither a string nor an integer")
    try:
        return field.to_python(value)
    except (ValidationError, TypeError, ValueError) as exc:
        raise TokenInvalid("user id does not fit USER_ID_FIELD") from exc


def _storable_text(value: str) -> bool:
    if "\x00" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@dataclass(frozen=True)
class _UserIdentity:
    """Where a user's id is in the claims and in the user model (once per configuration)."""

    user_model: type[Model]
    claim: str
    field_name: str
    field: Field[Any, Any]


def _identity(config: Config) -> _UserIdentity:
    return config.derived("user_identity", lambda: _resolve_identity(config))


def _resolve_identity(config: Config) -> _UserIdentity:
    user_model = get_user_model()
    field_name = config.USER_ID_FIELD
    field = user_id_field(user_model, field_name)
    return _UserIdentity(user_model, config.USER_ID_CLAIM, field_name, field)


def _user_id(config: Config, claims: Mapping[str, Any]) -> tuple[type[Model], str, Any]:
    identity = _identity(config)
    user_id = canonical_user_id(claims.get(identity.claim), identity.field)
    return identity.user_model, identity.field_name, user_id


class UserCache:
    """A small per-process cache of resolved users (``USER_CACHE_SECONDS``)."""

    def __init__(self, seconds: float, max_entries: int = USER_CACHE_MAX_ENTRIES) -> None:
        self.seconds = seconds
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple[str, str, Any], tuple[float, Any]] = OrderedDict()

    def get(self, key: tuple[str, str, Any]) -> Any | None:
        """A copy of the cached user for ``key``, or ``None`` if absent or stale."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires_at, user = entry
        if expires_at <= time.monotonic():
            del self._entries[key]
            return None
        return copy.copy(user)

    def put(self, key: tuple[str, str, Any], user: Any) -> None:
        """Remember ``user`` for ``seconds``, evicting the oldest entry when full."""
        self._entries[key] = (time.monotonic() + self.seconds, user)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)


async def database_user(claims: Mapping[str, Any], scope: Mapping[str, Any]) -> AbstractBaseUser:
    """Load the active user named by the claims (one query, run off the event loop).

    Raises :class:`UserRejected` when no such user exists, when the id field is not unique
    for it, or when the user is inactive: the same answer for each. Called directly, it uses
    the configuration of the connection in progress (or the project's); the middleware calls
    a copy bound to its own (``bound_resolver``).
    """
    return await _database_user(current_config(), claims)


async def _database_user(config: Config, claims: Mapping[str, Any]) -> AbstractBaseUser:
    user_model, field_name, user_id = _user_id(config, claims)
    cache = config.derived("user_cache", lambda: UserCache(config.USER_CACHE_SECONDS))
    key = (user_model._meta.label_lower, field_name, user_id)
    user = cache.get(key) if cache.seconds > 0 else None
    if user is None:
        user = await _lookups(config).get(user_id)
        if user is None or not getattr(user, "is_active", True):
            raise UserRejected("user not found or inactive")
        if cache.seconds > 0:
            cache.put(key, user)
    if config.revoke_token_claim is not None:
        _require_current_password(config.revoke_token_claim, claims, user)
    return user  # type: ignore[no-any-return]


def _require_current_password(claim: str, claims: Mapping[str, Any], user: Any) -> None:
    """simplejwt's ``CHECK_REVOKE_TOKEN``: the token's password hash must still be the user's."""
    from rest_framework_simplejwt.utils import get_md5_hash_password

    if claims.get(claim) != get_md5_hash_password(getattr(user, "password", None) or ""):
        raise TokenRevoked("password changed since the token was issued")


def _lookups(config: Config) -> LoopCoalescers[Any, Any]:
    """The configuration's user lookups: concurrent ones share a hop and a query."""
    return config.derived("user_lookups", lambda: _coalesced_lookups(_identity(config)))


def _coalesced_lookups(identity: _UserIdentity) -> LoopCoalescers[Any, Any]:
    fetch = database_sync_to_async(_fetch_users_sync)

    async def load(user_ids: list[Any]) -> dict[Any, Any]:
        # One hop to channels' database thread (which also recycles stale connections).
        found: dict[Any, Any] = await fetch(identity.user_model, identity.field_name, user_ids)
        return found

    return LoopCoalescers(load)


def _fetch_users_sync(
    user_model: type[Model], field_name: str, user_ids: list[Any]
) -> dict[Any, Any]:
    """``{user_id: user}`` for each id that names exactly one user (others are left out).

    One id: the query a lone handshake always made. Several: ``field IN (...)`` in chunks, each
    user matched back by its exact value (a case-insensitive collation's near match is not it).
    """
    manager = user_model._default_manager
    if len(user_ids) == 1:
        found = _one_user(manager, field_name, user_ids[0])
        return {user_ids[0]: found[0]} if len(found) == 1 else {}
    matches: dict[Any, list[Any]] = {}
    for start in range(0, len(user_ids), LOOKUP_CHUNK):
        chunk = user_ids[start : start + LOOKUP_CHUNK]
        for user in manager.filter(**{f"{field_name}__in": chunk}):
            matches.setdefault(getattr(user, field_name), []).append(user)
    return {user_id: users[0] for user_id, users in matches.items() if len(users) == 1}


#: ``(model, field name, database alias) -> SQL`` of the one-user query, or ``None`` when the
#: manager's query cannot be reused (see :func:`_one_user`). Written in the database thread.
_ONE_USER_SQL: dict[tuple[type[Model], str, str], str | None] = {}


def _one_user(manager: Manager[Any], field_name: str, user_id: Any) -> list[Any]:
    """Up to two users whose ``field_name`` is ``user_id``: the query a lone handshake makes.

    Django builds and compiles a QuerySet anew for every evaluation, which costs more than
    running it. The SQL is the same each time but for the id, so it is compiled once per
    model, field and database and run with ``raw()`` (Django's connection, cursor, converters
    and ``from_db`` all the same). Only for a manager whose query is the plain one with that
    single parameter: a manager with its own ``get_queryset`` or QuerySet class, or filters
    of its own, always goes through the ORM, which may build a different query each time.
    """
    alias = manager.db
    key = (manager.model, field_name, alias)
    if key not in _ONE_USER_SQL:
        try:
            _ONE_USER_SQL[key] = _reusable_sql(manager, field_name, user_id)
        except EmptyResultSet:  # an id no row can hold; the next lookup compiles
            return []
    sql = _ONE_USER_SQL[key]
    if sql is None:
        return list(manager.filter(**{field_name: user_id})[:2])
    field = manager.model._meta.get_field(field_name)
    connection = connections[alias]
    if isinstance(user_id, int) and not _fits_column(field, user_id, connection):
        return []  # as the ORM's exact lookup: no query, rather than the database's error
    value = field.get_db_prep_value(user_id, connection, prepared=False)
    return list(manager.raw(sql, [value]))


def _fits_column(field: Any, value: int, connection: BaseDatabaseWrapper) -> bool:
    """Whether the integer ``value`` fits ``field``'s column on ``connection``."""
    low, high = connection.ops.integer_field_range(field.get_internal_type())
    return (low is None or value >= low) and (high is None or value <= high)


def _reusable_sql(manager: Manager[Any], field_name: str, user_id: Any) -> str | None:
    plain = (
        type(manager).get_queryset is BaseManager.get_queryset
        and manager._queryset_class is QuerySet  # type: ignore[attr-defined]
    )
    if not plain:
        return None
    query = manager.filter(**{field_name: user_id})[:2].query
    sql, params = query.sql_with_params()
    return sql if len(params) == 1 else None


def batched(
    load_users: Callable[[list[Any]], Mapping[Any, Any]],
) -> Callable[[Claims, Scope], Awaitable[Any]]:
    """A ``USER_RESOLVER`` whose lookups are batched as :func:`database_user`'s are.

    ``load_users(user_ids)`` gets the canonical user ids (``USER_ID_CLAIM`` converted to the
    type of ``USER_ID_FIELD``) of every handshake waiting, in Channels' database thread, one
    call per batch, and returns ``{user_id: user}``. A handshake whose id is missing from the
    result, or whose user is inactive, is refused with 4403 (``UserRejected``); an exception
    refuses every handshake of the batch with 4503, each as if it had been alone.
    """
    fetch = database_sync_to_async(load_users)

    async def load(user_ids: list[Any]) -> Mapping[Any, Any]:
        found: Mapping[Any, Any] = await fetch(user_ids)
        return found

    lookups: LoopCoalescers[Any, Any] = LoopCoalescers(load)

    async def batched_user(claims: Claims, scope: Scope) -> Any:
        user = await lookups.get(user_id_of(current_config(), claims))
        if user is None or not getattr(user, "is_active", True):
            raise UserRejected("user not found or inactive")
        return user

    return batched_user


async def token_user(claims: Mapping[str, Any], scope: Mapping[str, Any]) -> TokenUser:
    """Build a :class:`TokenUser` from the claims, without touching the database."""
    return _token_user(current_config(), claims)


def _token_user(config: Config, claims: Mapping[str, Any]) -> TokenUser:
    _, _, user_id = _user_id(config, claims)
    return TokenUser(user_id, claims)


def user_id_of(config: Config, claims: Mapping[str, Any]) -> Any:
    """The canonical user id the claims name (``TokenInvalid`` if they name none)."""
    return _user_id(config, claims)[2]


def user_id_value(config: Config, user: Any) -> Any:
    """The canonical ``USER_ID_FIELD`` value of ``user``: a user object, or that value itself.

    Raises ``TypeError`` for anything else (a user's ``str()`` is its username, which would
    name nobody, or another user) and ``ValueError`` for a value no user can have.
    """
    identity = _identity(config)
    if isinstance(user, TokenUser):
        return user.pk
    if isinstance(user, identity.user_model):
        value = getattr(user, identity.field_name)
    elif isinstance(user, int | str | uuid.UUID) and not isinstance(user, bool):
        value = user
    else:
        raise TypeError(f"expected a user or its {identity.field_name}, not {type(user).__name__}")
    try:
        return canonical_user_id(value, identity.field)
    except TokenInvalid as exc:
        raise ValueError(f"{value!r} is not a {identity.field_name} a user can have") from exc


def bound_resolver(resolver: Any, config: Config) -> Any:
    """``resolver``, or the built-in it names bound to ``config`` (no ambient lookup)."""
    if resolver is database_user:

        async def database_user_of_config(claims: Claims, scope: Scope) -> AbstractBaseUser:
            return await _database_user(config, claims)

        return database_user_of_config
    if resolver is token_user:

        async def token_user_of_config(claims: Claims, scope: Scope) -> TokenUser:
            return _token_user(config, claims)

        return token_user_of_config
    return resolver


class TokenUser:
    """A user known only from a verified token (stateless mode).

    ``pk`` and ``id`` hold the user id claim converted to the type of ``USER_ID_FIELD``, so
    ``scope["user"].pk == obj.owner_id`` works. It is not a model instance: it cannot be
    saved, has no groups or permissions, and is always active while its token is valid.
    """

    # Slotted: stateless mode is the one chosen for many connections per process.
    __slots__ = ("claims", "id", "is_staff", "is_superuser", "pk", "username")

    is_active = True
    is_authenticated = True
    is_anonymous = False

    def __init__(self, user_id: Any, claims: Mapping[str, Any]) -> None:
        self.pk = self.id = user_id
        self.claims = read_only(claims)
        username = claims.get("username")
        self.username: str = username if isinstance(username, str) else ""
        self.is_staff: bool = claims.get("is_staff") is True
        self.is_superuser: bool = claims.get("is_superuser") is True

    def __str__(self) -> str:
        return self.username or f"TokenUser {self.pk}"

    def __repr__(self) -> str:
        return f"<TokenUser pk={self.pk!r}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TokenUser) and other.pk == self.pk

    def __hash__(self) -> int:
        return hash(self.pk)

    def get_username(self) -> str:
        """The ``username`` claim, or an empty string."""
        return self.username

    def has_perm(self, perm: str, obj: object = None) -> bool:
        """Token users hold no model permissions."""
        return False

    def has_perms(self, perm_list: object, obj: object = None) -> bool:
        """Token users hold no model permissions."""
        return False

    def has_module_perms(self, module: str) -> bool:
        """Token users hold no model permissions."""
        return False
