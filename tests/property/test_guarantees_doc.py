"""docs/guarantees.md names the tests that hold each promise: every one it names must exist."""

from __future__ import annotations

import re
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
DOC = TESTS.parent / "docs" / "guarantees.md"


def test_every_test_the_guarantees_name_exists():
    named, current = [], None
    for file, test in re.findall(r"`((?:unit|integration|property|fuzz|soak)/[a-z_]+\.py)?(?:::)?(test_[a-z0-9_]+)?`",
                                 DOC.read_text(encoding="utf-8")):
        current = file or current
        if test:
            named.append((current, test))
    assert len(named) > 30
    missing = [f"{file}::{test}" for file, test in named
               if f"def {test}(" not in (TESTS / file).read_text(encoding="utf-8")]
    assert not missing, missing
