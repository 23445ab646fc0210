"""users._one_user: a lone handshake's query, compiled once and run with ``raw()``.

The ORM builds and compiles the same one-row query anew on every lookup; database_user
compiles it once per model, field and database and must give exactly the ORM's answer.
"""

from __future__ import annotations

from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.contrib.auth import get_user_model
from django.contrib.auth.models import UserManager
from django.db import connection
from django.db.models import QuerySet
from django.db.models.sql import Query
from django.db.models.sql.compiler import SQLCompiler
from django.test.utils import CaptureQueriesContext

from channels_jwt import UserRejected, users
from channels_jwt.users import database_user
from tests.harness import user_pk_range

User = get_user_model()


def resolve(user_id: Any) -> Any:
    """``database_user`` for ``user_id``, from a sync test (its query runs on this thread)."""
    return async_to_sync(database_user)({"user_id": user_id}, {"type": "websocket"})


@pytest.fixture(autouse=True)
def fresh_sql(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test compiles its own (another test's manager may have been different)."""
    monkeypatch.setattr(users, "_ONE_USER_SQL", {})


def fields(user: Any) -> dict[str, Any]:
    return {name: value for name, value in vars(user).items() if name != "_state"}


def test_the_lookup_runs_the_orms_own_sql_and_builds_the_same_user(user: Any) -> None:
    user.first_name = "Ada"
    user.save()  # last_login, date_joined: values the backend converts (SQLite: text)
    with CaptureQueriesContext(connection) as orm:
        expected = list(User._default_manager.filter(pk=user.pk)[:2])
    with CaptureQueriesContext(connection) as ours:
        found = resolve(str(user.pk))
        again = resolve(user.pk)
    assert [query["sql"] for query in ours] == [orm[0]["sql"]] * 2
    assert fields(found) == fields(again) == fields(expected[0])
    assert found._state.db == expected[0]._state.db
    assert found._state.adding is False


def test_the_query_is_compiled_once(user: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    compiled: list[str] = []
    as_sql = SQLCompiler.as_sql

    def counting(self: SQLCompiler, *args: Any, **kwargs: Any) -> Any:
        compiled.append(self.query.model._meta.label if self.query.model else "")
        return as_sql(self, *args, **kwargs)

    monkeypatch.setattr(SQLCompiler, "as_sql", counting)
    for _ in range(3):
        assert resolve(user.pk) == user
    assert compiled == [User._meta.label]


def test_an_unknown_id_and_an_inactive_user_are_refused_alike(
    user: Any, inactive_user: Any
) -> None:
    refusals = []
    for user_id in (inactive_user.pk, 10**9):
        with pytest.raises(UserRejected) as raised:
            resolve(user_id)
        refusals.append(str(raised.value))
    assert refusals == ["user not found or inactive"] * 2
    assert resolve(user.pk) == user


def test_a_manager_with_its_own_queryset_is_asked_every_time(
    user: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A manager may filter by something that changes (a tenant, a flag): its query is built
    # anew for each lookup, as the ORM would.
    admitted = {"alice"}
    plain = UserManager.get_queryset

    def only_admitted(self: UserManager[Any]) -> Any:
        return plain(self).filter(username__in=sorted(admitted))

    monkeypatch.setattr(UserManager, "get_queryset", only_admitted)
    assert resolve(user.pk) == user
    admitted.clear()
    with pytest.raises(UserRejected):
        resolve(user.pk)
    assert {(User, "id", "default"): None} == users._ONE_USER_SQL


def test_an_id_beyond_the_column_is_unknown_without_a_query_before_and_after_the_sql_is_kept(
    user: Any,
) -> None:
    # PostgreSQL's "integer" id column ends at 2**31 - 1: the ORM asks nothing for a larger
    # value, and neither does the kept SQL. SQLite's integers are 64-bit: both ask.
    beyond = 2**31
    _, high = user_pk_range()
    asked = []
    for _ in ("nothing compiled yet", "compiled", "kept"):
        with CaptureQueriesContext(connection) as queries, pytest.raises(UserRejected):
            resolve(beyond)
        asked.append(len(queries))
        assert resolve(user.pk) == user
    assert asked == [0 if beyond > high else 1] * 3
    assert users._ONE_USER_SQL.get((User, "id", "default")) is not None


def test_a_manager_with_its_own_queryset_class_goes_through_the_orm(
    user: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Counting(QuerySet[Any]):
        built = 0

        def _fetch_all(self) -> None:
            Counting.built += self._result_cache is None  # one per query the ORM runs
            super()._fetch_all()

    monkeypatch.setattr(UserManager, "_queryset_class", Counting)
    for _ in range(2):
        assert resolve(user.pk) == user
    assert Counting.built == 2
    assert {(User, "id", "default"): None} == users._ONE_USER_SQL


def test_sql_with_other_parameters_than_the_id_is_not_kept(
    user: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Should Django ever send the LIMIT as a parameter, raw() would be handed too few.
    compiled = Query.sql_with_params

    def with_limit_parameter(self: Query) -> tuple[str, tuple[Any, ...]]:
        sql, params = compiled(self)
        return sql.replace("LIMIT 2", "LIMIT %s"), (*params, 2)

    monkeypatch.setattr(Query, "sql_with_params", with_limit_parameter)
    assert resolve(user.pk) == user
    assert {(User, "id", "default"): None} == users._ONE_USER_SQL
    assert resolve(user.pk) == user
