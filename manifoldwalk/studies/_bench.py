"""What the studies share: their run directory, their data and nets, and evaluating a point.

A study writes one run directory, ``OUT/<experiment>/<study>/``, through the experiment
layer's own machinery (:mod:`manifoldwalk.experiments.rundir`): every file is written
atomically and recorded with its size and SHA-256 in ``index.json``, ``DONE`` is written last,
and the options are recorded in ``config.json`` (with a ``"study"`` marker) and checked by
:func:`~manifoldwalk.experiments.config.check_config` before any work starts, so a directory
of other options is refused by name and a resumed study reuses only the files its index
vouches for.
"""

from __future__ import annotations

import io
import math
import sys
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from manifoldwalk._array import to_numpy
from manifoldwalk.experiments import rundir
from manifoldwalk.experiments._seed import build_net, damaged, load_data
from manifoldwalk.experiments.backend import load_backend
from manifoldwalk.experiments.config import RunConfig, check_config, write_config
from manifoldwalk.experiments.definitions import Experiment
from manifoldwalk.experiments.progress import Progress, progress_bar

STUDY_SCHEMES = ("default", "compensated")
"""The schemes a study walks with: the Newton-corrector ones (a random walk takes constant
steps, which the paper's gradient corrector of constant 1e-6 cannot follow)."""

DATA_SEED = 0
"""The seed of the training set every study uses: the experiment's seed-0 split or subset."""


def run_options(study: Any, wd_epochs: int | None = None) -> RunConfig:
    """Check the options every study has and return the run options they resolve through.

    Args:
        study: A study's configuration (its ``experiment``, ``out``, ``scheme``,
            ``phase1_epochs``, ``dtype``, ``n_train``, ``data_dir``, ``backend``, ``device``).
        wd_epochs: Epochs of a weight-decay net (None: the experiment's).

    Returns:
        The experiment's :class:`~manifoldwalk.experiments.RunConfig` with those options.

    Raises:
        ValueError: An unknown experiment, backend, device, scheme or dtype, or a count
            below its least value (each named with the valid choices).
    """
    if study.scheme not in STUDY_SCHEMES:
        raise ValueError(
            f"unknown scheme {study.scheme!r}; choose one of: {', '.join(STUDY_SCHEMES)}"
        )
    return RunConfig(
        experiment=study.experiment,
        out=study.out,
        backend=study.backend,
        device=study.device,
        phase1_epochs=study.phase1_epochs,
        wd_epochs=wd_epochs,
        dtype=study.dtype,
        n_train=study.n_train,
        data_dir=study.data_dir,
    )


def check_count(name: str, value: Any, least: int) -> None:
    """Refuse a count that is no integer or below ``least``, naming its command-line flag."""
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        flag = "--" + name.replace("_", "-")
        raise ValueError(f"{name} ({flag}) must be an integer of at least {least}, got {value!r}")


def check_positive(name: str, value: Any) -> None:
    """Refuse a number that is not finite and positive, naming its command-line flag."""
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not ok or not (math.isfinite(value) and value > 0):
        flag = "--" + name.replace("_", "-")
        raise ValueError(f"{name} ({flag}) must be a finite number above 0, got {value!r}")


def study_record(study: str, run: RunConfig, options: Mapping[str, Any]) -> dict[str, Any]:
    """The ``config.json`` of a study: its marker, its resolved options and experiment.

    Args:
        study: The study's name (``"connect"``, ``"ensemble"``).
        run: The run options the experiment's settings resolve through.
        options: The study's own options, resolved.

    Returns:
        A JSON-serialisable dict; ``seed`` is None (a study is no seed's run).
    """
    spec = run.spec
    common = {
        "backend": run.backend,
        "device": run.device,
        "phase1_epochs": spec.phase1_epochs,
        "dtype": spec.dtype,
        "n_train": run.n_train,
        "data_dir": None if spec.dataset in ("iris", "auto-mpg") else run.data_dir,
        "data_seed": DATA_SEED,
    }
    return {
        "seed": None,
        "study": study,
        "options": {**common, **options},
        "experiment": spec.to_dict(),
    }


def study_dir(out: str | Path, experiment: str, study: str) -> Path:
    """The run directory of a study: ``out/<experiment>/<study>``.

    Args:
        out: The output root.
        experiment: The experiment's name.
        study: The study's name.

    Returns:
        The path (not created).
    """
    return Path(out) / experiment / study


def open_study(d: Path, record: dict[str, Any]) -> rundir.RunFiles | None:
    """Check a study's directory against its options and prepare it for work.

    Args:
        d: The study's run directory.
        record: Its ``config.json`` (:func:`study_record`).

    Returns:
        None when the study finished and is intact (nothing to do), otherwise its record of
        files, through which it writes (``DONE`` removed, temporary files of interrupted
        writes deleted, ``config.json`` written).

    Raises:
        ValueError: The directory holds work of other options (named) or of unknown options.
    """
    check_config(d, record)
    if rundir.is_finished(d):
        return None
    d.mkdir(parents=True, exist_ok=True)
    (d / rundir.DONE).unlink(missing_ok=True)
    rundir.clean_temporary_files(d)
    files = rundir.RunFiles(d)
    write_config(d, record, files)
    return files


def saved_npz(
    files: rundir.RunFiles, name: str, check: Callable[[dict[str, np.ndarray]], str | None]
) -> dict[str, np.ndarray] | None:
    """A saved ``.npz`` of the study when it can be reused, else None.

    A file is reused only when the study's index vouches for it, it loads, and ``check``
    finds nothing wrong with its arrays; otherwise it is named on stderr and recomputed.

    Args:
        files: The study's record of files.
        name: The file's path relative to the directory.
        check: Why the loaded arrays are unfit (None: fit).

    Returns:
        Name → array, or None.
    """
    path = files.directory / name
    if not path.exists():
        return None
    why = files.problem(name)
    if why is None:
        try:
            with np.load(io.BytesIO(files.read_bytes(name)), allow_pickle=False) as f:
                arrays = {k: f[k] for k in f.files}
            why = check(arrays)
        except Exception as err:  # a truncated zip raises BadZipFile, EOFError, ValueError…
            why = f"{type(err).__name__}: {err}"
    if why is not None:
        damaged(path, why, "computing it again")
        return None
    return arrays


def saved_json(files: rundir.RunFiles, name: str, keys: tuple[str, ...]) -> dict[str, Any] | None:
    """A saved JSON record of the study when its index vouches for it and it holds ``keys``.

    Args:
        files: The study's record of files.
        name: The file's path relative to the directory.
        keys: The fields a record must have.

    Returns:
        The record, or None (named on stderr when it exists but cannot be used).
    """
    import json

    path = files.directory / name
    if not path.exists():
        return None
    why = files.problem(name)
    record = None
    if why is None:
        try:
            record = json.loads(files.read_bytes(name))
            if not isinstance(record, dict) or not set(keys) <= set(record):
                why = f"it lacks the fields {sorted(set(keys) - set(record or {}))}"
        except (OSError, ValueError, rundir.RunDirError) as err:
            why = f"{type(err).__name__}: {err}"
    if why is not None:
        damaged(path, why, "computing it again")
        return None
    return record


def finite_vector(n: int) -> Callable[[dict[str, np.ndarray]], str | None]:
    """A check for :func:`saved_npz`: ``theta`` is a finite float vector of length ``n``."""

    def check(arrays: dict[str, np.ndarray]) -> str | None:
        theta = arrays.get("theta")
        if theta is None or theta.shape != (n,) or theta.dtype.kind != "f":
            shape = None if theta is None else theta.shape
            return f"its theta has shape {shape}; the net has {n} parameters"
        if not np.isfinite(theta).all():
            return f"its theta holds {int((~np.isfinite(theta)).sum())} non-finite values"
        return None

    return check


def finish(files: rundir.RunFiles, summary: dict[str, Any]) -> dict[str, Any]:
    """Write ``summary.json`` and then ``DONE`` (the study is finished).

    Args:
        files: The study's record of files.
        summary: The study's numbers.

    Returns:
        ``summary``.
    """
    files.write_json("summary.json", summary)
    rundir.mark_done(files.directory, files=files)
    return summary


def say(show: bool, text: str) -> None:
    """A line of progress on stderr (when shown)."""
    if show:
        print(text, file=sys.stderr, flush=True)


@dataclass
class Bench:
    """A study's backend, experiment, training set and problem, and a point's numbers.

    Attributes:
        backend: The paper backend module.
        spec: The experiment, with the study's overrides.
        ds: The dataset (the seed-0 split).
        problem: The training loss on ``ds`` (any net of the experiment: θ is flat).
        x_test: The test inputs in the framework.
        y_test: The test targets in the framework.
    """

    backend: Any
    spec: Experiment
    ds: Any
    problem: Any
    x_test: Any
    y_test: Any

    @classmethod
    def make(cls, run: RunConfig) -> Bench:
        """Load the backend and the seed-0 data, and build the problem.

        Args:
            run: The run options (backend, device, experiment and its overrides).

        Returns:
            The bench.

        Raises:
            ImportError: The framework is missing.
            manifoldwalk.datasets.DatasetError: The dataset's files are missing.
        """
        backend = load_backend(run.backend)
        backend.configure(device=run.device, threads=1)
        spec = run.spec
        ds = load_data(run, spec, DATA_SEED)
        net = build_net(backend, spec, ds, 0)
        with warnings.catch_warnings():  # the net only lends its shape: θ is always given
            warnings.filterwarnings("ignore", "the model looks untrained", UserWarning)
            problem = backend.make_problem(net, ds.x_train, ds.y_train, task=spec.task)
        x_test, y_test = backend.held_out(problem, ds.x_test, ds.y_test)
        return cls(backend, spec, ds, problem, x_test, y_test)

    @property
    def n_params(self) -> int:
        """The net's parameter count."""
        return int(self.problem.n_params)

    def theta(self, array: np.ndarray) -> Any:
        """A saved vector as the framework's flat θ."""
        return self.backend.from_numpy(np.asarray(array), self.problem.theta0)

    def train(self, seed: int, epochs: int, weight_decay: float = 0.0) -> tuple[np.ndarray, float]:
        """Train a net of the experiment from initialisation ``seed``.

        Args:
            seed: The seed of the initialisation and the shuffling.
            epochs: Adam epochs.
            weight_decay: λ of ``L + λ·R`` (R = ‖θ‖², biases included, as the walk's).

        Returns:
            ``(theta, seconds)``: the trained θ as numpy, in the net's dtype, and the time taken.
        """
        start = time.perf_counter()
        model = build_net(self.backend, self.spec, self.ds, seed)
        model, _ = self.backend.train(
            model,
            self.ds.x_train,
            self.ds.y_train,
            task=self.spec.task,
            epochs=epochs,
            weight_decay=weight_decay,
            seed=seed,
        )
        trained = self.backend.make_problem(
            model, self.ds.x_train, self.ds.y_train, task=self.spec.task
        )
        return np.asarray(to_numpy(trained.theta0)), time.perf_counter() - start

    def loss(self, theta: Any) -> float:
        """The training loss at θ (the framework's array)."""
        return float(self.problem.loss(theta))

    def point(self, theta: Any) -> dict[str, float]:
        """The numbers of a point: training loss, R, test loss and test metric.

        Args:
            theta: The framework's flat θ.

        Returns:
            ``{"train_loss", "reg", "test_loss", "test_metric"}``.
        """
        test = self.problem.evaluate(theta, self.x_test, self.y_test, task=self.spec.task)
        return {
            "train_loss": self.loss(theta),
            "reg": float(self.problem.reg(theta)),
            "test_loss": float(test["loss"]),
            "test_metric": float(test[self.spec.metric]),
        }


def bar(show: bool, total: int, label: str, unit: str, initial: int = 0) -> Progress:
    """A progress bar on stderr (disabled when not shown)."""
    return progress_bar(total, label, unit=unit, enabled=show, initial=initial)
