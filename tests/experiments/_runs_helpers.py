"""Helpers shared by the end-to-end run tests: tiny options and run-directory comparison."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

#: Options that make a run take seconds: 2 epochs, 2 λ values, a few hundred walk steps.
TINY = dict(phase1_epochs=2, wd_epochs=2, wd_lambdas=(0.0, 1e-3), record_every=50)

_VOLATILE = {"wall_time", "timing"}


def _strip(obj):
    if isinstance(obj, dict):
        return {k: _strip(v) for k, v in obj.items() if k not in _VOLATILE}
    if isinstance(obj, list):
        return [_strip(v) for v in obj]
    return obj


def run_files(d: Path) -> dict[str, object]:
    """Every file of a run directory as comparable content (timings, the DONE marker and the
    index out: their hashes cover files that hold timings; provenance.json out: it records
    each session that ran the seed, so a resumed run holds one record more)."""
    out: dict[str, object] = {}
    for p in sorted(d.rglob("*")):
        if not p.is_file() or p.name in ("DONE", "index.json", "provenance.json"):
            continue
        rel = str(p.relative_to(d))
        if p.suffix == ".json":
            out[rel] = json.dumps(_strip(json.loads(p.read_text())), sort_keys=True)
        elif p.suffix == ".npz":
            with np.load(p, allow_pickle=False) as f:
                out[rel] = {k: f[k].tobytes() for k in f.files if k not in _VOLATILE}
        else:
            out[rel] = p.read_bytes()
    return out
