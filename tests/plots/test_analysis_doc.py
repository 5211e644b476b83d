"""The code blocks of docs/analysis.md run, in order, and their assertions hold."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch

PAGE = Path(__file__).resolve().parents[2] / "docs" / "analysis.md"


def test_the_analysis_page_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # a 16-unit net: a second thread only waits on a loaded machine
    blocks = re.findall(r"```python\n(.*?)```", PAGE.read_text(encoding="utf-8"), flags=re.S)
    assert len(blocks) == 2
    namespace: dict = {"__name__": "docs_analysis"}
    try:
        for block in blocks:
            exec(compile(block, str(PAGE), "exec"), namespace)  # noqa: S102 - our own docs
    finally:
        torch.set_num_threads(before)
    assert (tmp_path / "wine-filter.png").read_bytes()[:4] == b"\x89PNG"
    result, problem = namespace["result"], namespace["problem"]
    filt = namespace["filt"].data
    assert filt["loss"].shape == (21, 21)
    assert filt["loss"][10, 10] == float(problem.loss(result.theta))  # the centre, (0, 0)
    assert np.all(filt["directions"][:, 208:224] == 0)  # the first layer's biases
