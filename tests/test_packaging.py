"""The published metadata says exactly what is tested, and nothing meant for development ships."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pytest depends on tomli where the standard library has no tomllib
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT: dict[str, Any] = tomllib.loads((ROOT / "pyproject.toml").read_text())
PROJECT: dict[str, Any] = PYPROJECT["project"]


def nox_constant(name: str) -> Any:
    """A literal assigned at the top of noxfile.py (nox itself is not installed in its sessions)."""
    tree = ast.parse((ROOT / "noxfile.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == name for target in node.targets
        ):
            return ast.literal_eval(node.value)
    raise LookupError(name)


MATRIX: list[tuple[str, str, str, tuple[str, ...]]] = nox_constant("MATRIX")
REAL_PROCESSES: tuple[str, ...] = nox_constant("REAL_PROCESSES")
LOWEST_REAL_PROCESSES: tuple[str, ...] = nox_constant("LOWEST_REAL_PROCESSES")


def classifier_versions(prefix: str) -> set[str]:
    return {
        classifier.removeprefix(prefix)
        for classifier in PROJECT["classifiers"]
        if re.fullmatch(re.escape(prefix) + r"\d+\.\d+", classifier)
    }


def test_python_classifiers_are_the_tested_pythons() -> None:
    assert classifier_versions("Programming Language :: Python :: ") == {
        python for python, *_ in MATRIX
    }


def test_django_classifiers_are_the_tested_djangos() -> None:
    assert classifier_versions("Framework :: Django :: ") == {django for _, django, *_ in MATRIX}


def test_the_lowest_tested_python_and_django_are_the_declared_minimums() -> None:
    lowest_python = min(MATRIX, key=lambda row: tuple(map(int, row[0].split("."))))[0]
    assert PROJECT["requires-python"] == f">={lowest_python}"
    assert f"django>={min(django for _, django, *_ in MATRIX)}" in PROJECT["dependencies"]


def test_both_databases_are_in_the_matrix() -> None:
    assert {database for _, _, database, _ in MATRIX} == {"sqlite", "postgresql"}


def test_every_folder_of_real_processes_runs_on_two_sessions_and_all_on_the_newest() -> None:
    # Folders of tests that start no process of their own run on every session anyway.
    in_process = {"catalogue", "properties", "stress", "uuid_users", "interop"}
    folders = {path.name for path in (ROOT / "tests").iterdir() if (path / "__init__.py").exists()}
    assert folders - in_process == set(REAL_PROCESSES)
    sessions = [real for *_, real in MATRIX] + [LOWEST_REAL_PROCESSES]
    for folder in REAL_PROCESSES:
        assert sum(folder in real for real in sessions) >= 2, folder
    newest = max(MATRIX, key=lambda row: tuple(map(int, row[0].split("."))))
    assert set(newest[3]) == set(REAL_PROCESSES)


def test_readme_names_exactly_the_tested_versions() -> None:
    readme = (ROOT / "README.md").read_text()
    line = readme[readme.index("Supported and tested:") :].split("\n\n")[0]
    pythons = set(re.findall(r"\b3\.1\d\b", line.split(";")[0]))
    djangos = set(re.findall(r"\b\d\.\d\b", line.split(";")[1]))
    assert pythons == {python for python, *_ in MATRIX}
    assert djangos == {django for _, django, *_ in MATRIX}


def test_only_the_testing_extra_is_published() -> None:
    # Development tools live in PEP 735 dependency groups, which are never published.
    assert set(PROJECT["optional-dependencies"]) == {"testing"}
    assert {"test", "lint", "docs", "fuzz", "dev", "e2e", "example"} <= set(
        PYPROJECT["dependency-groups"]
    )


def test_project_urls() -> None:
    assert set(PROJECT["urls"]) == {"Documentation", "Changelog", "Source", "Issues"}
    assert all(url.startswith("https://") for url in PROJECT["urls"].values())


def test_readme_links_are_absolute() -> None:
    # The package index shows the README away from the repository: relative links break there.
    text = (ROOT / "README.md").read_text()
    targets = re.findall(r"\]\(([^)]+)\)", text) + re.findall(r"<([a-z]+:[^>]+)>", text)
    assert targets
    assert [target for target in targets if not target.startswith("https://")] == []


def test_read_the_docs_builds_exactly_as_make_docs() -> None:
    makefile = (ROOT / "Makefile").read_text()
    make_docs = re.search(
        r"^docs:.*\n\t\$\(BIN\)/python (-m sphinx .*) docs/_build/html$", makefile, re.MULTILINE
    )
    assert make_docs is not None
    readthedocs = (ROOT / ".readthedocs.yaml").read_text()
    assert f"python {make_docs[1]} $READTHEDOCS_OUTPUT/html" in readthedocs
    assert "pip install -e . --group docs" in readthedocs


def test_sdist_manifest_ships_docs_and_changelog_but_no_tests() -> None:
    manifest = (ROOT / "MANIFEST.in").read_text().splitlines()
    assert "graft docs" in manifest
    assert "prune tests" in manifest
    assert any(line.startswith("include ") and "CHANGELOG.md" in line for line in manifest)


def test_architecture_page_lists_the_layers_of_the_import_contract() -> None:
    (contract,) = PYPROJECT["tool"]["importlinter"]["contracts"]
    layers = [[module.strip() for module in layer.split("|")] for layer in contract["layers"]]
    page = (ROOT / "docs" / "architecture.md").read_text()
    rows = re.findall(r"^\| (\d+) \| ([^|]+) \|", page, re.MULTILINE)
    documented = [re.findall(r"`([a-z_]+)`", modules) for _, modules in rows]
    assert documented == layers
    packaged = {path.stem for path in (ROOT / "channels_jwt").glob("*.py")} - {"__init__"}
    assert {module for layer in layers for module in layer} == packaged
