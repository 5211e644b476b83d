"""Run one experiment: for every seed, phase 1 → the walk → the weight-decay sweep.

:func:`run_seed` does one seed and writes its run directory (layout in
:mod:`manifoldwalk.experiments.rundir`); :func:`run_experiment` does every seed, skipping the
finished ones and running the rest in parallel processes; :func:`run_seeds_batched` walks
several seeds together on one device. Every stage saves what it produced before the next
starts, so an interrupted seed resumes where it stopped: phase 1 is loaded, the walk continues
from its last checkpoint (every ``checkpoint_every`` predictor steps, on the same path the
uninterrupted walk takes) and finished weight-decay runs are kept. Every file is written
through the seed's :class:`~manifoldwalk.experiments.rundir.RunFiles`, which records its size
and SHA-256 in ``index.json``: what a resumed seed reuses must match that record, anything else
is recomputed (and named on stderr). Before any work starts, every seed directory of the
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
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from manifoldwalk._array import to_numpy
from manifoldwalk.experiments import rundir
from manifoldwalk.experiments._outputs import write_outputs
from manifoldwalk.experiments._phase1 import run_phase1
from manifoldwalk.experiments._pool import run_in_processes
from manifoldwalk.experiments._provenance import record_session, session_record
from manifoldwalk.experiments._run_groups import experiment_groups
from manifoldwalk.experiments._seed import Seed, Stage, load_data
from manifoldwalk.experiments._walk_stage import walk_seeds
from manifoldwalk.experiments._weight_decay import run_weight_decay
from manifoldwalk.experiments.backend import load_backend
from manifoldwalk.experiments.config import RunConfig, check_config, write_config
from manifoldwalk.experiments.progress import progress_bar

__all__ = ["run_experiment", "run_seed", "run_seeds_batched"]


def run_seed(
    config: RunConfig,
    seed: int,
    *,
    show_progress: bool = True,
    plain: bool = False,
    threads: int | None = None,
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

    Returns:
        The summary written to ``summary.json``.

    Raises:
        ValueError: The run directory holds a run (finished or not) with other options, work
            without a readable record of its options, or a weight-decay file of another λ.
        ImportError: The backend's framework is missing.
        manifoldwalk.datasets.DatasetError: The dataset's files are missing.
    """
    spec = config.spec
    d = rundir.seed_dir(config.out, spec.name, seed)
    check_config(d, config.for_seed(seed))
    if rundir.is_finished(d):
        return rundir.read_json(d / "summary.json")
    s = _start_seed(config, seed, d, Stage(show_progress, plain), threads)
    ((result, walk_time),) = walk_seeds(config, s.backend, spec, [s])
    return _finish_seed(config, s, result, walk_time)


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


def _start_seed(config: RunConfig, seed: int, d: Path, stage: Stage, threads: int | None) -> Seed:
    """Prepare seed ``seed``'s run directory, load its data and run (or reload) phase 1 (the
    caller has checked the directory's config)."""
    spec = config.spec
    backend = load_backend(config.backend)
    backend.configure(device=config.device, threads=threads or 1)
    ds = load_data(config, spec, seed)
    d.mkdir(parents=True, exist_ok=True)
    (d / rundir.DONE).unlink(missing_ok=True)
    rundir.clean_temporary_files(d)  # left by writes that a kill cut off
    files = rundir.RunFiles(d)
    write_config(d, config.for_seed(seed), files)
    record_session(  # what this session runs with; no option of the run (see _provenance)
        files,
        session_record(
            backend=config.backend, device=config.device, dtype=spec.dtype, threads=threads or 1
        ),
    )
    problem, theta0, p1 = run_phase1(backend, spec, ds, seed, d, stage, files)
    return Seed(seed, d, backend, stage, ds, problem, theta0, p1, files)


def _finish_seed(config: RunConfig, s: Seed, result: Any, walk_time: float) -> dict[str, Any]:
    """After the walk: the final θ, the weight-decay sweep and the summary (then DONE)."""
    spec, d, ds, p1, seed = config.spec, s.d, s.ds, s.p1, s.seed
    s.files.write_npz("final.npz", theta=to_numpy(result.theta))
    wd = run_weight_decay(config, s.backend, spec, ds, seed, d, s.stage, s.files)
    h = result.history
    n_train = len(ds.x_train)
    summary = {
        "experiment": spec.name,
        "seed": seed,
        "metric": spec.metric,
        "n_train": n_train,
        "n_test": len(ds.x_test),
        "n_params": int(s.problem.n_params),
        "phase1": {k: v for k, v in p1.items() if k != "wall_time"},
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
        "wd": [{k: v for k, v in r.items() if k != "wall_time"} for r in wd],
        "timing": {
            "phase1_s": p1.get("wall_time"),
            "walk_s_last_session": walk_time,
            "wd_s": sum(r.get("wall_time", 0.0) for r in wd),
        },
        "versions": {"python": platform.python_version(), "numpy": np.__version__},
    }
    s.files.write_json("summary.json", summary)
    rundir.mark_done(d, files=s.files)
    return summary


def run_seeds_batched(
    config: RunConfig,
    seeds: list[int],
    *,
    show_progress: bool = True,
    threads: int | None = None,
) -> list[dict[str, Any]]:
    """Run several seeds with their walks batched on one device (``--batch-seeds``).

    Phase 1 and the weight-decay sweep run per seed, as in :func:`run_seed`; the walks of all
    seeds run together through the backend's ``walk_batch`` (JAX: one ``vmap``-ed compiled
    loop; PyTorch: each step ``vmap``-ed over the seeds). Every seed's run directory ends as
    :func:`run_seed` leaves it (same files, same summary up to floating-point tolerance and
    timings).

    Args:
        config: The configuration.
        seeds: The seeds (finished ones are read back, not run).
        show_progress: Draw progress bars on stderr.
        threads: CPU threads for the framework (None: one).

    Returns:
        The seeds' summaries, in the order of ``seeds``.

    Raises:
        ValueError: The backend cannot batch walks (``jax`` and ``torch`` can), or as :func:`run_seed`.
    """
    spec = config.spec
    backend = load_backend(config.backend)
    if not callable(getattr(backend, "walk_batch", None)):
        raise ValueError(
            f"--batch-seeds needs --backend jax or torch; the {config.backend} backend walks "
            "one seed at a time"
        )
    summaries: dict[int, dict[str, Any]] = {}
    started = []
    _check_directory(replace(config, seeds=tuple(seeds)))
    for seed in seeds:
        d = rundir.seed_dir(config.out, spec.name, seed)
        if rundir.is_finished(d):
            summaries[seed] = rundir.read_json(d / "summary.json")
        else:
            started.append(_start_seed(config, seed, d, Stage(show_progress, False), threads))
    if started:
        walked = walk_seeds(config, backend, spec, started, batched=True)
        for s, (result, walk_time) in zip(started, walked, strict=True):
            summaries[s.seed] = _finish_seed(config, s, result, walk_time)
    return [summaries[seed] for seed in seeds]


def _worker(config: RunConfig, seed: int, threads: int | None) -> dict[str, Any]:
    """One seed in a worker process (progress as plain lines); returns its summary."""
    return run_seed(config, seed, show_progress=True, plain=True, threads=threads)


def run_experiment(
    config: RunConfig,
    *,
    jobs: int = 1,
    show_progress: bool = True,
    threads: int | None = None,
    batch_seeds: bool = False,
) -> list[dict[str, Any]]:
    """Run every seed of ``config`` (finished seeds are skipped), ``jobs`` at a time.

    Args:
        config: The configuration.
        jobs: Seeds run in parallel worker processes (1: in this process).
        show_progress: Draw progress on stderr.
        threads: CPU threads per seed for the framework (None: one).
        batch_seeds: Walk all unfinished seeds together on one device (see
            :func:`run_seeds_batched`; needs the ``jax`` backend and ``jobs == 1``).

    Returns:
        The seeds' summaries, in seed order.

    Raises:
        ValueError: For ``jobs < 1``, ``batch_seeds`` with ``jobs > 1`` or a backend that
            cannot batch, a seed directory (finished or not, asked for or not) of other or
            unknown options (checked for every seed directory of the experiment directory
            before any work starts), or a problem in a seed (re-raised from the worker).
        KeyboardInterrupt: On Ctrl-C, after stopping the worker processes (what they saved is
            kept; running again resumes).
    """
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    if batch_seeds:
        if jobs != 1:
            raise ValueError("--batch-seeds walks every seed in one process; leave --jobs at 1")
        summaries = run_seeds_batched(
            config, list(config.seeds), show_progress=show_progress, threads=threads
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
            run_seed(config, seed, show_progress=show_progress, threads=threads)
            finished()
    else:
        run_in_processes(_worker, [(config, s, threads or 1) for s in todo], jobs, finished)
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
