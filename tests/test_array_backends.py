"""numpy, torch and jax arrays take the same path; the step never syncs or leaves the device;
the step compiles under jax.jit / lax.scan and takes the same steps as the eager walk."""

from __future__ import annotations

import jax
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from torch.utils._python_dispatch import TorchDispatchMode

import manifoldwalk as mw
from manifoldwalk.directions import MinimiseReg
from manifoldwalk.problems import Circle
from manifoldwalk.testing import check_backends_agree, check_reaches, ellipsoid_cases

jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp  # noqa: E402  (after enabling float64)

TO_NUMPY = lambda a: a  # noqa: E731
TO_TORCH = lambda a: torch.tensor(a, dtype=torch.float64)  # noqa: E731
TO_JAX = lambda a: jnp.asarray(a, dtype=jnp.float64)  # noqa: E731


@pytest.mark.parametrize("scheme", ["default", "paper", "compensated"])
@settings(max_examples=5)
@given(case=ellipsoid_cases(max_dim=8))
def test_short_walks_take_the_same_steps_in_every_array_type(scheme, case):
    # Near an optimum the libraries' last-bit differences (their dot products round
    # differently) grow, and the paths are compared over a horizon where they cannot matter.
    # "compensated" learns its drift as a corrector step over Ση_p², a ratio of small numbers
    # there, so they grow about 10x every 15 steps: over 200 steps 6 of 300 comparisons (150
    # drawn problems, numpy against torch and jax) ended more than 1e-8 apart, over 60 none
    # (worst 1.4e-13). The default and "paper" schemes part far later: none of 250 and 120
    # drawn problems within 200 steps, but one walk creeping to its optimum (kkt
    # 3e-5, η_p ~1e-7) took another η_p than numpy's on JAX from step 110 and on torch from
    # 147 and stopped as stationary 3-4 steps later (docs/schemes.md): compared over 100 steps.
    max_steps = 60 if scheme == "compensated" else 100

    def run(theta0):
        return mw.walk(
            case.problem,
            theta0,
            scheme=scheme,
            stop=mw.Stop(max_steps=max_steps),
            record=mw.Record(every=1),
        )

    results = check_backends_agree(run, case.x0, [TO_NUMPY, TO_TORCH, TO_JAX], atol=1e-8)
    assert isinstance(results[1].theta, torch.Tensor) and results[1].theta.dtype == torch.float64
    assert isinstance(results[2].theta, jax.Array) and results[2].theta.dtype == jnp.float64


@settings(max_examples=5)
@given(case=ellipsoid_cases(max_dim=8))
def test_full_walks_reach_the_same_endpoint_in_every_array_type(case):
    for convert in (TO_TORCH, TO_JAX):
        r = mw.walk(case.problem, convert(case.x0))
        check_reaches(r, case.solution, 1e-3)


def test_float32_stays_float32():
    r = mw.walk(Circle(), torch.tensor([0.0, 1.0]), tolerance=mw.Tolerance(tau=1e-8))
    assert r.theta.dtype == torch.float32
    assert np.linalg.norm(r.theta.numpy() + 1 / np.sqrt(2)) < 1e-3


class OpRecorder(TorchDispatchMode):
    """Records every aten op and the devices of the tensors it touches."""

    def __init__(self):
        super().__init__()
        self.ops, self.devices, self.moves = [], set(), []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        self.ops.append(str(func))
        if isinstance(out, torch.Tensor) and args and isinstance(args[0], torch.Tensor):
            if out.device != args[0].device:  # a copy to another device (dtype casts are fine)
                self.moves.append(str(func))
        for t in list(args) + list((kwargs or {}).values()) + [out]:
            if isinstance(t, torch.Tensor):
                self.devices.add(t.device.type)
        return out


@pytest.mark.parametrize("scheme", ["default", "paper", "compensated"])
def test_a_torch_step_never_syncs_with_the_host_or_leaves_the_device(scheme):
    problem = Circle()
    scheme_ = mw.get_scheme(scheme)
    state = mw.init_state(
        problem, MinimiseReg(), scheme_, torch.tensor([0.0, 1.0], dtype=torch.float64)
    )
    step = mw.make_step(problem, MinimiseReg(), scheme_)
    state = step(step(state))  # warm: a predictor and the constants cached
    with OpRecorder() as rec:
        for _ in range(5):
            state = step(state)
    assert rec.ops, "no ops recorded"
    assert not [op for op in rec.ops if "_local_scalar_dense" in op or "item" in op]
    assert not rec.moves
    assert rec.devices == {"cpu"}


def test_the_step_runs_compiled_under_jax_and_takes_the_same_steps():
    problem, direction = Circle(), MinimiseReg()
    scheme = mw.get_scheme("paper")
    step = mw.make_step(problem, direction, scheme)
    start = mw.init_state(problem, direction, scheme, jnp.asarray([0.0, 1.0]))

    @jax.jit
    def compiled(state):
        def body(s, _):
            return step(s), s.n_predictor

        return jax.lax.scan(body, state, None, length=300)

    final, n_pred_compiled = compiled(start)
    eager = mw.init_state(problem, direction, scheme, np.array([0.0, 1.0]))
    n_pred_eager = []
    for _ in range(300):
        n_pred_eager.append(int(eager.n_predictor))
        eager = step(eager)
    assert np.array_equal(np.asarray(n_pred_compiled), n_pred_eager)
    assert int(final.n_corrector) > 0 and int(final.n_predictor) > 0  # both kinds ran
    assert np.allclose(np.asarray(final.theta), eager.theta, atol=1e-12)


def test_registered_namespaces_answer_for_their_types_only(monkeypatch):
    from manifoldwalk import _array

    class Wrapped(np.ndarray):
        pass

    marker = object()
    monkeypatch.setattr(_array, "_EXTRA_NAMESPACES", [])
    monkeypatch.setattr(_array, "_BY_TYPE", {})
    _array.register_namespace(Wrapped, marker)
    _array.register_namespace(Wrapped, marker)  # registering twice keeps one entry
    assert len(_array._EXTRA_NAMESPACES) == 1
    assert _array.namespace(np.zeros(3).view(Wrapped)) is marker
    assert _array.namespace(np.zeros(3)) is not marker
    other = object()
    _array.register_namespace(Wrapped, other)  # registering again replaces
    assert len(_array._EXTRA_NAMESPACES) == 1
    assert _array.namespace(np.zeros(3).view(Wrapped)) is other
