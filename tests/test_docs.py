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


@pytest.mark.parametrize("section", ["## JAX", "## Keras / TensorFlow"])
def test_wrapping_examples_run(section):
    """Each framework's complete example in docs/adapters.md runs (PyTorch's is run, with its
    output checked, in tests/adapters/test_torch_adapter.py)."""
    text = (DOCS / "adapters.md").read_text(encoding="utf-8")
    body = text.split(section + "\n", 1)[1].split("\n## ", 1)[0]
    example = [b for b in re.findall(r"```python\n(.*?)```", body, re.S) if "import" in b][0]
    namespace: dict = {"__name__": "docs_example"}
    exec(compile(example, f"docs/adapters.md {section}", "exec"), namespace)  # noqa: S102
    result = namespace.get("result")
    assert result is not None and result.n_predictor > 0, "the example must leave a walk result"
