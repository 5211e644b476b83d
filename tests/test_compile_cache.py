"""The eager driver keeps compiled steps per problem: compiled once per scheme and direction."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

import manifoldwalk as mw
from manifoldwalk._compile_cache import CompileCache, step_cache_of, value_key
from manifoldwalk._stops import StopRules
from manifoldwalk.problems import Circle

TOP = np.array([0.0, 1.0])


class Counting(Circle):
    """The circle with a ``compile_step`` hook that counts its calls and wraps the step in a
    new function, as a compiler does (compiling nothing)."""

    def __init__(self) -> None:
        super().__init__()
        self.compiled = 0

    def compile_step(self, step: Any) -> Any:
        self.compiled += 1
        return lambda state: step(state)


class HandsBack(Circle):
    """The circle with a ``compile_step`` hook that hands the step back (an eager PyTorch
    problem's hook does)."""

    def compile_step(self, step: Any) -> Any:
        return step


class Slotted:
    """A problem with a ``compile_step`` hook and no instance dictionary."""

    __slots__ = ("circle", "compiled")

    def __init__(self) -> None:
        self.circle, self.compiled = Circle(), 0

    def loss(self, theta):
        return self.circle.loss(theta)

    def grad(self, theta):
        return self.circle.grad(theta)

    def reg(self, theta):
        return self.circle.reg(theta)

    def reg_grad(self, theta):
        return self.circle.reg_grad(theta)

    def compile_step(self, step: Any) -> Any:
        self.compiled += 1
        return step


def test_a_second_walk_reuses_the_compiled_step():
    p = Counting()
    options = dict(scheme="paper", stop=mw.Stop(max_steps=40))
    first = mw.walk(p, TOP, **options)
    assert p.compiled == 1
    again = mw.walk(p, TOP, **options)
    other = mw.walk(p, np.array([1.0, 0.0]), tolerance=mw.Tolerance(tau=1e-8), **options)
    half = mw.walk(p, TOP, **options | {"stop": mw.Stop(max_steps=15)})  # state, not step
    resumed = mw.walk(p, TOP, resume_from=half, **options)
    assert p.compiled == 1 and len(p.step_cache) == 1
    np.testing.assert_array_equal(again.theta, first.theta)
    assert other.n_predictor == 40 and resumed.n_predictor == first.n_predictor
    np.testing.assert_allclose(resumed.theta, first.theta, rtol=1e-12)


def test_another_scheme_or_direction_compiles_anew():
    p = Counting()
    mw.walk(p, TOP, scheme="paper", stop=mw.Stop(max_steps=10))
    mw.walk(p, TOP, scheme="default", stop=mw.Stop(max_steps=10))
    mw.walk(p, TOP, scheme=mw.get_scheme("paper", eta_max=0.05), stop=mw.Stop(max_steps=10))
    assert p.compiled == 3
    for target in ([1.0, 0.0], [-1.0, 0.0], [1.0, 0.0]):  # directions by value
        mw.walk(
            p,
            TOP,
            direction=mw.TowardTarget(np.asarray(target), tol=1e-3),
            stop=mw.Stop(max_steps=10),
        )
    assert p.compiled == 5
    mw.walk(p, TOP, scheme="paper", stop=mw.Stop(max_steps=10), driver=mw.Eager(compile_step=False))
    assert p.compiled == 5  # not asked to compile: nothing compiled, nothing cached
    assert len(p.step_cache) == p.step_cache.maxsize == 4  # bounded


@dataclass(frozen=True)
class DescendWithNotes:
    """Descend R; a frozen dataclass whose ``notes`` field (a dict) cannot be part of a key."""

    notes: dict = field(default_factory=dict)
    optimises = True

    def __call__(self, theta, reg_grad, n_predictor):
        return -reg_grad


def test_unkeyable_directions_and_slotted_problems_compile_every_walk():
    p = Counting()
    for _ in range(2):
        mw.walk(p, TOP, direction=DescendWithNotes(), stop=mw.Stop(max_steps=10))
    assert p.compiled == 2 and len(p.step_cache) == 0
    q = Slotted()
    assert step_cache_of(q) is None
    a, b = (mw.walk(q, TOP, scheme="paper", stop=mw.Stop(max_steps=10)) for _ in range(2))
    assert q.compiled == 2
    np.testing.assert_array_equal(a.theta, b.theta)


def test_cache_evicts_the_least_recently_used():
    cache = CompileCache(maxsize=2)
    built: list[str] = []

    def build(name: str):
        def make():
            built.append(name)
            return name

        return make

    for name in ("a", "b", "a", "c", "b", "a"):
        assert cache.get_by_key(name, build(name)) == name
    # a, b built; a hit (a most recent); c built, evicting b; b built, evicting a; a built
    assert built == ["a", "b", "c", "b", "a"] and len(cache) == 2
    assert cache.get_by_key(None, build("x")) == "x" and len(cache) == 2  # no key: not kept
    cache.clear()
    assert len(cache) == 0


@pytest.mark.parametrize(
    ("a", "b"),
    [(1, 1.0), (True, 1), (-0.0, 0.0), (np.zeros(2), np.zeros(3)), (np.zeros(2), np.ones(2))],
)
def test_value_key_tells_values_apart(a, b):
    assert value_key(a) != value_key(b)
    assert value_key(a) == value_key(a)


def test_the_look_is_fused_into_the_compiled_step(monkeypatch):
    """With a compile hook, the host looks at the start only; each step hands back its look."""
    looks: list[int] = []
    original = StopRules.host_look

    def counting(self, s, direction):
        looks.append(1)
        return original(self, s, direction)

    monkeypatch.setattr(StopRules, "host_look", counting)
    fused = mw.walk(Counting(), TOP, scheme="paper", stop=mw.Stop(max_steps=30))
    assert len(looks) == 1
    looks.clear()
    plain = mw.walk(
        Counting(),
        TOP,
        scheme="paper",
        stop=mw.Stop(max_steps=30),
        driver=mw.Eager(compile_step=False),
    )
    assert len(looks) == plain.n_predictor + plain.n_corrector + 1
    assert fused.stop_reason == plain.stop_reason == "max_steps"
    assert (fused.n_predictor, fused.n_corrector) == (plain.n_predictor, plain.n_corrector)
    np.testing.assert_array_equal(fused.theta, plain.theta)


def test_a_step_handed_back_runs_plain_and_is_told_its_branch(monkeypatch):
    """A hook that compiles nothing gets the plain driver: each step is told its branch (the
    host look's ``on`` at the state it starts from); the walk is the one without the hook."""
    from manifoldwalk import _eager as driver

    calls: list[tuple[bool | None, bool]] = []
    make_step = driver.make_step

    def spying(problem, direction, scheme):
        step = make_step(problem, direction, scheme)

        def spy(s, on=None):
            dev = float(s.loss - s.level)
            calls.append((on, dev * dev <= float(s.tau)))
            return step(s, on)

        return spy

    monkeypatch.setattr(driver, "make_step", spying)
    told = mw.walk(HandsBack(), TOP, scheme="paper", stop=mw.Stop(max_steps=30))
    assert len(calls) == told.n_predictor + told.n_corrector
    assert all(on is truth for on, truth in calls)  # told, and told right
    assert {truth for _, truth in calls} == {True, False}  # both branches taken
    monkeypatch.setattr(driver, "make_step", make_step)
    plain = mw.walk(Circle(), TOP, scheme="paper", stop=mw.Stop(max_steps=30))
    assert (told.n_predictor, told.n_corrector) == (plain.n_predictor, plain.n_corrector)
    np.testing.assert_array_equal(told.theta, plain.theta)
