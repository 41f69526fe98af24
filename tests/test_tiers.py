"""The test tiers name real files: a renamed or deleted file must leave the fast tier's exclusion list too."""

from __future__ import annotations

from pathlib import Path

from tiers import INTEGRATION_FILES

ROOT = Path(__file__).resolve().parents[1]


def test_every_integration_file_exists():
    missing = sorted(f for f in INTEGRATION_FILES if not (ROOT / f).is_file())
    assert not missing, f"tests/tiers.py lists files that do not exist: {missing}"
