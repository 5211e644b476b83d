"""Where the experiment layer meets a framework: the paper backend, loaded by name.

The frameworks are reached only through a *paper backend*: the ``paper`` subpackage of an
adapter (``manifoldwalk_torch.paper`` and its JAX / Keras twins), imported by name at run time,
so that ``import manifoldwalk`` stays light and a missing framework is one clear error.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, cast

import numpy as np

if TYPE_CHECKING:
    from manifoldwalk.experiments._paper_parts import BackendTrain

__all__ = ["BACKENDS", "OPTIONAL", "REQUIRED", "PaperBackend", "load_backend"]

BACKENDS = ("torch", "jax", "tensorflow")
"""Backend names accepted by :func:`load_backend` and ``--backend``."""


class PaperBackend(Protocol):
    """What the experiment layer calls on a paper backend (a module, ``<adapter>.paper``).

    A *model* is whatever the framework trains (a PyTorch ``nn.Module``, a JAX
    ``(apply_fn, params)`` pair, a Keras model); a *problem* is the adapter's Problem; θ is the
    adapter's flat parameter array. The members below are required (:data:`REQUIRED`); a
    backend may also offer the members of :data:`OPTIONAL`, which the experiment layer looks
    up with ``getattr`` and does without:

    - ``walk_batch(problems, thetas, *, metrics, callback, resume_from, steps_per_sync,
      **options) -> list[WalkResult]``: walks several seeds of one net at once
      (``--batch-seeds``); the adapter's own ``walk_batch`` (PyTorch, JAX).
    - ``plane_losses(problem, x, y, *, task, origin, basis, coords, chunk, progress)
      -> np.ndarray``: the loss at many weight vectors in one batched call, for the
      loss-surface figures (PyTorch); without it they evaluate one ``problem.loss`` per point.
    - ``COMPILED_WALKS``: True where the runner should walk with the compiled driver
      (``steps_per_sync`` set to the experiment's record interval; JAX).
    - ``train_batched(models, xs, ys, *, task, epochs, weight_decays, seeds, reg="l2",
      progress=None) -> (models, n_example_grads)``: trains M members (nets of one
      ``build_net`` architecture, each with its own training set, all of one length, its λ and
      its shuffling seed) in ONE batched computation (stacked parameters, every operation
      batched over the members; Adam on the stacked parameters with the summed member losses,
      each member's λ entering as 2·λ_m·p_m on its penalised parameters). Member m ends as
      ``train(models[m], xs[m], ys[m], task=task, epochs=epochs,
      weight_decay=weight_decays[m], reg=reg, seed=seeds[m])`` would leave it, up to
      floating-point rounding; ``progress(epoch, epochs, loss)`` gets the members' mean epoch
      loss; returns the trained models and each member's example-gradient count, in member
      order. Raises ValueError for no members, lists of different lengths, training sets of
      different lengths, nets of different architecture and whatever ``train`` refuses. The
      weight-decay sweep and, with ``--batch-seeds``, phase 1 train through it (PyTorch, JAX);
      without it they train member by member through ``train``
      (:mod:`manifoldwalk.experiments._batched_train`).
    """

    def configure(self, *, device: str = "cpu", threads: int | None = None) -> None:
        """Choose the device (``"cpu"`` or ``"cuda"``) and the intra-op CPU threads (None: the
        framework's default); raise ValueError for a device the backend cannot use."""

    def build_net(
        self,
        net: str,
        input_shape: Sequence[int],
        n_out: int,
        *,
        hidden: Sequence[int] = (100, 100, 100),
        seed: int,
        dtype: str = "float32",
    ) -> Any:
        """Build one of the paper's nets (``"ff"``, ``"mnist-cnv"``, ``"cifar10-cnv"``) for
        inputs of ``input_shape`` and ``n_out`` outputs, Glorot-normal initialised from
        ``seed``, in ``dtype`` (``"float32"`` or ``"float64"``); ``hidden`` are the feed-forward
        net's widths. Raise ValueError for a net or dtype the backend does not build."""

    # Every backend's train is made by paper_train, so its signature is written there once.
    train: BackendTrain
    """``train(model, x, y, *, task, epochs, weight_decay=0.0, reg="l2", seed=0, progress=None)
    -> (model, n_example_grads)``: train ``model`` on ``(x, y)`` with Adam(1e-3) on minibatches
    of 32 of ``L + weight_decay · R`` (R: ``"l2"`` or ``"l2-weights"``), shuffled from ``seed``,
    calling ``progress(epoch, epochs, loss)`` after every epoch; return the trained model and
    the number of example-wise gradient evaluations. The function that
    :func:`manifoldwalk.experiments._paper_parts.paper_train` returns, which documents the
    arguments and their types."""

    def make_problem(
        self, model: Any, x: np.ndarray, y: np.ndarray, *, task: str, reg: str = "l2"
    ) -> Any:
        """Wrap the model's full-batch training loss on ``(x, y)`` (cross-entropy for
        ``"classification"``, MSE for ``"regression"``) and the walk's regulariser ``reg`` as
        a Problem whose ``theta0`` is the model's current parameters."""

    def held_out(self, problem: Any, x: np.ndarray, y: np.ndarray) -> tuple[Any, Any]:
        """Return a held-out set in the framework, on the problem's device and (floating data)
        in θ's dtype, made once for the evaluation of every history record."""

    def from_numpy(self, array: np.ndarray, like: Any) -> Any:
        """Return a NumPy vector as a flat θ of the dtype (and device) of ``like``."""


REQUIRED = ("configure", "build_net", "train", "make_problem", "held_out", "from_numpy")
"""The members every paper backend has (those of :class:`PaperBackend`)."""

OPTIONAL: Mapping[str, str] = {
    "walk_batch": "walks several seeds at once (--batch-seeds)",
    "plane_losses": "batched losses for the loss-surface figures",
    "COMPILED_WALKS": "walks with the compiled driver",
    "train_batched": "trains many nets as one batched computation (weight-decay sweep, phase 1)",
}
"""The members a paper backend may offer, with what they give (see :class:`PaperBackend`)."""


def load_backend(name: str) -> PaperBackend:
    """Import the paper backend of a framework (``<adapter>.paper``).

    Args:
        name: ``"torch"``, ``"jax"`` or ``"tensorflow"``.

    Returns:
        The module ``manifoldwalk_torch.paper``, ``manifoldwalk_jax.paper`` or
        ``manifoldwalk_tf.paper``, which has the members of :class:`PaperBackend`.

    Raises:
        ValueError: For an unknown name (the valid ones are listed).
        ImportError: When the framework is missing (the message names the extra to install),
            or when the module lacks a member of :data:`REQUIRED` (the message names them).
    """
    from manifoldwalk._load_adapter import load_adapter

    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; choose one of: {', '.join(BACKENDS)}")
    package = load_adapter(name)
    module = importlib.import_module(f"{package.__name__}.paper")
    missing = [member for member in REQUIRED if not callable(getattr(module, member, None))]
    if missing:
        raise ImportError(
            f"{module.__name__} is not a paper backend: it lacks {', '.join(missing)} "
            "(see manifoldwalk.experiments.backend.PaperBackend)"
        )
    return cast(PaperBackend, module)
