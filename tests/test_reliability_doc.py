"""docs/reliability.md names, for each promise, tests that exist."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_named_test_exists():
    text = (ROOT / "docs" / "reliability.md").read_text()
    current = None
    named = []
    # `tests/x.py::test_a` names a file; a following `::test_b` is in the same file
    for match in re.finditer(r"`(tests/[\w/]+\.py)?::(test_\w+)", text):
        current = match.group(1) or current
        named.append((current, match.group(2)))
    assert len(named) > 30
    missing = [
        f"{path}::{name}"
        for path, name in named
        if path is None or not re.search(rf"def {name}\b", (ROOT / path).read_text())
    ]
    assert not missing, f"docs/reliability.md names tests that do not exist: {missing}"
