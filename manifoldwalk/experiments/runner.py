"""Run one experiment: for every seed, phase 1 → the walk → the weight-decay sweep.

:func:`run_seed` does one seed and writes its run directory (layout in
:mod:`manifoldwalk.experiments.rundir`); :func:`run_experiment` does every seed, skipping the
finished ones and running the rest in parallel processes; :func:`run_seeds_batched` trains
and walks several seeds together on one device. Every stage saves what it produced before the
next starts, so an interrupted seed resumes where it stopped: phase 1 is loaded, the walk
continues from its last checkpoint (every ``checkpoint_every`` predictor steps, on the same
path the uninterrupted walk takes) and finished weight-decay runs are kept. The weight-decay
runs of a seed train together, in batches of one training-set length (``sweep="batched"``, the
default; ``"sequential"``: one by one, as the backend's ``train`` trains one net). Every file
is written through the seed's :class:`~manifoldwalk.experiments.rundir.RunFiles`, which
records its size and SHA-256 in ``index.json``: what a resumed seed reuses must match that
record, anything else is recomputed (and named on stderr). Before any work starts, every seed directory of the
experiment directory is checked against the options asked
(:func:`~manifoldwalk.experiments.config.check_config`), so that no table of that directory
can mix runs of other options. The stages live in
``_phase1``, ``_walk_stage`` and ``_weight_decay``; the options in
:mod:`manifoldwalk.experiments.config`.

The frameworks are reached only through an experiment backend, imported by name at run time
(:func:`~manifoldwalk.experiments.backend.load_backend`).
"""

from __future__ import annotations

import platform
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from manifoldwalk._array import to_numpy
from manifoldwalk.experiments import rundir
from manifoldwalk.experiments._lock import exclusive
from manifoldwalk.experiments._outputs import write_outputs
from manifoldwalk.experiments._phase1 import Phase1Seed, run_phase1_seeds
from manifoldwalk.experiments._pool import run_in_processes
from manifoldwalk.experiments._provenance import record_session, session_record
from manifoldwalk.experiments._run_groups import experiment_groups
from manifoldwalk.experiments._seed import Seed, Stage, load_data
from manifoldwalk.experiments._sharpness import seed_sharpness
from manifoldwalk.experiments._walk_stage import walk_seeds
from manifoldwalk.experiments._weight_decay import SweepSeed, run_sweeps, run_weight_decay
from manifoldwalk.experiments.backend import load_backend
from manifoldwalk.experiments.config import SWEEPS, RunConfig, check_config, write_config
from manifoldwalk.experiments.progress import progress_bar

__all__ = ["run_experiment", "run_seed", "run_seeds_batched"]


def run_seed(
    config: RunConfig,
    seed: int,
    *,
    show_progress: bool = True,
    plain: bool = False,
    threads: int | None = None,
    sweep: str = "batched",
) -> dict[str, Any]:
    """Run one seed (or finish an interrupted one) and return its summary.

    A finished, intact run directory (see :func:`~manifoldwalk.experiments.rundir.is_finished`)
    is not run again: its summary is read back.

    Args:
        config: The configuration.
        seed: The seed (of the net's initialisation, the shuffling, the data subset or split).
        show_progress: Draw progress bars on stderr.
        plain: Progress as occasional plain lines (for parallel workers and logs).
        threads: CPU threads for the framework (None: one, the fastest for these small nets on
            a shared CPU; parallelism comes from running seeds side by side with ``jobs``).
        sweep: ``"batched"``: the weight-decay runs of one training-set length train together
            (through the backend's ``train_batched``; one by one without it); ``"sequential"``:
            each alone through the backend's ``train``. Equal results up to floating-point
            rounding.

    Returns:
        The summary written to ``summary.json``.

    Raises:
        ValueError: The run directory holds a run (finished or not) with other options, work
            without a readable record of its options, a weight-decay file of another λ, or an
            unknown ``sweep``.
        ImportError: The backend's framework is missing.
        manifoldwalk.datasets.DatasetError: The dataset's files are missing.
    """
    _check_sweep(sweep)
    spec = config.spec
    d = rundir.seed_dir(config.out, spec.name, seed)
    check_config(d, config.for_seed(seed))
    if rundir.is_finished(d):
        return rundir.read_json(d / "summary.json")
    stage = Stage(show_progress, plain)
    p = _prepare_seed(config, seed, d, threads, sweep)
    ((problem, theta0, p1),) = run_phase1_seeds(p.backend, spec, [p], stage, batched=False)
    s = Seed(seed, d, p.backend, stage, p.ds, problem, theta0, p1, p.files)
    ((result, walk_time),) = walk_seeds(config, s.backend, spec, [s])
    return _finish_seed(config, s, result, walk_time, sweep=sweep)


def _check_sweep(sweep: str) -> None:
    """Refuse an unknown ``sweep`` (naming the valid ones)."""
    if sweep not in SWEEPS:
        raise ValueError(f"unknown sweep {sweep!r}; choose one of: {', '.join(SWEEPS)}")


def _check_directory(config: RunConfig) -> None:
    """Refuse, before any work starts, an experiment directory in which any seed directory
    (asked for or not, finished or not) holds work of other or unknown options (see
    :func:`~manifoldwalk.experiments.config.check_config`); every such directory is named."""
    exp_dir = rundir.seed_dir(config.out, config.spec.name, 0).parent
    found = {d for d in rundir.seed_dirs(exp_dir) if d.parent == exp_dir}
    asked = {rundir.seed_dir(config.out, config.spec.name, s) for s in config.seeds}
    problems = []
    for d in sorted(found | asked):
        try:
            check_config(d, config.for_seed(rundir.seed_of(d)))  # type: ignore[arg-type]
        except ValueError as err:
            problems.append(str(err))
    if len(problems) == 1:
        raise ValueError(problems[0])
    if problems:
        raise ValueError(
            f"{len(problems)} seed directories of {exp_dir} cannot be used with these options: "
            + " | ".join(problems)
        )


@dataclass(frozen=True)
class _Prepared(Phase1Seed):
    """A seed ready for its phase 1: its data and files, the backend and its directory."""

    backend: Any = None
    d: Path = Path()


def _prepare_seed(
    config: RunConfig, seed: int, d: Path, threads: int | None, sweep: str
) -> _Prepared:
    """Prepare seed ``seed``'s run directory and load its data (the caller has checked the
    directory's config)."""
    spec = config.spec
    backend = load_backend(config.backend)
    backend.configure(device=config.device, threads=threads or 1)
    ds = load_data(config, spec, seed)
    d.mkdir(parents=True, exist_ok=True)
    (d / rundir.DONE).unlink(missing_ok=True)
    rundir.clean_temporary_files(d)  # left by writes that a kill cut off
    files = rundir.RunFiles(d)
    write_config(d, config.for_seed(seed), files)
    session = session_record(
        backend=config.backend, device=config.device, dtype=spec.dtype, threads=threads or 1
    )
    # Which way the weight-decay runs train is provenance, not an option of the run: both ways
    # give the same runs up to floating-point rounding (tests/test_batched_sweep.py), as
    # another thread count or commit does. So it is recorded per session here (and per run as
    # ``batched``), not in config.json, and a directory made either way (or before the choice
    # existed) resumes with the other.
    session["sweep"] = sweep
    record_session(files, session)  # what this session runs with (see _provenance)
    return _Prepared(seed, ds, files, backend, d)


def _finish_seed(
    config: RunConfig,
    s: Seed,
    result: Any,
    walk_time: float,
    wd: list[dict[str, Any]] | None = None,
    sweep: str = "batched",
) -> dict[str, Any]:
    """After the walk: the final θ, the weight-decay sweep (``wd``: run already, with other
    seeds' by :func:`run_seeds_batched`) and the summary (then DONE)."""
    spec, d, ds, p1, seed = config.spec, s.d, s.ds, s.p1, s.seed
    s.files.write_npz("final.npz", theta=to_numpy(result.theta))
    if wd is None:
        n_params = int(s.problem.n_params)
        batched = sweep == "batched"
        wd = run_weight_decay(
            config,
            s.backend,
            spec,
            ds,
            seed,
            d,
            s.stage,
            s.files,
            batched=batched,
            n_params=n_params,
        )
    # θ0, the walk's end and each full-training-set weight-decay net, with the backend loaded
    every = config.sharpness_every
    sharp = seed_sharpness(
        s.backend, s.problem, s.theta0, result.theta, config.lambdas, s.files, every
    )
    h = result.history
    n_train = len(ds.x_train)
    summary = {
        "experiment": spec.name,
        "seed": seed,
        "metric": spec.metric,
        "n_train": n_train,
        "n_test": len(ds.x_test),
        "n_params": int(s.problem.n_params),
        "phase1": {k: v for k, v in p1.items() if k not in _HOW},
        "walk": {
            "stop_reason": result.stop_reason,
            "n_predictor": result.n_predictor,
            "n_corrector": result.n_corrector,
            "n_grad_evals": result.n_grad_evals,
            "example_grads": result.n_grad_evals * n_train,
            "level": result.level,
            "train_loss": result.loss,
            "max_deviation": float(result.max_deviation),
            "tolerance": float(result.tolerance),
            "max_relative_deviation": float(result.max_relative_deviation),
            "reg": result.reg,
            "angle": result.angle,
            "test_loss": float(h["test_loss"][-1]),
            "test_metric": float(h[f"test_{spec.metric}"][-1]),
        },
        "wd": [{k: v for k, v in r.items() if k not in _HOW} for r in wd],
        "sharpness": {k: v for k, v in sharp.items() if k != "wall_time"},
        "timing": {
            "phase1_s": p1.get("wall_time"),
            "walk_s_last_session": walk_time,
            "wd_s": sum(r.get("wall_time", 0.0) for r in wd),
            "sharpness_s": sharp["wall_time"],
        },
        "versions": {"python": platform.python_version(), "numpy": np.__version__},
    }
    s.files.write_json("summary.json", summary)
    rundir.mark_done(d, files=s.files)
    return summary


_HOW = ("wall_time", "batched")
"""Fields of phase 1's and the weight-decay runs' records that say how they ran, not what they
gave: left out of the summary's copies."""


def run_seeds_batched(
    config: RunConfig,
    seeds: list[int],
    *,
    show_progress: bool = True,
    threads: int | None = None,
    sweep: str = "batched",
) -> list[dict[str, Any]]:
    """Run several seeds together on one device (``--batch-seeds``), stage by stage.

    The phase 1 of every unfinished seed (a saved one is reloaded) trains as one batched
    computation (each seed on its own data; through the backend's ``train_batched``), then
    the walks of all seeds run together through the backend's ``walk_batch`` (JAX: one
    ``vmap``-ed compiled loop; PyTorch: each step ``vmap``-ed over the seeds), then the
    missing weight-decay runs of all seeds train together, one batched computation per
    training-set length (split where memory asks for it). With ``sweep="sequential"`` phase 1
    and the weight-decay runs train one by one, as :func:`run_seed` trains them. Every seed's
    run directory ends as :func:`run_seed` leaves it (same files, same summary up to
    floating-point tolerance and timings).

    Args:
        config: The configuration.
        seeds: The seeds (finished ones are read back, not run).
        show_progress: Draw progress bars on stderr.
        threads: CPU threads for the framework (None: one).
        sweep: ``"batched"`` or ``"sequential"`` (see :func:`run_seed`).

    Returns:
        The seeds' summaries, in the order of ``seeds``.

    Raises:
        ValueError: The backend cannot batch walks (``jax`` and ``torch`` can), or as :func:`run_seed`.
    """
    _check_sweep(sweep)
    spec = config.spec
    backend = _batching_backend(config)
    summaries: dict[int, dict[str, Any]] = {}
    prepared = []
    _check_directory(replace(config, seeds=tuple(seeds)))
    for seed in seeds:
        d = rundir.seed_dir(config.out, spec.name, seed)
        if rundir.is_finished(d):
            summaries[seed] = rundir.read_json(d / "summary.json")
        else:
            prepared.append(_prepare_seed(config, seed, d, threads, sweep))
    if not prepared:
        return [summaries[seed] for seed in seeds]
    stage = Stage(show_progress, False)
    batched = sweep == "batched"
    phase1 = run_phase1_seeds(backend, spec, prepared, stage, batched=batched)
    started = [
        Seed(p.seed, p.d, backend, stage, p.ds, problem, theta0, p1, p.files)
        for p, (problem, theta0, p1) in zip(prepared, phase1, strict=True)
    ]
    walked = walk_seeds(config, backend, spec, started, batched=True)
    wds: list[list[dict[str, Any]] | None] = [None] * len(started)
    if batched:  # every seed's missing weight-decay runs together (sequential: in _finish_seed)
        for s, (result, _) in zip(started, walked, strict=True):
            s.files.write_npz("final.npz", theta=to_numpy(result.theta))
        parts = [SweepSeed(s.seed, s.ds, s.files, int(s.problem.n_params)) for s in started]
        wds = list(run_sweeps(config, backend, spec, parts, stage, batched=True))
    for s, (result, walk_time), wd in zip(started, walked, wds, strict=True):
        summaries[s.seed] = _finish_seed(config, s, result, walk_time, wd, sweep)
    return [summaries[seed] for seed in seeds]


def _batching_backend(config: RunConfig) -> Any:
    """The experiment's backend, checked to batch walks (``--batch-seeds``).

    Raises:
        ValueError: It cannot (``jax`` and ``torch`` can).
    """
    backend = load_backend(config.backend)
    if not callable(getattr(backend, "walk_batch", None)):
        raise ValueError(
            f"--batch-seeds needs --backend jax or torch; the {config.backend} backend walks "
            "one seed at a time"
        )
    return backend


def _worker(config: RunConfig, seed: int, threads: int | None, sweep: str) -> dict[str, Any]:
    """One seed in a worker process (progress as plain lines); returns its summary."""
    return run_seed(config, seed, show_progress=True, plain=True, threads=threads, sweep=sweep)


def run_experiment(
    config: RunConfig,
    *,
    jobs: int = 1,
    show_progress: bool = True,
    threads: int | None = None,
    batch_seeds: bool = False,
    sweep: str = "batched",
) -> list[dict[str, Any]]:
    """Run every seed of ``config`` (finished seeds are skipped), ``jobs`` at a time.

    Args:
        config: The configuration.
        jobs: Seeds run in parallel worker processes (1: in this process).
        show_progress: Draw progress on stderr.
        threads: CPU threads per seed for the framework (None: one).
        batch_seeds: Train and walk all unfinished seeds together on one device (see
            :func:`run_seeds_batched`; needs the ``jax`` or ``torch`` backend and
            ``jobs == 1``).
        sweep: ``"batched"`` (default) or ``"sequential"``: how weight-decay runs (and, with
            ``batch_seeds``, phase 1) train (see :func:`run_seed`).

    Returns:
        The seeds' summaries, in seed order.

    Raises:
        ValueError: For ``jobs < 1``, an unknown ``sweep``, ``batch_seeds`` with ``jobs > 1``
            or a backend that
            cannot batch, a seed directory (finished or not, asked for or not) of other or
            unknown options (checked for every seed directory of the experiment directory
            before any work starts), or a problem in a seed (re-raised from the worker).
        KeyboardInterrupt: On Ctrl-C, after stopping the worker processes (what they saved is
            kept; running again resumes).
        RunLocked: Another process is running this experiment into the same directory
            (:mod:`manifoldwalk.experiments._lock`; a ValueError).
    """
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    _check_sweep(sweep)
    if batch_seeds:
        if jobs != 1:
            raise ValueError("--batch-seeds walks every seed in one process; leave --jobs at 1")
        _batching_backend(config)
    exp_dir = rundir.seed_dir(config.out, config.spec.name, 0).parent
    with exclusive(exp_dir, "reproduce"):  # after the checks: a refused run creates nothing
        return _run_experiment(config, jobs, show_progress, threads, batch_seeds, sweep)


def _run_experiment(
    config: RunConfig,
    jobs: int,
    show_progress: bool,
    threads: int | None,
    batch_seeds: bool,
    sweep: str,
) -> list[dict[str, Any]]:
    """:func:`run_experiment` once its options are checked and its lock is held."""
    if batch_seeds:
        summaries = run_seeds_batched(
            config, list(config.seeds), show_progress=show_progress, threads=threads, sweep=sweep
        )
        _write_outputs(config)
        return summaries
    spec = config.spec
    _check_directory(config)
    todo = [
        s for s in config.seeds if not rundir.is_finished(rundir.seed_dir(config.out, spec.name, s))
    ]
    done = len(config.seeds) - len(todo)
    bar = progress_bar(
        len(config.seeds), f"{spec.name} seeds", unit="seeds", enabled=show_progress, initial=done
    )
    bar.update(done, f"{done} already finished" if done else "")

    def finished() -> None:
        nonlocal done
        done += 1
        bar.update(done)

    if jobs == 1 or len(todo) <= 1:
        for seed in todo:
            run_seed(config, seed, show_progress=show_progress, threads=threads, sweep=sweep)
            finished()
    else:
        jobs_args = [(config, s, threads or 1, sweep) for s in todo]
        run_in_processes(_worker, jobs_args, jobs, finished)
    bar.close()
    _write_outputs(config)
    return [
        rundir.read_json(rundir.seed_dir(config.out, spec.name, s) / "summary.json")
        for s in config.seeds
    ]


def _write_outputs(config: RunConfig) -> None:
    """The table and the tidy histories beside the experiment's seed directories, counting
    every finished seed there (see :mod:`manifoldwalk.experiments._outputs`)."""
    exp_dir = rundir.seed_dir(config.out, config.spec.name, 0).parent
    here = exp_dir.resolve()
    for group in experiment_groups(exp_dir):
        if group.directory.resolve() == here and group.finished:
            try:
                write_outputs(group)
            except (OSError, ValueError) as err:  # the runs are done and kept: say, go on
                print(
                    f"manifoldwalk: the table and histories beside the runs were not written "
                    f"({err}); `manifoldwalk table {exp_dir}` prints the table",
                    file=sys.stderr,
                )
