"""The catalogue's rows as data: every token row (``token_rows.py``) and transport row
(``scope_rows.py``) through the middleware, refused or (positive controls) accepted."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jwt
import pytest

from tests.catalogue.kit import (
    ACCEPT,
    TRANSPORTS,
    Kit,
    Row,
    ScopeRow,
    assert_accepted,
    assert_refused,
    carrying,
    settings_for,
)
from tests.catalogue.scope_rows import ACCEPTED_SCOPE_ROWS, SCOPE_ROWS
from tests.catalogue.token_rows import TOKEN_ROWS


def test_pyjwt_version_is_recorded(record_property: Callable[[str, Any], None]) -> None:
    """The expectations above were measured with PyJWT 2.15.1; record what runs them."""
    print(f"PyJWT {jwt.__version__}")
    record_property("pyjwt_version", jwt.__version__)
    major, minor = (int(part) for part in jwt.__version__.split(".")[:2])
    assert (major, minor) >= (2, 14)


@pytest.mark.parametrize(
    ("row", "transport"),
    [
        pytest.param(row, transport, id=f"{row.id}-{transport}")
        for row in TOKEN_ROWS
        if row.reason is not ACCEPT
        for transport in TRANSPORTS
    ],
)
async def test_hostile_token_is_refused(
    row: Row, transport: str, kit: Kit, caplog: pytest.LogCaptureFixture
) -> None:
    assert row.reason is not None
    await assert_refused(
        carrying(row.token(kit), transport),
        row.reason,
        settings=settings_for(row, kit.keys),
        caplog=caplog,
        queries=row.queries,
    )


@pytest.mark.parametrize(
    ("row", "transport"),
    [
        pytest.param(row, transport, id=f"{row.id}-{transport}")
        for row in TOKEN_ROWS
        if row.reason is ACCEPT
        for transport in TRANSPORTS
    ],
)
async def test_positive_control_token_is_accepted(
    row: Row, transport: str, kit: Kit, caplog: pytest.LogCaptureFixture
) -> None:
    token = row.token(kit)
    await assert_accepted(
        carrying(token, transport),
        token,
        settings=settings_for(row, kit.keys),
        caplog=caplog,
        queries=row.queries,
    )


@pytest.mark.parametrize("row", [pytest.param(row, id=row.id) for row in SCOPE_ROWS])
async def test_hostile_transport_is_refused(
    row: ScopeRow, kit: Kit, caplog: pytest.LogCaptureFixture
) -> None:
    assert row.reason is not None
    await assert_refused(
        row.attempt(kit),
        row.reason,
        settings=settings_for(row, kit.keys),
        caplog=caplog,
        seconds=row.seconds,
    )


@pytest.mark.parametrize("row", [pytest.param(row, id=row.id) for row in ACCEPTED_SCOPE_ROWS])
async def test_positive_control_transport_is_accepted(
    row: ScopeRow, kit: Kit, caplog: pytest.LogCaptureFixture
) -> None:
    attempt = row.attempt(kit)
    await assert_accepted(
        attempt, attempt.secrets[0], settings=settings_for(row, kit.keys), caplog=caplog
    )
