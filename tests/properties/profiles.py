"""Hypothesis profiles for the property-based tests, chosen with ``HYPOTHESIS_PROFILE``.

``ci`` (the default, what ``make test`` runs): derandomized, so a run is reproducible and CI
never flakes on a freshly drawn example, with no example database written. ``thorough``: 20
times the examples, random draws, and failing examples kept in ``.hypothesis/`` (ignored by
git) so they are replayed first next time::

    HYPOTHESIS_PROFILE=thorough .venv/bin/python -m pytest tests/properties \
        -p no:cacheprovider --hypothesis-show-statistics
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis.database import DirectoryBasedExampleDatabase

REPO_ROOT = Path(__file__).resolve().parents[2]
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
THOROUGH_FACTOR = 20

# Every property test takes the session's keys and a database with two users as fixtures; they
# are only read by the examples, so sharing them across the examples of one test is sound.
_SHARED = {
    "suppress_health_check": [HealthCheck.function_scoped_fixture],
    "print_blob": True,
    # A guard against a hang, not the per-case bound: the tests time each handshake themselves
    # and retry a slow one before failing, as a loaded CI machine can stall any single call.
    "deadline": timedelta(seconds=5),
}
settings.register_profile("ci", derandomize=True, database=None, **_SHARED)
settings.register_profile(
    "thorough",
    derandomize=False,
    database=DirectoryBasedExampleDatabase(REPO_ROOT / ".hypothesis" / "examples"),
    **_SHARED,
)
settings.load_profile(PROFILE)


def examples(ci: int) -> int:
    """``max_examples`` for a test that runs ``ci`` examples under the ``ci`` profile."""
    return ci * THOROUGH_FACTOR if PROFILE == "thorough" else ci
