"""Helpers shared by the studies' tests: an independent problem, file stamps, call counters."""

from __future__ import annotations

import functools
import io
import warnings
from pathlib import Path

import numpy as np

from manifoldwalk.datasets import load_dataset
from manifoldwalk.experiments.backend import load_backend
from manifoldwalk.experiments.definitions import get_experiment


def iris_problem():
    """iris-ff's training loss on the seed-0 split and its test set, built here afresh (the
    torch backend, float64), to recompute a study's numbers from its saved θ."""
    backend = load_backend("torch")
    backend.configure(device="cpu", threads=1)
    spec = get_experiment("iris-ff")
    ds = load_dataset("iris", seed=0, dtype=np.float64)
    net = backend.build_net("ff", ds.x_train.shape[1:], ds.n_classes, seed=5, dtype="float64")
    with warnings.catch_warnings():  # the untrained net only lends its shape
        warnings.filterwarnings("ignore", "the model looks untrained", UserWarning)
        problem = backend.make_problem(net, ds.x_train, ds.y_train, task=spec.task)
    return backend, problem, ds


def load_npz(path: Path) -> dict[str, np.ndarray]:
    """Every array of an ``.npz`` file (no pickle)."""
    with np.load(io.BytesIO(path.read_bytes()), allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def stamps(d: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``d`` with its modification time (ns) and size."""
    return {
        str(p.relative_to(d)): (p.stat().st_mtime_ns, p.stat().st_size)
        for p in sorted(d.rglob("*"))
        if p.is_file()
    }


class Calls:
    """Wraps a function and counts its calls (``forbid``: raise instead of calling it)."""

    def __init__(self, fn, forbid: bool = False) -> None:
        self.fn, self.forbid, self.n = fn, forbid, 0

    def __call__(self, *args, **kwargs):
        self.n += 1
        if self.forbid:
            raise AssertionError(f"{getattr(self.fn, '__name__', self.fn)} was called")
        return self.fn(*args, **kwargs)

    def __get__(self, obj, objtype=None):
        """Bind as a method does, when set on a class."""
        return self if obj is None else functools.partial(self, obj)


def without_timing(obj):
    """A summary or record without its wall times (they differ between two runs)."""
    if isinstance(obj, dict):
        return {k: without_timing(v) for k, v in obj.items() if k not in ("seconds", "timing")}
    if isinstance(obj, list):
        return [without_timing(v) for v in obj]
    return obj
