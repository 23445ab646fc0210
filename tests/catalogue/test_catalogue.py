"""Every id of the hostile-input catalogue has a test (or a stated reason why it cannot apply).

The catalogue is section 4 of the security research, ``../shared/research/security.md`` beside
the repository. A clone without ``shared/`` still runs this check against
``tests/catalogue/catalogue_ids.txt``, a copy of the id list that the first test keeps in step
with the original whenever the original is there.

An id counts as covered when a collected test's node id contains it as a word: a test id such
as ``A01-alg-none-empty-signature-subprotocol`` or a name such as ``test_D01_1mb_token``. The
tests are collected by pytest itself, in a subprocess, over the whole ``tests`` directory, with
the project's options (so a test deselected from ``make test`` does not count).
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
RESEARCH = ROOT.parent / "shared" / "research" / "security.md"
ID_COPY = Path(__file__).with_name("catalogue_ids.txt")
#: This file, as pytest names it in a node id.
OWN_PATH = Path(__file__).resolve().relative_to(ROOT).as_posix()
CATALOGUE_ID = re.compile(r"^\| ([AHTCUSXDKL][0-9]{2}) \|", re.MULTILINE)

#: Ids that cannot apply to this design, each with the reason. Empty: every row applies.
#: (JWE, ``zip`` and the JWS JSON serialization are not "not applicable": they are refused,
#: and tested as such: S04, H12, S24.)
NOT_APPLICABLE: dict[str, str] = {}


def catalogue_ids(markdown: str) -> list[str]:
    """The ids of the catalogue's rows: table rows of section 4 that start with an id."""
    start = markdown.index("\n## 4.")
    end = markdown.index("\n## 5.", start)
    return CATALOGUE_ID.findall(markdown[start:end])


def copied_ids() -> list[str]:
    """The ids of ``tests/catalogue/catalogue_ids.txt`` (comment lines start with ``#``)."""
    lines = ID_COPY.read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def collected_node_ids() -> list[str]:
    """The node ids of every test ``make test`` would run, as pytest collects them."""
    command = [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"]
    completed = subprocess.run(
        [*command, str(ROOT / "tests")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    # This file's own cases name ids as examples; they cover nothing.
    return [
        line
        for line in completed.stdout.splitlines()
        if "::" in line and not line.startswith(f"{OWN_PATH}::")
    ]


def covering(catalogue_id: str, node_ids: list[str]) -> list[str]:
    """The node ids that name ``catalogue_id`` as a word (``S21`` in ``ES256`` does not)."""
    word = re.compile(rf"(?<![A-Za-z0-9]){catalogue_id}(?![0-9])")
    return [node_id for node_id in node_ids if word.search(node_id.split("::", 1)[1])]


@pytest.fixture(scope="module")
def node_ids() -> list[str]:
    return collected_node_ids()


def test_id_list_copy_matches_the_research() -> None:
    """The copy is the original's list when the original is there; else it must be sound."""
    ids = copied_ids()
    assert len(ids) == len(set(ids)) > 100
    assert all(CATALOGUE_ID.match(f"| {catalogue_id} |") for catalogue_id in ids)
    if RESEARCH.exists():
        assert ids == catalogue_ids(RESEARCH.read_text()), (
            "tests/catalogue/catalogue_ids.txt is out of date; regenerate it from "
            "../shared/research/security.md section 4"
        )


def test_parser_finds_only_row_ids() -> None:
    """Ids in prose, in other sections or inside a row are not catalogue rows."""
    markdown = "\n".join(
        [
            "## 3. History",
            "| CVE | A04 |",
            "## 4. Catalogue",
            "| Id | Input |",
            "| A01 | `alg:none` (see A02) |",
            "T17 is in prose.",
            "| X20 | marker |",
            "## 5. Naive code",
            "| N1 | D06 |",
        ]
    )
    assert catalogue_ids(markdown) == ["A01", "X20"]


@pytest.mark.parametrize(
    ("catalogue_id", "node_id", "found"),
    [
        ("A01", "tests/catalogue/test_rows.py::test_hostile[A01-alg-none-query]", True),
        (
            "D01",
            "tests/catalogue/test_dos.py::test_D01_1mb_token[D01-1mb-token-query]",
            True,
        ),
        ("S21", "tests/x.py::test_y[S21-es256-high-s-malleated-ES256]", True),
        ("S25", "tests/x.py::test_y[L05-valid-token-ES256]", False),
        ("S21", "tests/x.py::test_y[profile-RS210]", False),
        ("S21", "tests/x.py::test_S210_not_a_row", False),
        ("S21", "tests/S21/test_dir.py::test_y", False),  # the path does not count
    ],
)
def test_coverage_matching_is_by_word(catalogue_id: str, node_id: str, found: bool) -> None:
    assert bool(covering(catalogue_id, [node_id])) is found


def test_every_catalogue_id_has_a_test(
    node_ids: list[str], record_property: Callable[[str, Any], None]
) -> None:
    ids = copied_ids()
    coverage = {catalogue_id: covering(catalogue_id, node_ids) for catalogue_id in ids}
    missing = [
        catalogue_id
        for catalogue_id, tests in coverage.items()
        if not tests and catalogue_id not in NOT_APPLICABLE
    ]
    covered = sum(1 for tests in coverage.values() if tests)
    summary = (
        f"catalogue: {len(ids)} ids, {covered} covered by "
        f"{sum(len(tests) for tests in coverage.values())} test cases, "
        f"{len(NOT_APPLICABLE)} not applicable"
    )
    print(summary)
    record_property("catalogue", summary)
    assert missing == [], f"catalogue ids without a test: {missing}"


def test_not_applicable_ids_are_catalogue_ids_without_tests(node_ids: list[str]) -> None:
    """A stale entry (a row that now has a test, or no such row) must be removed."""
    ids = set(copied_ids())
    for catalogue_id, reason in NOT_APPLICABLE.items():
        assert catalogue_id in ids
        assert reason
        assert covering(catalogue_id, node_ids) == [], f"{catalogue_id} has tests now"
