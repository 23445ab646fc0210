"""The docs describe every setting, close code and check id the package has."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import channels_jwt
from channels_jwt import checks
from channels_jwt.conf import DEFAULTS
from channels_jwt.exceptions import REASONS, CloseCode

DOCS = Path(__file__).resolve().parent.parent / "docs"


def read(page: str) -> str:
    return (DOCS / page).read_text()


@pytest.mark.parametrize("name", sorted(DEFAULTS))
def test_every_setting_is_documented_with_its_type(name: str) -> None:
    assert re.search(rf"^`{name}: [^`]+`$", read("settings.md"), re.MULTILINE)


def test_settings_page_documents_no_unknown_setting() -> None:
    documented = re.findall(r"^`([A-Z_]+): ", read("settings.md"), re.MULTILINE)
    assert sorted(documented) == sorted(DEFAULTS)


@pytest.mark.parametrize("code", list(CloseCode), ids=lambda code: code.name)
def test_every_close_code_is_documented(code: CloseCode) -> None:
    page = read("close-codes.md")
    assert f"| {code.value} | `{code.name}` |" in page


@pytest.mark.parametrize("reason", sorted(REASONS))
def test_every_reason_is_documented(reason: str) -> None:
    assert f"`{reason}`" in read("close-codes.md")


def test_every_check_id_is_documented() -> None:
    source = Path(checks.__file__).read_text()
    ids = {f"channels_jwt.E{int(n):03d}" for n in re.findall(r"_error\(\s*(\d+),", source)}
    ids |= set(re.findall(r"channels_jwt\.[WI]\d{3}", source))
    documented = set(re.findall(r"`(channels_jwt\.[EWI]\d{3})`", read("checks.md")))
    assert ids
    assert documented == ids


@pytest.mark.parametrize("name", channels_jwt.__all__)
def test_every_public_name_is_in_the_docs_or_readme(name: str) -> None:
    text = "".join(page.read_text() for page in DOCS.glob("*.md"))
    text += (DOCS.parent / "README.md").read_text() + (DOCS.parent / "CHANGELOG.md").read_text()
    assert name in text


def test_public_api_is_sorted() -> None:
    assert channels_jwt.__all__ == sorted(channels_jwt.__all__)


def test_python_blocks_in_docs_compile() -> None:
    pages = [*DOCS.glob("*.md"), DOCS.parent / "README.md"]
    blocks = [
        (page.name, block)
        for page in pages
        for block in re.findall(r"```python\n(.*?)```", page.read_text(), re.DOTALL)
    ]
    assert blocks
    for name, block in blocks:
        compile(block, name, "exec")
