"""The tutorial's code blocks run, in order, and their assertions hold."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"


def python_blocks(path: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(), flags=re.S)


@pytest.mark.parametrize("page", ["tutorial.md"])
def test_documented_code_runs(page):
    blocks = python_blocks(DOCS / page)
    assert len(blocks) >= 5
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, f"{page}", "exec"), namespace)  # noqa: S102 - our own docs


def test_api_page_matches_the_docstrings():
    import sys

    sys.path.insert(0, str(DOCS))
    try:
        from make_api import render
    finally:
        sys.path.pop(0)
    assert (DOCS / "api.md").read_text() == render(), "run: python docs/make_api.py"
