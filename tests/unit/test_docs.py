"""The project's own documents: the README cites docs/design.md, and what that names exists."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DESIGN = ROOT / "docs" / "design.md"


def test_the_readme_cites_the_design_document_in_the_repository():
    assert "(docs/design.md)" in (ROOT / "README.md").read_text()
    assert DESIGN.is_file()


def test_no_file_cites_a_design_document_outside_the_repository():
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    citing = [name for name in tracked if (ROOT / name).is_file() and re.search(r"DESIGN(\.md| §)", (ROOT / name).read_text(errors="replace"))]
    assert citing == [], "cite docs/design.md or docs/cluster.md instead"


def test_every_path_the_design_document_names_exists():
    named = set(re.findall(r"`((?:xmppd|tests|ops|twisted)/[\w./]*)`", DESIGN.read_text()))
    assert len(named) > 10
    assert sorted(p for p in named if not (ROOT / p).exists()) == []
