"""The shared adapter test suite: one abstract class that each adapter's test file subclasses.

``BackendSuite`` is not collected by itself (no ``Test`` prefix). A framework's test file
subclasses it as ``class TestTorchAdapter(BackendSuite)`` and provides the hooks below; every
test method then runs against that framework. The suite talks to an adapter only through the
adapter API contract (docs/adapter_api.md) and these hooks, and checks values against a numpy
float64 reference of the same tanh MLP.

Hooks (class attributes):

- ``framework``: the name ``manifoldwalk._load_adapter.load_adapter`` takes: ``"torch"``, ``"jax"``
  or ``"tensorflow"``.
- ``adapter_module``: the adapter's import package, e.g. ``"manifoldwalk_torch"``.
- ``framework_modules``: the top-level modules whose absence means "framework not installed",
  e.g. ``("torch",)``, ``("jax", "jaxlib")``, ``("tensorflow", "keras")``.
- ``extra``: the ``pip install manifoldwalk[<extra>]`` name: ``"torch"``, ``"jax"``,
  ``"tensorflow"``.
- ``array_type``: the type θ has (``torch.Tensor``, ``jax.Array``, ``numpy.ndarray``).

Hooks (methods):

- ``make_mlp_problem(layers, x, y, *, task, dtype, reg="l2", batch_size=None,
  freeze_first=False) -> problem``: build, through the adapter's entry point, a problem for
  the MLP ``layers`` = ``[(W1, b1), (W2, b2), ...]`` (numpy float64, ``W`` of shape
  ``(n_in, n_out)``, the layout ``h @ W + b``), tanh after every layer but the last, on data
  ``x`` (numpy float64, ``(n, n_in)``) and ``y``. ``task="classification"``: ``y`` int64 labels
  ``(n,)`` and the mean softmax cross-entropy of the logits; ``task="regression"``: ``y``
  float64 ``(n, n_out)`` and the mean squared error over all entries. ``dtype`` is
  ``"float32"`` or ``"float64"``: model, θ and inputs in that precision. ``reg`` and
  ``batch_size`` are passed to the entry point unchanged. ``freeze_first``: the first layer's
  weight and bias are frozen (``requires_grad=False`` / non-trainable), so not part of θ.
- ``canonical(problem, theta) -> list[np.ndarray]``: the *trainable* parameters in θ as numpy
  float64 arrays in the canonical order and layout ``[W1, b1, W2, b2, ...]`` (``W`` as
  ``(n_in, n_out)``); with ``freeze_first`` the list starts at ``W2``.
- ``to_numpy(theta) -> np.ndarray``: a flat θ (or gradient) as a 1-D numpy array, same dtype.
- ``from_numpy(array, like) -> θ``: a 1-D numpy array as a flat θ of ``like``'s array type,
  dtype and device.
- ``roundtrip(problem, theta) -> θ'``: write θ into the framework's own structure (``assign``
  into the model, or the pytree that ``unflatten`` returns for JAX) and read it back as a flat
  θ through a freshly built problem on that structure.
- ``device_of(theta)`` and ``model_device(problem)``: θ's device and the model's device, as
  comparable objects (the test asserts they are equal).
- ``data_arrays(x, y) -> (x, y)``: numpy data as the adapter's ``evaluate`` takes it (default:
  unchanged); x is already in the problem's dtype.
- ``quartic_reg() -> callable``: θ ↦ Σθ⁴ as a differentiable function of the flat θ in the
  framework (default: through the array API, which serves torch and jax; TF overrides it).
- Bad input, each a zero-argument method that calls the adapter's entry point and, if the entry
  point itself does not raise, the returned problem's ``loss_and_grad(theta0)``; the suite
  expects ``ValueError`` or ``TypeError`` with the quoted words in the message (any case):
  ``make_untrainable()`` (a model with no trainable parameters: ``"no trainable parameters"``),
  ``make_mismatched()`` (inputs and labels of different lengths: ``"same number of examples"``),
  ``make_nonscalar_loss()`` (a loss function returning one value per example: ``"scalar"``),
  ``make_integer_params()`` (a model with an integer-valued parameter: ``"integer"``).

The Iris walk test uses a 4-16-16-3 tanh net trained here, in numpy, with 200 steps of
full-batch Adam (:func:`iris_trained_layers`: L0 ≈ 0.04, test accuracy 0.97), so every
framework walks from the same weights. It walks 300 predictor steps with ``tau=1e-10`` twice:
with the default scheme in float32 (every accepted point, i.e. the history and the final θ,
keeps |L − L0| ≤ 1e-5; a predictor step may land up to ~3e-4 off before the Newton corrector
brings it back, so ``max_deviation`` ≤ 1e-3; ‖θ‖² falls from 74.5 to about 48) and with the
paper's scheme in float64 (its 1e-4 floor steps never leave the 1e-5 band: ``max_deviation``
≤ 1e-5 over every point visited).
"""

from __future__ import annotations

import functools
import subprocess
import sys
import textwrap
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from manifoldwalk import Record, Stop, Tolerance, check_gradient, walk
from manifoldwalk._array import namespace
from manifoldwalk._load_adapter import load_adapter
from manifoldwalk.datasets import load_dataset

SIZES = (5, 6, 4, 3)
"""The small MLP the exact-value tests use: 79 parameters."""
N_EXAMPLES = 20


# --------------------------------------------------------------------------------------------
# numpy float64 reference of the tanh MLP
# --------------------------------------------------------------------------------------------


def init_layers(sizes: tuple[int, ...], seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Random MLP weights (Glorot-normal scale) and small random biases, float64."""
    rng = np.random.default_rng(seed)
    layers = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True):
        w = rng.normal(scale=np.sqrt(2.0 / (n_in + n_out)), size=(n_in, n_out))
        layers.append((w, rng.normal(scale=0.1, size=n_out)))
    return layers


def reference_forward(layers: list[tuple[np.ndarray, np.ndarray]], x: np.ndarray) -> list:
    """The activations of every layer (input first, logits last)."""
    acts = [np.asarray(x, dtype=np.float64)]
    for i, (w, b) in enumerate(layers):
        z = acts[-1] @ w + b
        acts.append(z if i == len(layers) - 1 else np.tanh(z))
    return acts


def reference_loss_and_grads(
    layers: list[tuple[np.ndarray, np.ndarray]], x: np.ndarray, y: np.ndarray, task: str
) -> tuple[float, list[np.ndarray]]:
    """Mean cross-entropy (or MSE) and its gradients ``[dW1, db1, ...]``, float64."""
    acts = reference_forward(layers, x)
    z = acts[-1]
    n = z.shape[0]
    if task == "classification":
        zmax = z.max(axis=1, keepdims=True)
        lse = zmax[:, 0] + np.log(np.exp(z - zmax).sum(axis=1))
        loss = float(np.mean(lse - z[np.arange(n), y]))
        dz = np.exp(z - lse[:, None])
        dz[np.arange(n), y] -= 1.0
        dz /= n
    else:
        diff = z - y
        loss = float(np.mean(diff * diff))
        dz = 2.0 * diff / diff.size
    grads: list[np.ndarray] = []
    for i in range(len(layers) - 1, -1, -1):
        w, _ = layers[i]
        grads[:0] = [acts[i].T @ dz, dz.sum(axis=0)]
        if i:
            dz = (dz @ w.T) * (1.0 - acts[i] ** 2)
    return loss, grads


def flat(arrays: list[np.ndarray]) -> np.ndarray:
    """Concatenate arrays into one flat float64 vector."""
    return np.concatenate([np.ravel(a) for a in arrays]).astype(np.float64)


def rel_err(a: Any, b: Any) -> float:
    """‖a − b‖ / max(‖b‖, tiny) in float64."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300))


def assert_same_walk(a: Any, b: Any, theta_a: np.ndarray, theta_b: np.ndarray) -> None:
    """Two WalkResults took the same path: the same steps and stop, θ and R within rounding.

    R is compared on its starting scale: on these small nets an l2-weights walk drives the
    kernels to zero, where R's relative rounding error is meaningless.
    """
    assert (b.n_predictor, b.n_corrector, b.stop_reason) == (
        a.n_predictor,
        a.n_corrector,
        a.stop_reason,
    )
    assert a.n_predictor > 10 and a.n_corrector > 0  # both kinds of step were taken
    np.testing.assert_allclose(theta_b, theta_a, rtol=1e-9, atol=1e-11)
    scale = a.history["reg"][0]
    np.testing.assert_allclose(b.history["reg"], a.history["reg"], rtol=1e-9, atol=1e-12 * scale)


def small_data(task: str, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """N_EXAMPLES random inputs for :data:`SIZES` and labels (or regression targets)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(N_EXAMPLES, SIZES[0]))
    if task == "classification":
        return x, rng.integers(0, SIZES[-1], size=N_EXAMPLES).astype(np.int64)
    return x, rng.normal(size=(N_EXAMPLES, SIZES[-1]))


@functools.lru_cache(maxsize=1)
def iris_trained_layers(steps: int = 200, lr: float = 1e-2) -> tuple:
    """A 4-16-16-3 tanh net trained on Iris (seed 0) with full-batch Adam in numpy (L ≈ 0.04).

    Returns:
        ``(layers, x_train, y_train, x_test, y_test)``, float64 / int64 numpy arrays.
    """
    data = load_dataset("iris", seed=0, dtype=np.float64)
    layers = init_layers((4, 16, 16, 3), seed=0)
    params = [a.copy() for layer in layers for a in layer]
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    for t in range(1, steps + 1):
        pairs = list(zip(params[::2], params[1::2], strict=True))
        _, grads = reference_loss_and_grads(pairs, data.x_train, data.y_train, "classification")
        for i, g in enumerate(grads):
            m[i] = 0.9 * m[i] + 0.1 * g
            v[i] = 0.999 * v[i] + 0.001 * g * g
            mhat, vhat = m[i] / (1 - 0.9**t), v[i] / (1 - 0.999**t)
            params[i] = params[i] - lr * mhat / (np.sqrt(vhat) + 1e-8)
    pairs = list(zip(params[::2], params[1::2], strict=True))
    return pairs, data.x_train, data.y_train, data.x_test, data.y_test


# --------------------------------------------------------------------------------------------
# the suite
# --------------------------------------------------------------------------------------------


class BackendSuite:
    """Tests every adapter must pass; subclass it and provide the hooks (module docstring)."""

    framework: str
    adapter_module: str
    framework_modules: tuple[str, ...]
    extra: str
    array_type: type

    # ---- hooks the subclass provides -------------------------------------------------------

    def make_mlp_problem(
        self,
        layers: list[tuple[np.ndarray, np.ndarray]],
        x: np.ndarray,
        y: np.ndarray,
        *,
        task: str,
        dtype: str,
        reg: Any = "l2",
        batch_size: int | None = None,
        freeze_first: bool = False,
    ) -> Any:
        """See the module docstring."""
        raise NotImplementedError

    def canonical(self, problem: Any, theta: Any) -> list[np.ndarray]:
        """See the module docstring."""
        raise NotImplementedError

    def to_numpy(self, theta: Any) -> np.ndarray:
        """See the module docstring."""
        raise NotImplementedError

    def from_numpy(self, array: np.ndarray, like: Any) -> Any:
        """See the module docstring."""
        raise NotImplementedError

    def roundtrip(self, problem: Any, theta: Any) -> Any:
        """See the module docstring."""
        raise NotImplementedError

    def device_of(self, theta: Any) -> Any:
        """See the module docstring."""
        raise NotImplementedError

    def model_device(self, problem: Any) -> Any:
        """See the module docstring."""
        raise NotImplementedError

    def data_arrays(self, x: np.ndarray, y: np.ndarray) -> tuple[Any, Any]:
        """See the module docstring (default: numpy unchanged)."""
        return x, y

    def quartic_reg(self) -> Callable[[Any], Any]:
        """See the module docstring (default: through the array API)."""

        def quartic(theta: Any) -> Any:
            xp = namespace(theta)
            sq = theta * theta
            return xp.sum(sq * sq)

        return quartic

    def make_untrainable(self) -> Any:
        """See the module docstring."""
        raise NotImplementedError

    def make_mismatched(self) -> Any:
        """See the module docstring."""
        raise NotImplementedError

    def make_nonscalar_loss(self) -> Any:
        """See the module docstring."""
        raise NotImplementedError

    def make_integer_params(self) -> Any:
        """See the module docstring."""
        raise NotImplementedError

    # ---- helpers ---------------------------------------------------------------------------

    def small_problem(self, task: str = "classification", dtype: str = "float64", **kwargs):
        """The small MLP problem with its reference layers and data."""
        layers = init_layers(SIZES, seed=0)
        x, y = small_data(task)
        problem = self.make_mlp_problem(layers, x, y, task=task, dtype=dtype, **kwargs)
        return problem, layers, x, y

    def loss_grad_np(self, problem: Any, theta: Any) -> tuple[float, np.ndarray]:
        loss, grad = problem.loss_and_grad(theta)
        return float(self.to_numpy(loss)), self.to_numpy(grad)

    def to_float(self, value: Any) -> float:
        return float(self.to_numpy(value))

    # ---- θ and the model -------------------------------------------------------------------

    def test_theta0_is_flat_on_model_device(self):
        problem, layers, *_ = self.small_problem(dtype="float32")
        theta = problem.theta0
        assert isinstance(theta, self.array_type)
        assert tuple(theta.shape) == (problem.n_params,)
        assert problem.n_params == sum(w.size + b.size for w, b in layers)
        assert self.to_numpy(theta).dtype == np.float32
        assert self.device_of(theta) == self.model_device(problem)
        np.testing.assert_array_equal(
            flat(self.canonical(problem, theta)),
            flat([a for layer in layers for a in layer]).astype(np.float32),
        )

    def test_theta_of_another_length_or_dtype_is_refused_clearly(self):
        """A θ of the wrong length, or float64 on a float32 model, is refused by the adapter
        with the length it needs or the cast to make, not by an error from deep inside."""
        problem, *_ = self.small_problem(dtype="float32")
        theta, n = self.to_numpy(problem.theta0), problem.n_params
        short = self.from_numpy(theta[:-1], problem.theta0)
        for call in (
            lambda: walk(problem, short, stop=Stop(max_steps=1)),
            lambda: problem.unflatten(short),
        ):
            with pytest.raises(ValueError, match=f"θ must be a flat .* of length {n}"):
                call()
        like64 = self.small_problem(dtype="float64")[0].theta0
        wide = self.from_numpy(theta.astype(np.float64), like64)
        with pytest.raises(TypeError, match=r"θ has dtype .*float64.* cast θ with .*float32"):
            walk(problem, wide, stop=Stop(max_steps=1))

    def test_theta_dtype_follows_model(self):
        problem, *_ = self.small_problem(dtype="float64")
        assert self.to_numpy(problem.theta0).dtype == np.float64
        _, grad = problem.loss_and_grad(problem.theta0)
        assert self.to_numpy(grad).dtype == np.float64

    def test_flat_roundtrip_is_exact(self):
        for dtype in ("float32", "float64"):
            problem, *_ = self.small_problem(dtype=dtype)
            rng = np.random.default_rng(3)
            target = rng.normal(size=problem.n_params).astype(dtype)
            theta = self.from_numpy(target, problem.theta0)
            back = self.roundtrip(problem, theta)
            assert isinstance(back, self.array_type)
            np.testing.assert_array_equal(self.to_numpy(back), target)

    def test_frozen_parameters_are_not_in_theta(self):
        layers = init_layers(SIZES, seed=0)
        x, y = small_data("classification")
        problem = self.make_mlp_problem(
            layers, x, y, task="classification", dtype="float64", freeze_first=True
        )
        assert problem.n_params == sum(w.size + b.size for w, b in layers[1:])
        loss, grad = self.loss_grad_np(problem, problem.theta0)
        ref_loss, ref_grads = reference_loss_and_grads(layers, x, y, "classification")
        assert abs(loss - ref_loss) <= 1e-10 * abs(ref_loss)
        got = flat(self.canonical(problem, self.from_numpy(grad, problem.theta0)))
        assert rel_err(got, flat(ref_grads[2:])) <= 1e-10

    # ---- loss and gradient -----------------------------------------------------------------

    @pytest.mark.parametrize("task", ["classification", "regression"])
    def test_loss_and_grad_match_reference_float64(self, task):
        problem, layers, x, y = self.small_problem(task=task)
        ref_loss, ref_grads = reference_loss_and_grads(layers, x, y, task)
        loss, grad = self.loss_grad_np(problem, problem.theta0)
        assert abs(loss - ref_loss) <= 1e-10 * abs(ref_loss)
        got = flat(self.canonical(problem, self.from_numpy(grad, problem.theta0)))
        assert rel_err(got, flat(ref_grads)) <= 1e-10
        assert abs(self.to_float(problem.loss(problem.theta0)) - ref_loss) <= 1e-10 * ref_loss
        np.testing.assert_allclose(self.to_numpy(problem.grad(problem.theta0)), grad, rtol=1e-12)

    def test_loss_and_grad_match_reference_float32(self):
        problem, layers, x, y = self.small_problem(dtype="float32")
        cast = [(w.astype(np.float32).astype(np.float64), b.astype(np.float32)) for w, b in layers]
        ref_loss, ref_grads = reference_loss_and_grads(
            cast, x.astype(np.float32), y, "classification"
        )
        loss, grad = self.loss_grad_np(problem, problem.theta0)
        assert grad.dtype == np.float32
        assert abs(loss - ref_loss) <= 1e-5 * abs(ref_loss)
        got = flat(self.canonical(problem, self.from_numpy(grad, problem.theta0)))
        assert rel_err(got, flat(ref_grads)) <= 1e-5

    def test_gradient_matches_central_finite_differences(self):
        problem, *_ = self.small_problem(dtype="float64")
        theta = self.to_numpy(problem.theta0)
        _, grad = self.loss_grad_np(problem, problem.theta0)
        h = 1e-5
        fd = np.empty_like(theta)
        for i in range(theta.size):
            e = np.zeros_like(theta)
            e[i] = h
            up = self.to_float(problem.loss(self.from_numpy(theta + e, problem.theta0)))
            down = self.to_float(problem.loss(self.from_numpy(theta - e, problem.theta0)))
            fd[i] = (up - down) / (2 * h)
        assert rel_err(grad, fd) <= 1e-6

    def test_check_gradient_slope_two(self):
        problem, *_ = self.small_problem(dtype="float64")
        report = check_gradient(problem, problem.theta0)
        assert report.passed, report.message
        assert abs(report.slope - 2.0) <= 0.1

    def test_batched_accumulation_equals_full_batch(self):
        full, *_ = self.small_problem(dtype="float64")
        batched, *_ = self.small_problem(dtype="float64", batch_size=7)
        loss_f, grad_f = self.loss_grad_np(full, full.theta0)
        loss_b, grad_b = self.loss_grad_np(batched, batched.theta0)
        assert abs(loss_b - loss_f) <= 1e-12 * abs(loss_f)
        assert rel_err(grad_b, grad_f) <= 1e-12

    # ---- regularisers ----------------------------------------------------------------------

    def test_reg_l2_is_squared_norm_of_all_parameters(self):
        problem, *_ = self.small_problem(reg="l2")
        theta = self.to_numpy(problem.theta0)
        assert abs(self.to_float(problem.reg(problem.theta0)) - theta @ theta) <= 1e-12 * (
            theta @ theta
        )
        reg_grad = problem.reg_grad(problem.theta0)
        assert isinstance(reg_grad, self.array_type)
        np.testing.assert_allclose(self.to_numpy(reg_grad), 2 * theta, rtol=1e-14)

    def test_reg_l2_weights_excludes_biases(self):
        problem, layers, *_ = self.small_problem(reg="l2-weights")
        weights = [w for w, _ in layers]
        expected = sum(float(np.sum(w * w)) for w in weights)
        assert abs(self.to_float(problem.reg(problem.theta0)) - expected) <= 1e-12 * expected
        reg_grad = problem.reg_grad(problem.theta0)
        got = self.canonical(problem, reg_grad)
        want = [g for w, b in layers for g in (2 * w, np.zeros_like(b))]
        for a, b in zip(got, want, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-14, atol=0)

    def test_reg_callable_is_differentiated(self):
        problem, *_ = self.small_problem(reg=self.quartic_reg())
        theta = self.to_numpy(problem.theta0)
        expected = float(np.sum(theta**4))
        assert abs(self.to_float(problem.reg(problem.theta0)) - expected) <= 1e-12 * expected
        reg_grad = problem.reg_grad(problem.theta0)
        assert isinstance(reg_grad, self.array_type)
        np.testing.assert_allclose(self.to_numpy(reg_grad), 4 * theta**3, rtol=1e-12)

    def test_unknown_reg_is_refused(self):
        with pytest.raises(ValueError, match="l2-weights"):
            self.small_problem(reg="l1")

    # ---- evaluation ------------------------------------------------------------------------

    @pytest.mark.parametrize("task", ["classification", "regression"])
    def test_evaluate_in_batches(self, task):
        problem, layers, *_ = self.small_problem(task=task)
        x, y = small_data(task, seed=7)
        ref_loss, _ = reference_loss_and_grads(layers, x, y, task)
        logits = reference_forward(layers, x)[-1]
        out = problem.evaluate(problem.theta0, *self.data_arrays(x, y), task=task, batch_size=7)
        assert abs(out["loss"] - ref_loss) <= 1e-10 * ref_loss
        if task == "classification":
            assert set(out) == {"loss", "accuracy"}
            assert out["accuracy"] == pytest.approx(np.mean(logits.argmax(axis=1) == y), abs=0)
        else:
            assert set(out) == {"loss", "mse"}
            assert out["mse"] == pytest.approx(np.mean((logits - y) ** 2), rel=1e-10)

    # ---- the walk --------------------------------------------------------------------------

    @pytest.mark.parametrize(
        ("scheme", "dtype", "max_dev"), [("default", "float32", 1e-3), ("paper", "float64", 1e-5)]
    )
    def test_walk_on_trained_iris_net(self, scheme, dtype, max_dev):
        layers, x_train, y_train, x_test, y_test = iris_trained_layers()
        problem = self.make_mlp_problem(
            layers, x_train, y_train, task="classification", dtype=dtype
        )
        theta0 = problem.theta0
        loss0 = self.to_float(problem.loss(theta0))
        reg0 = self.to_float(problem.reg(theta0))
        assert 0.01 < loss0 < 0.1  # trained, yet not at a minimum
        x_eval, y_eval = self.data_arrays(x_test.astype(dtype), y_test)
        result = walk(
            problem,
            theta0,
            scheme=scheme,
            tolerance=Tolerance(tau=1e-10),
            stop=Stop(max_steps=300),
            record=Record(
                every=50,
                metrics={"test_acc": lambda t: problem.evaluate(t, x_eval, y_eval)["accuracy"]},
            ),
        )
        assert result.stop_reason == "max_steps", result.message
        assert result.n_predictor == 300
        # every accepted point, and (paper scheme) every point visited, is on the level set
        assert np.all(np.abs(result.history["loss"] - loss0) <= 1e-5)
        assert abs(self.to_float(problem.loss(result.theta)) - loss0) <= 1e-5
        assert result.max_deviation <= max_dev
        assert result.reg < reg0 - 1.0
        assert self.to_float(problem.reg(result.theta)) == pytest.approx(result.reg, rel=1e-6)
        assert isinstance(result.theta, self.array_type)
        assert self.to_numpy(result.theta).dtype == np.dtype(dtype)
        assert self.device_of(result.theta) == self.model_device(problem)
        assert np.all(result.history["test_acc"] >= 0.9)

    # ---- bad input -------------------------------------------------------------------------

    @pytest.mark.parametrize(
        ("hook", "words"),
        [
            ("make_untrainable", "no trainable parameters"),
            ("make_mismatched", "same number of examples"),
            ("make_nonscalar_loss", "scalar"),
            ("make_integer_params", "integer"),
        ],
    )
    def test_bad_input_is_refused_clearly(self, hook, words):
        with pytest.raises((ValueError, TypeError), match=f"(?i){words}"):
            problem = getattr(self, hook)()
            problem.loss_and_grad(problem.theta0)

    def test_missing_framework_names_the_extra(self):
        blocked = ", ".join(repr(m) for m in self.framework_modules)
        code = textwrap.dedent(
            f"""
            import sys
            for name in ({blocked},):
                sys.modules[name] = None
            messages = []
            try:
                import {self.adapter_module}
            except ImportError as err:
                messages.append(str(err))
            from manifoldwalk._load_adapter import load_adapter
            try:
                load_adapter({self.framework!r})
            except ImportError as err:
                messages.append(str(err))
            print("\\n".join(messages))
            """
        )
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
        ).stdout.splitlines()
        assert len(out) == 2, out
        for line in out:
            assert f"pip install manifoldwalk[{self.extra}]" in line

    def test_load_adapter_returns_the_package(self):
        module = load_adapter(self.framework)
        assert module.__name__ == self.adapter_module
