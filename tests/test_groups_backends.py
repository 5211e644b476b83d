"""``groups=``: one k-constraint problem holding the mean loss of each of k groups of examples,
in every adapter (``manifoldwalk_torch.from_model``, ``manifoldwalk_jax.from_apply``,
``manifoldwalk_tf.from_model``).

``GroupsSuite`` holds the tests; each framework's class below supplies two hooks, ``make(x, y,
**options)`` (the adapter's entry point on the suite's float64 tanh MLP with a mean softmax
cross-entropy) and ``host(array)`` (an array as numpy float64). Every test then runs against
every framework installed.
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import manifoldwalk as mw
from manifoldwalk._groups import JACOBIANS
from manifoldwalk.problem import ProblemError

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

RNG = np.random.default_rng(7)
SIZES = (3, 6, 3)
LAYERS = [
    (RNG.normal(scale=0.8, size=(n_in, n_out)), RNG.normal(scale=0.1, size=n_out))
    for n_in, n_out in zip(SIZES[:-1], SIZES[1:], strict=True)
]
X = RNG.normal(size=(27, SIZES[0]))
Y = RNG.integers(0, SIZES[-1], size=27)  # per-class groups: ids in no particular order
IDS = RNG.integers(0, 4, size=27)  # four groups that are not the classes


def quiet(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)`` without the adapters' "looks untrained" warning (random net)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="the model looks untrained")
        return fn(*args, **kwargs)


class GroupsSuite:
    """The tests; a subclass provides ``make`` and ``host`` (see the module docstring)."""

    built: dict[Any, Any]
    """Problems built once per framework and reused by its tests (building compiles)."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.built = {}

    def make(self, x: np.ndarray, y: np.ndarray, **options: Any) -> Any:
        raise NotImplementedError

    def host(self, array: Any) -> np.ndarray:
        return np.asarray(array, dtype=np.float64)

    def grouped(self, which: str, jacobian: str = "split") -> Any:
        """The ``groups=`` problem on every example, grouped by class or by ``IDS``."""
        key = (which, jacobian)
        if key not in self.built:
            ids = Y if which == "classes" else IDS
            self.built[key] = quiet(self.make, X, Y, groups=ids, jacobian=jacobian)
        return self.built[key]

    def references(self, which: str) -> list[Any]:
        """One ordinary single-constraint problem per group, on that group's examples."""
        if which not in self.built:
            ids = Y if which == "classes" else IDS
            self.built[which] = [
                quiet(self.make, X[ids == i], Y[ids == i]) for i in range(int(ids.max()) + 1)
            ]
        return self.built[which]

    @pytest.mark.parametrize(
        ("which", "jacobian"), [("classes", "split")] + [("ids", j) for j in JACOBIANS]
    )
    def test_losses_and_jacobian_are_each_groups_own_problem(self, which, jacobian) -> None:
        ids = Y if which == "classes" else IDS
        problem = self.grouped(which, jacobian)
        refs = self.references(which)
        theta = problem.theta0
        assert mw.is_multi_constraint(problem) and problem.n_constraints == len(refs)
        losses, jac = problem.losses_and_jacobian(theta)
        assert tuple(jac.shape) == (len(refs), problem.n_params)
        for i, ref in enumerate(refs):
            loss, grad = ref.loss_and_grad(theta)
            np.testing.assert_allclose(self.host(losses)[i], self.host(loss), rtol=1e-13)
            scale = np.abs(self.host(grad)).max()
            np.testing.assert_allclose(
                self.host(jac)[i], self.host(grad), rtol=0, atol=1e-13 * scale
            )
        # the forward-only losses, and the full-batch mean as their weighted sum
        np.testing.assert_allclose(self.host(problem.losses(theta)), self.host(losses), rtol=1e-13)
        total = float(np.dot(problem.loss_weights, self.host(losses)))
        np.testing.assert_allclose(self.host(problem.loss(theta)), total, rtol=1e-13)
        np.testing.assert_array_equal(problem.group_sizes, np.bincount(ids))

    def test_batched_and_passes_jacobians_agree(self) -> None:
        base = self.host(self.grouped("ids").theta0)
        theta_np = base + 0.3 * np.random.default_rng(3).normal(size=base.shape)
        results = {}
        for jacobian in JACOBIANS:
            problem = self.grouped("ids", jacobian)
            theta = self.like(theta_np, problem.theta0)
            results[jacobian] = [self.host(a) for a in problem.losses_and_jacobian(theta)]
        scale = np.abs(results["split"][1]).max()
        for jacobian in ("passes", "batched"):
            np.testing.assert_allclose(results[jacobian][0], results["split"][0], rtol=1e-13)
            np.testing.assert_allclose(
                results[jacobian][1], results["passes"][1], rtol=0, atol=1e-13 * scale
            )

    def test_walk_holds_every_class_loss_at_its_level(self) -> None:
        problem = self.grouped("classes")
        refs = self.references("classes")
        result = mw.walk(
            problem, problem.theta0, stop=mw.Stop(max_steps=25), record=mw.Record(every=1)
        )
        assert result.stop_reason in ("max_steps", "stationary")
        assert result.n_predictor >= 10
        levels, bounds = np.array(result.level), np.array(result.tolerance)
        h = result.history
        assert len(h["step"]) >= 10
        for i in range(problem.n_constraints):
            assert np.all(np.abs(h[f"loss_{i}"] - levels[i]) <= bounds[i])
            # recomputed from scratch at the end, on the class's own problem
            end = float(self.host(refs[i].loss(result.theta)))
            assert abs(end - levels[i]) <= bounds[i]
        # the history's full-batch mean loss, and R lowered
        weighted = sum(w * h[f"loss_{i}"] for i, w in enumerate(problem.loss_weights))
        np.testing.assert_allclose(h["loss"], weighted, rtol=1e-14)
        np.testing.assert_allclose(
            h["loss"][-1], float(self.host(problem.loss(result.theta))), rtol=1e-12
        )
        assert h["reg"][-1] < h["reg"][0]

    def test_bad_group_ids_are_named(self) -> None:
        bad = IDS.copy()
        bad[5] = 9
        with pytest.raises(ProblemError, match="example 5: 9"):
            quiet(self.make, X, Y, groups=bad, n_groups=4)
        with pytest.raises(ProblemError, match="group 1 has no examples"):
            quiet(self.make, X, Y, groups=np.where(IDS == 1, 0, IDS))
        with pytest.raises(TypeError, match="integer group id"):
            quiet(self.make, X, Y, groups=IDS.astype(float))
        with pytest.raises(ProblemError, match="one group id per training example"):
            quiet(self.make, X, Y, groups=IDS[:-1])
        with pytest.raises(ValueError, match="jacobian"):
            quiet(self.make, X, Y, groups=IDS, jacobian="vmap")
        with pytest.raises(ValueError, match="apply to a problem with groups"):
            quiet(self.make, X, Y, n_groups=3)

    def test_a_group_of_one_warns_at_the_caller(self) -> None:
        ids = np.where(IDS == 3, 0, IDS)
        ids[4] = 3  # example 4 alone in group 3
        with pytest.warns(UserWarning, match="group 3 holds a single example") as caught:
            quiet(self.make, X, Y, groups=ids)
        assert any(w.filename == __file__ for w in caught)

    def like(self, array: np.ndarray, theta: Any) -> Any:
        """A numpy vector as θ's array type, dtype and device."""
        raise NotImplementedError


class TestTorchGroups(GroupsSuite):
    """``manifoldwalk_torch.from_model(..., groups=...)``."""

    @pytest.fixture(autouse=True)
    def _torch(self) -> Any:
        self.torch = pytest.importorskip("torch")
        self.mt = pytest.importorskip("manifoldwalk_torch")
        # one thread for these tiny nets: on a shared 2-core machine, torch's thread pool
        # makes each small operation wait for a busy core (a 25-step walk took seconds)
        threads = self.torch.get_num_threads()
        self.torch.set_num_threads(1)
        yield
        self.torch.set_num_threads(threads)

    def make(self, x, y, **options):
        torch, nn = self.torch, self.torch.nn
        modules: list[Any] = []
        for i, (w, b) in enumerate(LAYERS):
            linear = nn.Linear(*w.shape).double()
            with torch.no_grad():
                linear.weight.copy_(torch.as_tensor(w.T))
                linear.bias.copy_(torch.as_tensor(b))
            modules += [linear] + ([nn.Tanh()] if i < len(LAYERS) - 1 else [])
        data = (torch.as_tensor(x), torch.as_tensor(y))
        return self.mt.from_model(nn.Sequential(*modules), nn.CrossEntropyLoss(), data, **options)

    def host(self, array):
        if isinstance(array, self.torch.Tensor):
            array = array.detach().cpu().numpy()
        return np.asarray(array, dtype=np.float64)

    def like(self, array, theta):
        return self.torch.as_tensor(array, dtype=theta.dtype, device=theta.device)

    def test_groups_write_into_a_fresh_jacobian_each_call(self) -> None:
        problem = self.grouped("classes")
        first = problem.losses_and_jacobian(problem.theta0)[1]
        kept = first.clone()
        problem.losses_and_jacobian(problem.theta0 * 0.5)
        assert self.torch.equal(first, kept)  # the walk keeps J of the previous point

    def test_stack_writes_each_gradient_into_its_row(self) -> None:
        torch = self.torch
        refs = self.references("ids")
        theta = refs[0].theta0 * 0.9
        losses, jac = mw.stack(refs).losses_and_jacobian(theta)
        for i, ref in enumerate(refs):
            loss, grad = ref.loss_and_grad(theta)
            assert torch.equal(jac[i], grad) and torch.equal(losses[i], loss)
        batched = quiet(self.make, X, Y, batch_size=5)  # the accumulated path
        out = torch.empty_like(theta)
        loss, grad = batched.loss_and_grad(theta)
        assert torch.equal(batched.loss_and_grad_into(theta, out), loss)
        assert torch.equal(out, grad)
        with pytest.raises(ValueError, match="out must be a flat tensor"):
            batched.loss_and_grad_into(theta, torch.empty(3, dtype=theta.dtype))

    def test_batches_of_a_group_give_its_full_mean(self) -> None:
        whole = self.grouped("classes")
        batched = quiet(self.make, X, Y, groups=Y, batch_size=4)
        a, b = whole.losses_and_jacobian(whole.theta0), batched.losses_and_jacobian(whole.theta0)
        np.testing.assert_allclose(self.host(b[0]), self.host(a[0]), rtol=1e-13)
        np.testing.assert_allclose(self.host(b[1]), self.host(a[1]), rtol=0, atol=1e-14)
        with pytest.raises(ValueError, match='jacobian="split"'):
            quiet(self.make, X, Y, groups=Y, batch_size=4, jacobian="passes")

    def test_what_groups_cannot_take_is_refused(self) -> None:
        torch, nn = self.torch, self.torch.nn
        model = nn.Linear(3, 3).double()
        loader = torch.utils.data.DataLoader(
            torch.utils.data.TensorDataset(torch.as_tensor(X), torch.as_tensor(Y)), batch_size=9
        )
        with pytest.raises(ProblemError, match="DataLoader"):
            self.mt.from_model(model, nn.CrossEntropyLoss(), loader, groups=Y)
        with pytest.raises(ProblemError, match="compile"):
            self.mt.from_model(model, nn.CrossEntropyLoss(), (X, Y), groups=Y, compile=True)
        with pytest.raises(ProblemError, match="cannot take groups="):
            self.mt.from_loss(model, lambda m, b: m(b[0]).sum(), (X, Y), groups=Y)


class TestJaxGroups(GroupsSuite):
    """``manifoldwalk_jax.from_apply(..., groups=...)``."""

    @pytest.fixture(autouse=True)
    def _jax(self) -> None:
        self.jax = pytest.importorskip("jax")
        self.jax.config.update("jax_enable_x64", True)  # as tests/test_array_backends.py
        self.mj = pytest.importorskip("manifoldwalk_jax")

    def make(self, x, y, **options):
        jnp, nn = self.jax.numpy, self.jax.nn
        params = [{"w": jnp.asarray(w), "b": jnp.asarray(b)} for w, b in LAYERS]

        def apply_fn(p, xb):
            h = xb
            for i, layer in enumerate(p):
                h = h @ layer["w"] + layer["b"]
                if i < len(p) - 1:
                    h = jnp.tanh(h)
            return h

        def loss_fn(out, t):
            return -jnp.mean(jnp.take_along_axis(nn.log_softmax(out), t[:, None], axis=1))

        return self.mj.from_apply(apply_fn, params, loss_fn, (x, y), **options)

    def like(self, array, theta):
        return self.jax.numpy.asarray(array, dtype=theta.dtype)

    def test_batch_size_is_refused_with_groups(self) -> None:
        with pytest.raises(ValueError, match="batch_size"):
            quiet(self.make, X, Y, groups=Y, batch_size=4)


class TestTFGroups(GroupsSuite):
    """``manifoldwalk_tf.from_model(..., groups=...)`` (the numpy seam)."""

    @pytest.fixture(autouse=True)
    def _tf(self) -> None:
        self.tf = pytest.importorskip("tensorflow")
        self.keras = pytest.importorskip("keras")
        self.mtf = pytest.importorskip("manifoldwalk_tf")

    def make(self, x, y, **options):
        keras, tf = self.keras, self.tf
        model = keras.Sequential([keras.Input((SIZES[0],), dtype="float64")])
        for i, (w, _) in enumerate(LAYERS):
            activation = "tanh" if i < len(LAYERS) - 1 else None
            model.add(keras.layers.Dense(w.shape[1], activation=activation, dtype="float64"))
        for layer, (w, b) in zip(model.layers, LAYERS, strict=True):
            layer.set_weights([w, b])

        def loss_fn(out, t):
            return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(t, out))

        return self.mtf.from_model(model, loss_fn, (x, y), **options)

    def like(self, array, theta):
        return np.asarray(array, dtype=theta.dtype)

    def test_batch_size_and_compile_are_refused_with_groups(self) -> None:
        for option in ({"batch_size": 4}, {"compile": True}):
            with pytest.raises(ValueError, match="batch_size and compile"):
                quiet(self.make, X, Y, groups=Y, **option)


def test_the_documented_groups_example_runs() -> None:
    """docs/constraints.md's ``groups=`` example runs and walks as it says: every class's loss
    held at its level, R lowered, the history's full-batch mean loss the problem's own."""
    pytest.importorskip("torch")
    text = (Path(__file__).resolve().parents[1] / "docs" / "constraints.md").read_text("utf-8")
    section = text.split("## One problem from groups of examples", 1)[1].split("\n## ", 1)[0]
    (example,) = re.findall(r"```python\n(.*?)```", section, re.S)
    namespace: dict[str, Any] = {"__name__": "docs_example"}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the example's model is trained: no warning at all
        exec(compile(example, "docs/constraints.md", "exec"), namespace)  # noqa: S102
    problem, result = namespace["problem"], namespace["result"]
    assert result.stop_reason == "max_steps" and problem.n_constraints == 3
    assert all(
        abs(loss - level) <= bound
        for loss, level, bound in zip(result.loss, result.level, result.tolerance, strict=True)
    )
    assert result.history["reg"][-1] < result.history["reg"][0]
    np.testing.assert_allclose(
        result.history["loss"][-1], float(problem.loss(result.theta)), rtol=1e-5
    )
