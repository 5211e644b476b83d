"""Auto-MPG: the packaged 392 complete rows, origin one-hot, seeded 314/78 split."""

from __future__ import annotations

import csv
from importlib import resources

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from manifoldwalk.datasets import AUTO_MPG_FEATURES, load_auto_mpg, load_dataset


def _csv_rows() -> list[dict[str, str]]:
    path = resources.files("manifoldwalk.datasets") / "data" / "auto_mpg.csv"
    with path.open(encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_packaged_csv_holds_the_392_complete_rows() -> None:
    rows = _csv_rows()
    assert len(rows) == 392
    assert all(value.strip() not in ("", "?", "NA") for row in rows for value in row.values())
    assert {int(r["year"]) for r in rows} == set(range(70, 83))
    assert {int(r["origin"]) for r in rows} == {1, 2, 3}


def test_packaged_data_has_its_source_and_licence_beside_it() -> None:
    readme = (resources.files("manifoldwalk.datasets") / "data" / "README.md").read_text("utf-8")
    for needle in (
        "UCI Machine Learning Repository",
        "Quinlan",
        "CC BY 4.0",
        "islp==0.6.0",
    ):
        assert needle in readme


def test_auto_mpg_shapes_types_and_task() -> None:
    ds = load_auto_mpg(seed=0)
    assert ds.x_train.shape == (314, 9)
    assert ds.x_test.shape == (78, 9)
    assert ds.y_train.shape == (314, 1)
    assert ds.y_test.shape == (78, 1)
    assert ds.x_train.dtype == np.float32
    assert ds.y_train.dtype == np.float32
    assert (ds.task, ds.n_classes, ds.name) == ("regression", None, "auto-mpg")
    assert len(AUTO_MPG_FEATURES) == 9
    assert AUTO_MPG_FEATURES[-3:] == (
        "origin_usa",
        "origin_europe",
        "origin_japan",
    )


def test_origin_is_one_hot_and_numeric_features_are_zscored() -> None:
    ds = load_auto_mpg(seed=1, dtype=np.float64)
    onehot = np.concatenate([ds.x_train[:, 6:], ds.x_test[:, 6:]])
    assert set(np.unique(onehot)) == {0.0, 1.0}
    np.testing.assert_array_equal(onehot.sum(axis=1), 1.0)
    np.testing.assert_array_equal(onehot.sum(axis=0), [245, 68, 79])
    np.testing.assert_allclose(ds.x_train[:, :6].mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(ds.x_train[:, :6].std(axis=0), 1.0, rtol=1e-12)


def test_zscore_onehot_option_standardises_every_column() -> None:
    ds = load_auto_mpg(seed=1, dtype=np.float64, zscore_onehot=True)
    np.testing.assert_allclose(ds.x_train.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(ds.x_train.std(axis=0), 1.0, rtol=1e-12)


def test_target_is_raw_mpg_and_the_split_covers_every_row() -> None:
    mpg = np.sort([float(r["mpg"]) for r in _csv_rows()])
    ds = load_auto_mpg(seed=2, dtype=np.float64)
    np.testing.assert_array_equal(np.sort(np.concatenate([ds.y_train, ds.y_test]).ravel()), mpg)
    assert 15.0 < ds.y_train.mean() < 30.0


def test_test_rows_are_scaled_with_training_statistics() -> None:
    rows = _csv_rows()
    weight = np.array([float(r["weight"]) for r in rows])
    ds = load_auto_mpg(seed=4, dtype=np.float64)
    z = np.concatenate([ds.x_train[:, 3], ds.x_test[:, 3]])
    scale, shift = np.polyfit(np.sort(z), np.sort(weight), 1)
    np.testing.assert_allclose(np.sort(z * scale + shift), np.sort(weight), atol=1e-6)
    train_raw = ds.x_train[:, 3] * scale + shift
    np.testing.assert_allclose([train_raw.mean(), train_raw.std()], [shift, scale], rtol=1e-9)


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_split_is_reproducible_and_seed_dependent(seed: int) -> None:
    a, b = load_auto_mpg(seed=seed), load_dataset("auto_mpg", seed=seed)
    np.testing.assert_array_equal(a.x_test, b.x_test)
    np.testing.assert_array_equal(a.y_train, b.y_train)
    other = load_auto_mpg(seed=seed + 1)
    assert not np.array_equal(a.y_test, other.y_test)


def test_custom_train_size() -> None:
    ds = load_dataset("auto-mpg", seed=0, n_train=300)
    assert (len(ds.x_train), len(ds.x_test)) == (300, 92)
