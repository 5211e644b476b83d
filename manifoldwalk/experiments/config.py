"""The options of an experiment's runs: :class:`RunConfig`, its checks and its choices.

Also the check that refuses a run directory holding work made with other options (or with
options that are not known any more), since what a directory may hold is decided by the
``config.json`` that :meth:`RunConfig.for_seed` writes. Options are compared as resolved: an
option spelled out at its default (``--dtype float64`` for Iris) is the same run as one left
out, and ``data_dir`` does not count for the datasets that ship with the software.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from manifoldwalk import _json
from manifoldwalk.experiments import rundir
from manifoldwalk.experiments.backend import BACKENDS
from manifoldwalk.experiments.definitions import WD_LAMBDAS, Experiment, get_experiment
from manifoldwalk.schemes import SCHEMES

__all__ = [
    "BUDGETS",
    "PACKAGED_DATASETS",
    "SWEEPS",
    "WD_REGS",
    "RunConfig",
    "check_config",
    "comparable",
    "option_differences",
    "write_config",
]


WD_REGS = ("l2", "l2-weights")
"""Weight-decay regularisers: all parameters (as the walk) or kernels only (the authors' Keras)."""

BUDGETS = ("predictor", "total")
"""How the step budget counts: predictor steps (the authors' code) or all steps (the text)."""

SWEEPS = ("batched", "sequential")
"""How the weight-decay runs train (``--sweep``): those of one training-set length together in
one batched computation, or one by one. Equal up to floating-point rounding, so no option of
the run (it is recorded per session in ``provenance.json``, not in ``config.json``)."""

PACKAGED_DATASETS = ("iris", "auto-mpg")
"""Datasets that ship with the software: ``data_dir`` is ignored for them."""

#: Options whose None means "the experiment's value" (recorded resolved in ``config.json``).
_RESOLVED = (
    "max_steps",
    "phase1_epochs",
    "wd_epochs",
    "record_every",
    "dtype",
    "eta_min",
    "eta_c",
    "tau",
)


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
        data_dir: Directory of the image datasets' files (None: their defaults); ignored for
            Iris and Auto-MPG, whose data ships with the software.
        n_train: Training examples (None: the paper's).
        eta_min: The predictor's step floor (None: the experiment's).
        eta_c: The authors' corrector step (None: the experiment's).
        tau: The deviation threshold (None: the experiment's).
        sharpness_every: Measure the sharpness also at every this-many-th walk record (None:
            at the walk's start and end and at the weight-decay nets only; 0: nowhere). A
            reporting choice, not an option of the run: it adds numbers and changes no other
            (the walk's path is the same), so it is left out of ``config.json`` and a directory
            resumed with another value (or made before it existed) is the same run.
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
    sharpness_every: int | None = None

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
        every = self.sharpness_every
        if every is not None and (
            isinstance(every, bool) or not isinstance(every, int) or every < 0
        ):
            raise ValueError(
                f"sharpness_every (--sharpness-every) must be an integer >= 0 (0: no sharpness; "
                f"leave it out for the walk's start and end only), got {every!r}"
            )
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

        The options are recorded resolved: those left at None (the experiment's value) as the
        value used, ``wd_lambdas`` as the list swept, ``data_dir`` as None for a dataset that
        ships with the software.

        Args:
            seed: The seed.

        Returns:
            A JSON-serialisable dict.
        """
        options = asdict(self)
        options.pop("seeds")
        options.pop("out")
        options.pop("sharpness_every")  # a reporting choice (see the attribute), no option
        spec = self.spec
        options.update({k: getattr(spec, k) for k in _RESOLVED})
        options["wd_lambdas"] = list(self.lambdas)
        if spec.dataset in PACKAGED_DATASETS:
            options["data_dir"] = None
        return {
            "seed": seed,
            "options": options,
            "experiment": _settings(spec.to_dict()),
            "wd_lambdas": list(self.lambdas),
        }


#: Fields of an experiment's definition that are no setting of its runs: the paper's Table I
#: figures (in percent) are left out of ``config.json`` and of the comparison of runs.
_NOT_SETTINGS = ("paper",)


def _settings(experiment: Any) -> Any:
    """An experiment's recorded definition without the fields that are no run setting."""
    if not isinstance(experiment, dict):
        return experiment
    return {k: v for k, v in experiment.items() if k not in _NOT_SETTINGS}


#: The command-line flag of each option, for the message refusing a run directory.
_FLAGS = {
    "max_steps": "--steps",
    "phase1_epochs": "--epochs",
    "n_train": "--n-train",
}


def _named(option: str) -> str:
    """An option's name with its command-line flag, e.g. ``max_steps (--steps)``."""
    return f"{option} ({_FLAGS.get(option, '--' + option.replace('_', '-'))})"


def comparable(record: Any) -> dict[str, Any]:
    """A ``config.json`` record as compared between runs: resolved options, no seed.

    Options recorded as None (the experiment's value; an older ``config.json``) are filled
    from the record's resolved experiment and λ list, and ``data_dir`` is dropped for the
    datasets that ship with the software, so that spelling out a default is no other option.

    Args:
        record: A decoded ``config.json`` (what :meth:`RunConfig.for_seed` gives).

    Returns:
        A new dict; a record that is no dict gives ``{"invalid": record}``.
    """
    if not isinstance(record, dict):
        return {"invalid": record}
    out = _json.loads(_json.dumps(record))  # tuples → lists, and a copy
    out.pop("seed", None)
    if "experiment" in out:  # older records hold the paper's figures too
        out["experiment"] = _settings(out["experiment"])
    options, experiment = out.get("options"), out.get("experiment")
    if isinstance(options, dict):
        if isinstance(experiment, dict):
            for k in _RESOLVED:
                if options.get(k) is None and k in experiment:
                    options[k] = experiment[k]
            if experiment.get("dataset") in PACKAGED_DATASETS:
                options["data_dir"] = None
        if options.get("wd_lambdas") is None and "wd_lambdas" in out:
            options["wd_lambdas"] = out["wd_lambdas"]
    return out


def option_differences(
    have: Any, wanted: Any, labels: tuple[str, str] = ("there", "asked")
) -> list[str]:
    """The options in which two ``config.json`` records differ, in words (seed aside).

    Args:
        have: The record found (in a run directory).
        wanted: The record compared with it.
        labels: What to call the two records' values in the phrases.

    Returns:
        One phrase per differing option, e.g. ``"max_steps (--steps): 50 there, 60 asked"``
        (``"experiment settings"`` when only the resolved experiment differs); empty when the
        records are the same run's.
    """
    a, b = comparable(have), comparable(wanted)
    if a == b:
        return []
    theirs = a.get("options") if isinstance(a.get("options"), dict) else {}
    ours = b.get("options") if isinstance(b.get("options"), dict) else {}
    diff = [
        f"{_named(k)}: {theirs.get(k)!r} {labels[0]}, {ours.get(k)!r} {labels[1]}"
        for k in sorted(set(theirs) | set(ours))
        if theirs.get(k) != ours.get(k)
    ]
    return diff or ["experiment settings"]


#: The files of a seed directory that hold no work: its options, its index and the record of
#: the sessions that ran it (which is no option: a resume with a newer commit is the same run).
_NO_WORK = ("config.json", rundir.INDEX, "provenance.json")


def _work(d: Path) -> list[str]:
    """The files in ``d`` that hold work (not its config, index, provenance or temporary
    files)."""
    if not d.is_dir():
        return []
    return sorted(
        p.relative_to(d).as_posix()
        for p in d.rglob("*")
        if p.is_file()
        and p.relative_to(d).as_posix() not in _NO_WORK
        and not rundir.is_temporary(p.name)
    )


def check_config(d: Path, wanted: dict[str, Any]) -> None:
    """Refuse a run directory that holds work made with other options than ``wanted``, or
    work whose options are not known.

    Finished and unfinished directories alike: a finished seed of other options must not be
    mixed into this run's table. A directory whose only files are ``config.json`` and the
    index holds no work and is no conflict. Work without a readable record of its options (no
    ``config.json``, one that does not load, or one changed after the work was written) is
    refused, never reused under the options asked now.

    Args:
        d: The seed's run directory (it need not exist).
        wanted: What :meth:`RunConfig.for_seed` gives for the seed.

    Raises:
        ValueError: Naming the directory, the differing options (or the unreadable record)
            and what to do.
    """
    work = _work(d)
    if not work:
        return
    path = d / "config.json"
    shown = ", ".join(work[:3]) + (f" and {len(work) - 3} more" if len(work) > 3 else "")
    what_to_do = "delete that directory or choose another --out"
    if not path.exists():
        raise ValueError(
            f"{d} holds work ({shown}) but no config.json: the options it was made with are "
            f"unknown, so it is not reused; {what_to_do}"
        )
    try:
        have = rundir.read_json(path)
        if not isinstance(have, dict) or not isinstance(have.get("options"), dict):
            raise ValueError("it holds no options record")
    except (OSError, ValueError) as err:
        raise ValueError(
            f"{path} does not load ({type(err).__name__}: {err}): the options of the work in "
            f"{d} ({shown}) are unknown, so it is not reused; {what_to_do}"
        ) from None
    files = rundir.RunFiles(d)
    if files.unreadable is None and "config.json" in files.names:
        why = files.problem("config.json")
        if why is not None:
            raise ValueError(
                f"{path} was changed after the work in {d} was written ({why}): the options "
                f"of that work are unknown, so it is not reused; {what_to_do}"
            )
    if have.get("seed") != wanted.get("seed"):
        raise ValueError(
            f"{path} holds the run of seed {have.get('seed')!r}, not of seed "
            f"{wanted.get('seed')!r} as the directory's name says (a copy under another "
            f"name?); {what_to_do}"
        )
    diff = option_differences(have, wanted)
    if diff:
        raise ValueError(
            f"{d} holds a run made with other options ({'; '.join(diff)}); {what_to_do}"
        )


def write_config(d: Path, wanted: dict[str, Any], files: rundir.RunFiles | None = None) -> None:
    """Write the seed's ``config.json`` (once its data loaded: a failed start leaves no claim).

    Args:
        d: The seed's run directory (it exists).
        wanted: What :meth:`RunConfig.for_seed` gives for the seed.
        files: The run's record of its files (None: the directory's, read afresh).
    """
    (files or rundir.RunFiles(d)).write_json("config.json", wanted)
