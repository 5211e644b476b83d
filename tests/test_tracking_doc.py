"""docs/tracking.md's recipe runs as written, against stand-ins of TensorBoard's SummaryWriter and
MLflow that record their calls (no tracker is installed or needed), and logs every record."""

from __future__ import annotations

import re
import sys
import types
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

PAGE = Path(__file__).resolve().parents[1] / "docs" / "tracking.md"


class FakeSummaryWriter:
    """``torch.utils.tensorboard.SummaryWriter``'s methods the recipe uses, recording calls."""

    instances: list[FakeSummaryWriter] = []

    def __init__(self, log_dir: str | None = None) -> None:
        self.log_dir, self.scalars, self.closed = log_dir, [], False
        FakeSummaryWriter.instances.append(self)

    def add_scalar(self, tag: str, scalar_value: float, global_step: int | None = None) -> None:
        assert isinstance(tag, str) and isinstance(scalar_value, float)
        self.scalars.append((tag, scalar_value, global_step))

    def close(self) -> None:
        self.closed = True


def _fake_mlflow() -> types.ModuleType:
    """A module with ``mlflow``'s functions the recipe uses, recording calls."""
    mod = types.ModuleType("mlflow")
    mod.calls = []  # type: ignore[attr-defined]

    @contextmanager
    def start_run(run_name: str | None = None):
        mod.calls.append(("start_run", run_name))
        yield
        mod.calls.append(("end_run",))

    def log_params(params: dict) -> None:
        mod.calls.append(("log_params", dict(params)))

    def log_metric(key: str, value: float, step: int | None = None) -> None:
        assert isinstance(key, str) and isinstance(value, float)
        mod.calls.append(("log_metric", key, value, step))

    mod.start_run, mod.log_params, mod.log_metric = start_run, log_params, log_metric
    return mod


def test_the_tracking_recipe_logs_every_record_to_both_trackers(monkeypatch, tmp_path):
    (block,) = re.findall(r"```python\n(.*?)```", PAGE.read_text(encoding="utf-8"), flags=re.S)
    tb = types.ModuleType("torch.utils.tensorboard")
    tb.SummaryWriter = FakeSummaryWriter  # type: ignore[attr-defined]
    mlflow = _fake_mlflow()
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", tb)
    monkeypatch.setitem(sys.modules, "mlflow", mlflow)
    monkeypatch.chdir(tmp_path)
    FakeSummaryWriter.instances.clear()
    namespace: dict = {"__name__": "tracking_doc"}
    exec(compile(block, str(PAGE), "exec"), namespace)  # noqa: S102 - our own docs
    result = namespace["result"]
    rows = result.history
    steps = [int(s) for s in rows["n_predictor"]]
    assert len(steps) >= 2 and "theta_norm" in rows

    (writer,) = FakeSummaryWriter.instances
    assert writer.closed and writer.log_dir == "runs/tensorboard"
    logged = {(tag, step): value for tag, value, step in writer.scalars}
    # the callback sees every record taken along the way; the row of the point the walk
    # returns, recorded as it stops, is in the history only (as the page says)
    assert {step for _, step in logged} == set(steps[:-1])
    for name, column in rows.items():  # every finite number of every row, at its step
        if name == "n_predictor":
            continue
        for step, value in zip(steps[:-1], column[:-1], strict=True):
            key = (f"walk/{name}", step)
            if np.isfinite(value):
                assert logged[key] == pytest.approx(float(value)), key
            else:
                assert key not in logged
    assert len(writer.scalars) == len(logged)  # each (column, step) once

    calls = mlflow.calls
    assert calls[0] == ("start_run", "circle") and calls[-1] == ("end_run",)
    metrics = {(c[1], c[3]): c[2] for c in calls if c[0] == "log_metric" and c[3] is not None}
    assert {k: v for k, v in logged.items()} == pytest.approx(metrics)
    assert ("log_metric", "final_reg", pytest.approx(result.reg), None) in calls
