"""Losses at arbitrary weight vectors: a seed's problem rebuilt from its ``config.json``.

The loss surface and the endpoint average need the training and test loss at weight vectors
the run never visited. :func:`rebuild` makes the seed's data, net and problem again exactly as
the runner did (the same experiment backend, dataset, seed, dtype), without training anything;
:class:`SeedProblem` evaluates θ's given as numpy arrays.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from manifoldwalk.experiments._seed import build_net, load_data
from manifoldwalk.experiments.backend import load_backend
from manifoldwalk.experiments.config import RunConfig
from manifoldwalk.plots.runs import SeedRun

__all__ = ["SeedProblem", "rebuild"]


@dataclass
class SeedProblem:
    """A seed's training problem and test data, for evaluating weight vectors.

    Attributes:
        seed: The seed.
        backend: The experiment backend module (``manifoldwalk_torch.experiment`` …).
        problem: The adapter's problem on the seed's training set.
        data: The seed's dataset (``x_train``, ``y_train``, ``x_test``, ``y_test``).
        task: ``"classification"`` or ``"regression"``.
        metric: ``"accuracy"`` or ``"mse"``.
        net: The net's kind (``"ff"``, ``"mnist-cnv"``, ``"cifar10-cnv"``).
    """

    seed: int
    backend: ModuleType
    problem: Any
    data: Any
    task: str
    metric: str
    net: str

    def _theta(self, theta: np.ndarray) -> Any:
        return self.backend.from_numpy(np.asarray(theta), self.problem.theta0)

    def train_loss(self, theta: np.ndarray) -> float:
        """The full-batch training loss L(θ).

        Args:
            theta: ``(P,)`` weights.

        Returns:
            The loss.
        """
        return float(self.problem.loss(self._theta(theta)))

    def test(self, theta: np.ndarray) -> dict[str, float]:
        """The test loss and test metric at θ.

        Args:
            theta: ``(P,)`` weights.

        Returns:
            ``{"loss": …, "accuracy" | "mse": …}``.
        """
        return self.problem.evaluate(
            self._theta(theta), self.data.x_test, self.data.y_test, task=self.task
        )

    def plane_losses(
        self,
        origin: np.ndarray,
        basis: np.ndarray,
        coords: np.ndarray,
        *,
        chunk: int = 256,
        progress: Callable[[int, int], None] | None = None,
    ) -> np.ndarray:
        """Training losses at ``origin + c · basis`` for every row ``c`` of ``coords``.

        Batched on the device by the backend's ``plane_losses`` where it has one (PyTorch),
        otherwise one ``problem.loss`` per point.

        Args:
            origin: ``(P,)``.
            basis: ``(k, P)``.
            coords: ``(m, k)``.
            chunk: Weight vectors evaluated together.
            progress: Called as ``progress(done, m)``.

        Returns:
            ``(m,)`` float64 losses.
        """
        if hasattr(self.backend, "plane_losses"):
            return self.backend.plane_losses(
                self.problem,
                self.data.x_train,
                self.data.y_train,
                task=self.task,
                origin=origin,
                basis=basis,
                coords=coords,
                chunk=chunk,
                progress=progress,
            )
        coords = np.atleast_2d(coords)
        out = np.empty(len(coords))
        for i, c in enumerate(coords):
            out[i] = self.train_loss(origin + c @ basis)
            if progress is not None and ((i + 1) % chunk == 0 or i + 1 == len(coords)):
                progress(i + 1, len(coords))
        return out


def rebuild(run: SeedRun, *, device: str = "cpu", threads: int | None = None) -> SeedProblem:
    """Rebuild a seed's problem from its run directory's ``config.json`` (no training).

    Args:
        run: The seed.
        device: ``"cpu"`` or ``"cuda"`` (where the losses are evaluated).
        threads: CPU threads for the framework (None: its default).

    Returns:
        The :class:`SeedProblem`.

    Raises:
        ImportError: When the run's framework is not installed (the message names the extra).
        ValueError: For a device the framework cannot use.
        manifoldwalk.datasets.DatasetError: When the dataset's files are missing.
    """
    fields = {f.name for f in dataclasses.fields(RunConfig)}
    options = {k: v for k, v in run.config["options"].items() if k in fields}
    for key in ("seeds", "wd_lambdas"):
        if isinstance(options.get(key), list):
            options[key] = tuple(options[key])
    config = RunConfig(**options)
    spec = config.spec
    backend = load_backend(config.backend)
    backend.configure(device=device, threads=threads)
    ds = load_data(config, spec, run.seed)
    model = build_net(backend, spec, ds, run.seed)
    problem = backend.make_problem(model, ds.x_train, ds.y_train, task=spec.task)
    return SeedProblem(
        seed=run.seed,
        backend=backend,
        problem=problem,
        data=ds,
        task=spec.task,
        metric=spec.metric,
        net=spec.net,
    )
