"""``make fuzz``'s seed step runs without atheris, so it is kept working here."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_fuzz_seed_corpus_builds(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "fuzz.make_corpus", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert len(list((tmp_path / "extract").iterdir())) > 10
    assert len(list((tmp_path / "verify").iterdir())) > 100
