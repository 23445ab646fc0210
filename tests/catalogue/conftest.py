"""Fixtures of the hostile-input catalogue."""

from __future__ import annotations

from typing import Any

import pytest

from tests.catalogue.kit import Kit
from tests.harness import Keys


@pytest.fixture
def kit(keys: Keys, django_user_model: Any, transactional_db: None) -> Kit:
    """Token builders, with user 1 (active, ``alice``) and user 2 (inactive) in the database.

    Users are created without a password: hashing one per test (as ``user`` does) would make
    this file take minutes.
    """
    django_user_model.objects.create(id=1, username="alice")
    django_user_model.objects.create(id=2, username="bob", is_active=False)
    return Kit(keys)
