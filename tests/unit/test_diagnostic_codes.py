"""Diagnostic codes: every code in use is registered (referenced by name, never a bare string) and documented."""

from __future__ import annotations

import re
from pathlib import Path

from auditor.core.diagnostics import MEANING, Code

ROOT = Path(__file__).resolve().parents[2]


def test_every_code_has_a_meaning():
    assert set(MEANING) == set(Code)
    assert all(MEANING[c] for c in Code)
    assert len({c.value for c in Code}) == len(Code)


def test_no_bare_code_strings_in_the_code():
    bare = re.compile(r"""["'][EW]\d{3}["']""")
    found = [f"{p.relative_to(ROOT)}:{n}" for p in (ROOT / "auditor").rglob("*.py")
             for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
             if bare.search(line) and p.name != "diagnostics.py"]
    assert found == [], "use auditor.core.diagnostics.Code members, not strings"


def test_every_code_used_is_registered():
    used = {m.group(1) for p in (ROOT / "auditor").rglob("*.py")
            for m in re.finditer(r"\bCode\.([A-Z_0-9]+)", p.read_text(encoding="utf-8"))}
    assert used, "the scan found no codes"
    assert used <= set(Code.__members__)
    unused = set(Code.__members__) - used
    assert unused == set(), f"registered but never raised: {sorted(unused)}"


def test_docs_list_every_code_with_its_meaning():
    rows = re.findall(r"^\| ([EW]\d{3}) \| `([A-Z_]+)` \| (.+) \|$", (ROOT / "docs" / "diagnostics.md").read_text(
        encoding="utf-8"), re.M)
    assert [(code, name, meaning) for code, name, meaning in rows] == [
        (c.value, c.name, MEANING[c]) for c in Code]
