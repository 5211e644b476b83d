"""load_dataset dispatch, the Dataset type, and the package's light imports."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from manifoldwalk import datasets
from manifoldwalk.datasets import DATASET_NAMES, Dataset, DatasetError, load_dataset


def test_unknown_name_lists_the_valid_names() -> None:
    with pytest.raises(ValueError, match="unknown dataset 'svhn'") as info:
        load_dataset("svhn", seed=0)
    for name in ("iris", "auto-mpg", "mnist", "fashion-mnist", "cifar10"):
        assert name in str(info.value)
    assert set(DATASET_NAMES) == {
        "iris",
        "auto-mpg",
        "mnist",
        "mnist5k",
        "fashion-mnist",
        "cifar10",
    }


def test_seed_is_keyword_only_and_required() -> None:
    with pytest.raises(TypeError):
        load_dataset("iris")  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        load_dataset("iris", 0)  # type: ignore[misc]


@pytest.mark.parametrize("name", ["iris", "auto-mpg"])
def test_packaged_datasets_refuse_a_data_dir(name: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="data_dir must be None"):
        load_dataset(name, seed=0, data_dir=tmp_path)


def test_dtype_is_passed_through() -> None:
    ds = load_dataset("auto-mpg", seed=0, dtype=np.float64)
    assert ds.x_train.dtype == np.float64
    assert ds.y_test.dtype == np.float64


def test_dataset_error_is_a_value_error() -> None:
    assert issubclass(DatasetError, ValueError)


def _arrays(n: int = 3, y: np.ndarray | None = None) -> dict:
    labels = np.zeros(n, np.int64) if y is None else y
    return {
        "x_train": np.zeros((n, 2)),
        "y_train": labels,
        "x_test": np.zeros((n, 2)),
        "y_test": labels,
    }


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"task": "ranking", "n_classes": None}, "task must be"),
        ({"task": "classification", "n_classes": None}, "n_classes >= 2"),
        ({"task": "regression", "n_classes": 3}, "n_classes=None"),
    ],
)
def test_dataset_checks_task_and_classes(fields: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Dataset(**_arrays(), name="t", source="s", **fields)


def test_dataset_checks_targets() -> None:
    with pytest.raises(ValueError, match="3 inputs but 2 targets"):
        Dataset(
            **{**_arrays(), "y_train": np.zeros(2, np.int64)},
            task="classification",
            n_classes=2,
            name="t",
            source="s",
        )
    with pytest.raises(ValueError, match="int64"):
        Dataset(
            **_arrays(y=np.zeros(3, np.int32)),
            task="classification",
            n_classes=2,
            name="t",
            source="s",
        )
    with pytest.raises(ValueError, match=r"shape \(n, k\)"):
        Dataset(
            **_arrays(y=np.zeros(3)),
            task="regression",
            n_classes=None,
            name="t",
            source="s",
        )


def test_dataset_is_frozen() -> None:
    ds = load_dataset("auto-mpg", seed=0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        ds.name = "other"  # type: ignore[misc]


def test_public_names_have_docstrings() -> None:
    for name in datasets.__all__:
        obj = getattr(datasets, name)
        if callable(obj):
            assert (obj.__doc__ or "").strip(), name


def test_importing_and_loading_pulls_in_no_deep_learning_framework() -> None:
    code = (
        "import sys, manifoldwalk.datasets as d; d.load_dataset('auto-mpg', seed=0); "
        "print(sorted(m for m in ('torch', 'jax', 'tensorflow', 'sklearn') if m in sys.modules))"
    )
    root = Path(datasets.__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    assert out.stdout.strip() == "[]"
