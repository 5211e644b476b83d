"""One walk against another: what every faster or batched driver's test asks of its walks."""

from __future__ import annotations

import numpy as np

import manifoldwalk as mw

COUNTS = ("step", "n_predictor", "n_corrector", "n_grad_evals")


def assert_same_walk(chunked: mw.WalkResult, eager: mw.WalkResult, rtol: float = 1e-9) -> None:
    """Same stop, counts and history rows; values, θ and the trajectory within ``rtol`` (and
    1e-12 absolute); ``eager`` must be a float64 walk (θ a numpy, JAX or CPU torch array)."""
    assert np.asarray(eager.theta).dtype == np.float64
    assert chunked.stop_reason == eager.stop_reason, (chunked.message, eager.message)
    assert chunked.message.split(" (")[0] == eager.message.split(" (")[0]
    for k in ("n_predictor", "n_corrector", "n_grad_evals"):
        assert getattr(chunked, k) == getattr(eager, k), k
    assert list(chunked.history) == list(eager.history)
    for k, column in eager.history.items():
        if k in COUNTS:
            np.testing.assert_array_equal(chunked.history[k], column, err_msg=k)
        else:
            np.testing.assert_allclose(chunked.history[k], column, rtol=rtol, atol=1e-12, err_msg=k)
    np.testing.assert_allclose(np.asarray(chunked.theta), np.asarray(eager.theta), rtol, 1e-12)
    if eager.trajectory is None:
        assert chunked.trajectory is None
    else:
        np.testing.assert_allclose(
            np.asarray(chunked.trajectory), np.asarray(eager.trajectory), rtol, 1e-12
        )
    for k in ("loss", "reg", "angle", "lam", "kkt", "max_deviation", "max_predictor_step"):
        np.testing.assert_allclose(
            float(getattr(chunked, k)), float(getattr(eager, k)), rtol, 1e-12, err_msg=k
        )
