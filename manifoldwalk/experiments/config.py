"""The options of an experiment's runs: :class:`RunConfig`, its checks and its choices.

Also the check that refuses a run directory holding work made with other options, since what
a directory may hold is decided by the ``config.json`` that :meth:`RunConfig.for_seed` writes.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from manifoldwalk.experiments import rundir
from manifoldwalk.experiments.backend import BACKENDS
from manifoldwalk.experiments.definitions import WD_LAMBDAS, Experiment, get_experiment
from manifoldwalk.schemes import SCHEMES

__all__ = [
    "BUDGETS",
    "WD_REGS",
    "RunConfig",
    "check_config",
    "write_config",
]


WD_REGS = ("l2", "l2-weights")
"""Weight-decay regularisers: all parameters (as the walk) or kernels only (the authors' Keras)."""

BUDGETS = ("predictor", "total")
"""How the step budget counts: predictor steps (the authors' code) or all steps (the text)."""


@dataclass(frozen=True)
class RunConfig:
    """Everything that determines an experiment's runs (written to each ``config.json``).

    Attributes:
        experiment: The experiment's name (see :data:`~manifoldwalk.experiments.EXPERIMENTS`).
        out: The output root; seed ``k`` writes ``out/<experiment>/seed-<k>``.
        seeds: The seeds to run.
        backend: ``"torch"``, ``"jax"`` or ``"tensorflow"`` (feed-forward nets only).
        device: ``"cpu"`` or ``"cuda"``.
        scheme: The walk's scheme (default ``"authors"``, which produced Table I).
        max_steps: The walk's step budget (None: the experiment's).
        budget: ``"predictor"`` (count predictor steps, as the authors' code) or ``"total"``.
        phase1_epochs: Phase-1 epochs (None: the experiment's, 100).
        wd_epochs: Epochs of each weight-decay run (None: the experiment's).
        wd_lambdas: The λ sweep (None: {0} ∪ {1e-6 … 1e6}).
        wd_reg: R of the weight-decay objective: ``"l2"`` (all parameters, as the walk) or
            ``"l2-weights"`` (kernels only, the authors' Keras baseline).
        val_fraction: The share of the training set held out to choose λ honestly.
        record_every: Predictor steps between metric records (None: the experiment's).
        save_every: Predictor steps between saved θ (float32).
        checkpoint_every: Predictor steps between walk checkpoints (a multiple of save_every).
        dtype: ``"float32"`` or ``"float64"`` (None: the experiment's).
        data_dir: Directory of the image datasets' files (None: their defaults).
        n_train: Training examples (None: the paper's).
        eta_min: The predictor's step floor (None: the experiment's).
        eta_c: The authors' corrector step (None: the experiment's).
        tau: The deviation threshold (None: the experiment's).
    """

    experiment: str
    out: str = "runs"
    seeds: tuple[int, ...] = (0,)
    backend: str = "torch"
    device: str = "cpu"
    scheme: str = "authors"
    max_steps: int | None = None
    budget: str = "predictor"
    phase1_epochs: int | None = None
    wd_epochs: int | None = None
    wd_lambdas: tuple[float, ...] | None = None
    wd_reg: str = "l2"
    val_fraction: float = 0.2
    record_every: int | None = None
    save_every: int = 50
    checkpoint_every: int = 1000
    dtype: str | None = None
    data_dir: str | None = None
    n_train: int | None = None
    eta_min: float | None = None
    eta_c: float | None = None
    tau: float | None = None

    def __post_init__(self) -> None:
        """Check the options; raises ValueError naming the valid choices."""
        get_experiment(self.experiment)
        for name, value, choices in (
            ("backend", self.backend, BACKENDS),
            ("device", self.device, ("cpu", "cuda")),
            ("scheme", self.scheme, tuple(SCHEMES)),
            ("budget", self.budget, BUDGETS),
            ("wd_reg", self.wd_reg, WD_REGS),
            ("dtype", self.dtype, (None, "float32", "float64")),
        ):
            if value not in choices:
                valid = ", ".join(str(c) for c in choices if c is not None)
                raise ValueError(f"unknown {name} {value!r}; choose one of: {valid}")
        for name in ("max_steps", "phase1_epochs", "wd_epochs", "record_every", "n_train"):
            value = getattr(self, name)
            least = 0 if "epochs" in name else 1
            if value is not None and value < least:
                raise ValueError(f"{_named(name)} must be at least {least}, got {value}")
        for name in ("save_every", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{_named(name)} must be at least 1, got {getattr(self, name)}")
        if not 0.0 < self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must lie in (0, 1), got {self.val_fraction}")
        if not self.seeds:
            raise ValueError("need at least one seed")
        if min(self.seeds) < 0:
            raise ValueError(f"seeds must be >= 0, got {min(self.seeds)}; pass --first-seed >= 0")
        if self.wd_lambdas is not None:
            # checked here, so that a bad λ fails before anything runs, not when reached
            if len(self.wd_lambdas) == 0:
                raise ValueError(
                    "wd_lambdas is empty; pass at least one λ (e.g. --wd-lambdas 0,1e-3) or "
                    "leave it out for the paper's grid"
                )
            bad = [v for v in self.wd_lambdas if not (math.isfinite(v) and v >= 0)]
            if bad:
                raise ValueError(
                    f"weight-decay λ must be finite and >= 0, got {', '.join(map(str, bad))}"
                )
            if len(set(self.wd_lambdas)) != len(self.wd_lambdas):
                raise ValueError(f"wd_lambdas lists a λ twice: {list(self.wd_lambdas)}")

    @property
    def spec(self) -> Experiment:
        """The experiment with this configuration's overrides applied."""
        exp = get_experiment(self.experiment)
        overrides = {
            "max_steps": self.max_steps,
            "phase1_epochs": self.phase1_epochs,
            "wd_epochs": self.wd_epochs,
            "record_every": self.record_every,
            "dtype": self.dtype,
            "eta_min": self.eta_min,
            "eta_c": self.eta_c,
            "tau": self.tau,
        }
        return replace(exp, **{k: v for k, v in overrides.items() if v is not None})

    @property
    def lambdas(self) -> tuple[float, ...]:
        """The weight-decay sweep actually run."""
        return tuple(self.wd_lambdas) if self.wd_lambdas is not None else WD_LAMBDAS

    def for_seed(self, seed: int) -> dict[str, Any]:
        """The JSON written to one seed's ``config.json`` (options, resolved experiment, seed).

        Args:
            seed: The seed.

        Returns:
            A JSON-serialisable dict.
        """
        options = asdict(self)
        options.pop("seeds")
        options.pop("out")
        return {
            "seed": seed,
            "options": options,
            "experiment": self.spec.to_dict(),
            "wd_lambdas": list(self.lambdas),
        }


#: The command-line flag of each option, for the message refusing a run directory.
_FLAGS = {
    "max_steps": "--steps",
    "phase1_epochs": "--epochs",
    "n_train": "--n-train",
}


def _named(option: str) -> str:
    """An option's name with its command-line flag, e.g. ``max_steps (--steps)``."""
    return f"{option} ({_FLAGS.get(option, '--' + option.replace('_', '-'))})"


def check_config(d: Path, wanted: dict[str, Any]) -> None:
    """Refuse a run directory that holds work made with other options than ``wanted``.

    Finished and unfinished directories alike: a finished seed of other options must not be
    mixed into this run's table. A directory whose only file is ``config.json`` holds no work
    and is no conflict.

    Args:
        d: The seed's run directory (it need not exist).
        wanted: What :meth:`RunConfig.for_seed` gives for the seed.

    Raises:
        ValueError: Naming the differing options and what to do.
    """
    wanted = json.loads(json.dumps(wanted))  # tuples → lists, as read back
    path = d / "config.json"
    if not path.exists():
        return
    work = [p for p in d.rglob("*") if p.is_file() and p.name != "config.json"]
    if not any(not p.name.endswith(".tmp") for p in work):
        return
    try:
        have = rundir.read_json(path)
    except (OSError, ValueError):
        return  # a damaged config.json: the run is unfinished (DONE hashes it) and rewritten
    if have == wanted:
        return
    theirs = have.get("options", {}) if isinstance(have, dict) else {}
    diff = [
        f"{_named(k)}: {theirs.get(k)!r} there, {wanted['options'].get(k)!r} asked"
        for k in sorted(set(theirs) | set(wanted["options"]))
        if theirs.get(k) != wanted["options"].get(k)
    ]
    raise ValueError(
        f"{d} holds a run made with other options ({'; '.join(diff) or 'experiment settings'}); "
        "choose another --out or delete that directory"
    )


def write_config(d: Path, wanted: dict[str, Any]) -> None:
    """Write the seed's ``config.json`` (once its data loaded: a failed start leaves no claim).

    Args:
        d: The seed's run directory (it exists).
        wanted: What :meth:`RunConfig.for_seed` gives for the seed.
    """
    rundir.atomic_write_json(d / "config.json", wanted)
