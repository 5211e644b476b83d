"""Auto-MPG (Quinlan 1993): the 392 complete rows shipped with the package, split 314/78."""

from __future__ import annotations

import csv
import io
from importlib import resources

import numpy as np
import numpy.typing as npt

from ._base import Dataset, DatasetError
from ._split import check_count, make_rng, random_split, zscore

__all__ = ["AUTO_MPG_FEATURES", "AUTO_MPG_N_ROWS", "AUTO_MPG_N_TRAIN", "load_auto_mpg"]

AUTO_MPG_N_ROWS = 392
"""Complete rows of the 398 in the UCI file (six have no horsepower)."""

AUTO_MPG_N_TRAIN = 314
"""Training rows in the paper's split (the other 78 are the test set)."""

_NUMERIC = ("cylinders", "displacement", "horsepower", "weight", "acceleration", "year")
_ORIGINS = {1: "origin_usa", 2: "origin_europe", 3: "origin_japan"}

AUTO_MPG_FEATURES: tuple[str, ...] = _NUMERIC + tuple(_ORIGINS.values())
"""Column names of ``x``: six numeric features, then origin one-hot (USA, Europe, Japan)."""

_CSV = "auto_mpg.csv"
_SOURCE = (
    "Auto MPG (Quinlan 1993), UCI Machine Learning Repository, CC BY 4.0, "
    "https://archive.ics.uci.edu/dataset/9/auto+mpg; the 392 complete rows, "
    "manifoldwalk/datasets/data/auto_mpg.csv"
)


def _read_rows() -> list[dict[str, str]]:
    """Read the packaged CSV into one dict per row.

    Raises:
        DatasetError: If the file is missing from the installation.
    """
    resource = resources.files(__package__) / "data" / _CSV
    try:
        text = resource.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise DatasetError(f"packaged file data/{_CSV} is missing from {__package__}") from exc
    return list(csv.DictReader(io.StringIO(text)))


def _parse(rows: list[dict[str, str]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Turn CSV rows into numeric features (n, 6), origin codes (n,) and mpg (n,).

    Raises:
        DatasetError: If the table is not the 392 complete rows with origin coded 1, 2 or 3.
    """
    try:
        numeric = np.array([[float(r[c]) for c in _NUMERIC] for r in rows])
        origin = np.array([int(r["origin"]) for r in rows])
        mpg = np.array([float(r["mpg"]) for r in rows])
    except (KeyError, ValueError) as exc:
        raise DatasetError(f"data/{_CSV}: malformed or missing value ({exc})") from exc
    if len(rows) != AUTO_MPG_N_ROWS or not np.isin(origin, list(_ORIGINS)).all():
        raise DatasetError(f"data/{_CSV}: expected {AUTO_MPG_N_ROWS} rows with origin in 1..3")
    if not (np.isfinite(numeric).all() and np.isfinite(mpg).all()):
        raise DatasetError(f"data/{_CSV}: non-finite values")
    return numeric, origin, mpg


def _one_hot(origin: np.ndarray) -> np.ndarray:
    """Encode origin codes 1, 2, 3 as three 0/1 columns (USA, Europe, Japan)."""
    return (origin[:, None] == np.array(list(_ORIGINS))[None, :]).astype(np.float64)


def load_auto_mpg(
    *,
    seed: int,
    n_train: int = AUTO_MPG_N_TRAIN,
    dtype: npt.DTypeLike = np.float32,
    zscore_onehot: bool = False,
) -> Dataset:
    """Load Auto-MPG split at random into train and test (seeded), features z-scored.

    ``x`` has the columns :data:`AUTO_MPG_FEATURES`: cylinders, displacement, horsepower,
    weight, acceleration and model year, z-scored with the training mean and standard deviation,
    then the origin one-hot (USA, Europe, Japan). The one-hot columns stay 0/1 unless
    ``zscore_onehot`` is set, which z-scores them too (as TensorFlow's "basic regression"
    tutorial does). The target is fuel consumption in miles per gallon, **not** standardised,
    so that losses are in mpg² as in the paper.

    Args:
        seed: Seed of the split; equal seeds give equal splits.
        n_train: Number of training rows (the rest are test), between 1 and 391.
        dtype: Floating dtype of ``x`` and ``y`` (float32 by default).
        zscore_onehot: Also z-score the three origin columns.

    Returns:
        A regression :class:`Dataset`: ``x`` of shape ``(n, 9)``, ``y`` of shape ``(n, 1)`` in
        mpg, ``n_classes=None``.

    Raises:
        DatasetError: If the packaged CSV is missing or damaged.
        TypeError, ValueError: If ``seed`` or ``n_train`` is invalid.
    """
    numeric, origin, mpg = _parse(_read_rows())
    check_count("n_train", n_train, 1, AUTO_MPG_N_ROWS - 1)
    x = np.concatenate([numeric, _one_hot(origin)], axis=1)
    train, test = random_split(len(x), AUTO_MPG_N_ROWS - n_train, make_rng(seed))
    columns = np.arange(x.shape[1]) if zscore_onehot else np.arange(len(_NUMERIC))
    x_train, x_test = zscore(x[train], x[test], columns)
    return Dataset(
        x_train=x_train.astype(dtype),
        y_train=mpg[train, None].astype(dtype),
        x_test=x_test.astype(dtype),
        y_test=mpg[test, None].astype(dtype),
        task="regression",
        n_classes=None,
        name="auto-mpg",
        source=_SOURCE,
    )
