"""manifoldwalk_torch: the shared adapter suite, plus what only PyTorch has (DataLoaders,
dropout and batch norm, dispatch-level checks that nothing syncs with the host or changes
device)."""

from __future__ import annotations

import contextlib
import copy
import warnings

import manifoldwalk_torch
import numpy as np
import pytest
import torch
from backend_suite import (
    SIZES,
    BackendSuite,
    assert_same_walk,
    init_layers,
    rel_err,
    small_data,
)
from hypothesis import given
from hypothesis import strategies as st
from manifoldwalk_torch import TorchProblem, from_model
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.data import DataLoader, TensorDataset

from manifoldwalk import Chunked, MinimiseReg, Stop, get_scheme, init_state, make_step, walk
from manifoldwalk.driver import prepare_walk

DTYPES = {"float32": torch.float32, "float64": torch.float64}


@pytest.fixture(autouse=True)
def _one_thread():
    """Run these tiny nets on one intra-op thread (restored afterwards).

    On a loaded two-core machine every op that torch parallelises with OpenMP waits a
    scheduler slice (~6 ms) for its second thread, which makes a 120-example loss 500x slower.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def make_mlp(layers, dtype: torch.dtype) -> nn.Sequential:
    """An ``nn.Sequential`` tanh MLP holding the canonical numpy ``layers`` (W as (in, out))."""
    modules: list[nn.Module] = []
    for i, (w, b) in enumerate(layers):
        linear = nn.Linear(*w.shape, dtype=dtype)
        with torch.no_grad():
            linear.weight.copy_(torch.as_tensor(w.T))
            linear.bias.copy_(torch.as_tensor(b))
        modules.append(linear)
        if i < len(layers) - 1:
            modules.append(nn.Tanh())
    return nn.Sequential(*modules)


def loss_for(task: str) -> nn.Module:
    return nn.CrossEntropyLoss() if task == "classification" else nn.MSELoss()


def tensors(x: np.ndarray, y: np.ndarray, dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
    yt = torch.as_tensor(y)
    return torch.as_tensor(x, dtype=dtype), yt.to(dtype) if yt.is_floating_point() else yt


class TestTorchAdapter(BackendSuite):
    framework = "torch"
    adapter_module = "manifoldwalk_torch"
    framework_modules = ("torch",)
    extra = "torch"
    array_type = torch.Tensor

    def make_mlp_problem(
        self, layers, x, y, *, task, dtype, reg="l2", batch_size=None, freeze_first=False
    ):
        model = make_mlp(layers, DTYPES[dtype])
        if freeze_first:
            model[0].requires_grad_(False)
        data = tensors(x, y, DTYPES[dtype])
        return from_model(model, loss_for(task), data, reg=reg, batch_size=batch_size)

    def canonical(self, problem, theta):
        values = [t.detach().double().numpy() for t in problem.unflatten(theta).values()]
        return [v.T if v.ndim == 2 else v for v in values]

    def to_numpy(self, theta):
        return theta.detach().cpu().numpy()

    def from_numpy(self, array, like):
        return torch.as_tensor(array, dtype=like.dtype, device=like.device)

    def roundtrip(self, problem, theta):
        model = problem.assign(theta)
        n_in, n_out = model[0].in_features, model[-1].out_features
        data = (
            torch.zeros(1, n_in, dtype=problem.dtype),
            torch.zeros(1, n_out, dtype=problem.dtype),
        )
        return from_model(model, nn.MSELoss(), data).theta0

    def device_of(self, theta):
        return theta.device

    def model_device(self, problem):
        return next(problem.model.parameters()).device

    def data_arrays(self, x, y):
        return tensors(x, y, torch.float64)

    def make_untrainable(self):
        model = nn.Linear(3, 2).requires_grad_(False)
        return from_model(model, nn.MSELoss(), (torch.zeros(4, 3), torch.zeros(4, 2)))

    def make_mismatched(self):
        return from_model(
            nn.Linear(3, 2), nn.CrossEntropyLoss(), (torch.zeros(5, 3), torch.zeros(4))
        )

    def make_nonscalar_loss(self):
        x, y = torch.zeros(4, 3), torch.zeros(4, dtype=torch.int64)
        return from_model(nn.Linear(3, 2), nn.CrossEntropyLoss(reduction="none"), (x, y))

    def make_integer_params(self):
        model = nn.Linear(3, 2)
        model.steps = nn.Parameter(torch.zeros(1, dtype=torch.int64), requires_grad=False)
        return from_model(model, nn.MSELoss(), (torch.zeros(4, 3), torch.zeros(4, 2)))


# ---------------------------------------------------------------------------------------------
# PyTorch only
# ---------------------------------------------------------------------------------------------


def small_problem(dtype=torch.float64, **kwargs) -> tuple[TorchProblem, tuple]:
    layers = init_layers(SIZES, seed=0)
    x, y = tensors(*small_data("classification"), dtype)
    return from_model(make_mlp(layers, dtype), nn.CrossEntropyLoss(), (x, y), **kwargs), (x, y)


@pytest.mark.parametrize("shuffle", [False, True])
def test_dataloader_accumulates_the_full_batch_mean(shuffle):
    full, (x, y) = small_problem()
    loader = DataLoader(TensorDataset(x, y), batch_size=6, shuffle=shuffle)
    batched = from_model(full.model, nn.CrossEntropyLoss(), loader)
    loss_f, grad_f = full.loss_and_grad(full.theta0)
    loss_b, grad_b = batched.loss_and_grad(full.theta0)
    assert abs(loss_b.item() - loss_f.item()) <= 1e-12 * loss_f.item()
    assert rel_err(grad_b.numpy(), grad_f.numpy()) <= 1e-12
    assert abs(batched.loss(full.theta0).item() - loss_f.item()) <= 1e-12 * loss_f.item()


def test_a_list_of_two_batches_is_two_batches_and_nested_lists_are_x_and_y():
    """Two (x, y) batches are not read as one (x, y) pair (the first batch as the inputs);
    (x, y) given as nested Python lists still are."""
    full, (x, y) = small_problem()
    lf = nn.CrossEntropyLoss()
    loss_f, grad_f = full.loss_and_grad(full.theta0)
    for data in ([(x[:7], y[:7]), (x[7:], y[7:])], (x.tolist(), y.tolist())):
        loss, grad = from_model(full.model, lf, data).loss_and_grad(full.theta0)
        assert abs(loss.item() - loss_f.item()) <= 1e-12 * loss_f.item()
        assert rel_err(grad.numpy(), grad_f.numpy()) <= 1e-12


def test_dataloader_batches_take_the_model_dtype():
    full, (x, y) = small_problem()
    loader = DataLoader(TensorDataset(x.float(), y), batch_size=8)
    loss, grad = from_model(full.model, nn.CrossEntropyLoss(), loader).loss_and_grad(full.theta0)
    assert grad.dtype == torch.float64


def test_dataloader_dropping_its_last_batch_is_refused():
    full, (x, y) = small_problem()
    loader = DataLoader(TensorDataset(x, y), batch_size=6, drop_last=True)
    with pytest.raises(ValueError, match="drop_last"):
        from_model(full.model, nn.CrossEntropyLoss(), loader)


def test_mistakes_the_model_shows_on_a_few_examples_are_refused_at_build():
    """from_model runs the model and the loss on a few examples, so these are reported when
    the problem is built, by name, with the framework's error as the cause."""
    full, (x, y) = small_problem()
    model, lf = full.model, nn.CrossEntropyLoss()
    wide = torch.zeros(len(x), x.shape[1] + 1, dtype=x.dtype)
    with pytest.raises(ValueError, match=r"model fails on the first 8 .*shape \(8, 6\)") as info:
        from_model(model, lf, (wide, y))
    assert isinstance(info.value.__cause__, RuntimeError)
    with pytest.raises(ValueError, match=r"features must be floating-point .*x.to\(torch.float64"):
        from_model(model, lf, (x.long(), y))
    with pytest.raises(ValueError, match=r"loss_fn\(outputs, targets\) fails .*outputs first"):
        from_model(model, lambda targets, outputs: lf(outputs, targets), (x, y))
    with pytest.raises(TypeError, match=r"class CrossEntropyLoss.*CrossEntropyLoss\(\)"):
        from_model(model, nn.CrossEntropyLoss, (x, y))
    with pytest.raises(TypeError, match="data must be \\(x, y\\), two arrays; got a tuple of 3"):
        from_model(model, lf, (x, y, y))
    with pytest.raises(ValueError, match="yielded no batches"):
        from_model(model, lf, DataLoader(TensorDataset(x[:0], y[:0]), batch_size=4))
    # a list of (x, y) batches is still data, and a shuffling loader draws no random numbers
    assert from_model(model, lf, [(x[:5], y[:5]), (x[5:9], y[5:9]), (x[9:], y[9:])]).n_params
    torch.manual_seed(3)
    from_model(model, lf, DataLoader(TensorDataset(x, y), batch_size=4, shuffle=True))
    drawn = torch.rand(3)
    torch.manual_seed(3)
    assert torch.equal(drawn, torch.rand(3))


def test_numpy_data_is_accepted_and_cast_to_the_model_dtype():
    full, _ = small_problem()
    x, y = small_data("classification")
    problem = from_model(full.model, nn.CrossEntropyLoss(), (x.astype(np.float32), y))
    loss_a, grad_a = problem.loss_and_grad(full.theta0)
    loss_b, grad_b = full.loss_and_grad(full.theta0)
    assert grad_a.dtype == torch.float64
    assert abs(loss_a.item() - loss_b.item()) <= 1e-6 * loss_b.item()  # x went through float32
    assert rel_err(grad_a.numpy(), grad_b.numpy()) <= 1e-6


@pytest.mark.parametrize(
    ("layer", "name"),
    [(nn.Dropout(0.5), "Dropout"), (nn.BatchNorm1d(6, dtype=torch.float64), "BatchNorm1d")],
)
def test_dropout_and_batch_norm_warn_and_run_in_eval_mode(layer, name):
    layers = init_layers(SIZES, seed=0)
    mlp = make_mlp(layers, torch.float64)
    model = nn.Sequential(mlp[0], layer, *mlp[1:])
    x, y = tensors(*small_data("classification"), torch.float64)
    model.train()
    with pytest.warns(UserWarning, match=f"(?s)dropout or batch-norm.*{name}.*eval mode"):
        problem = from_model(model, nn.CrossEntropyLoss(), (x, y))
    buffers = {k: v.clone() for k, v in model.named_buffers()}
    first = problem.loss_and_grad(problem.theta0)
    second = problem.loss_and_grad(problem.theta0)
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])
    assert model.training  # restored
    for k, v in model.named_buffers():
        if v.is_floating_point():
            assert torch.equal(v, buffers[k]), k  # running statistics untouched
    model.eval()
    expected = nn.CrossEntropyLoss()(model(x), y)
    assert torch.allclose(first[0], expected, rtol=1e-14, atol=0)


class _Probe(nn.Module):
    """Records the training flag it saw on each forward pass."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[bool] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(self.training)
        return x


class _OwnTrain(_Probe):
    """A module with its own ``train``, as some keep a part frozen."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[bool] = []

    def train(self, mode: bool = True) -> _OwnTrain:
        self.calls.append(mode)
        return super().train(mode)


@pytest.mark.parametrize("probe_type", [_Probe, _OwnTrain])
def test_eval_mode_switch_restores_only_what_was_training(probe_type):
    layers = init_layers(SIZES, seed=0)
    mlp = make_mlp(layers, torch.float64)
    probe, frozen = probe_type(), _Probe()
    model = nn.Sequential(mlp[0], probe, frozen, *mlp[1:])
    model.train()
    frozen.eval()  # a part the user keeps in eval mode
    x, y = tensors(*small_data("classification"), torch.float64)
    problem = from_model(model, nn.CrossEntropyLoss(), (x, y))
    probe.seen.clear(), frozen.seen.clear(), getattr(probe, "calls", []).clear()
    problem.loss_and_grad(problem.theta0)
    problem.loss(problem.theta0)
    assert probe.seen == [False, False] and frozen.seen == [False, False]
    assert model.training and probe.training and mlp[0].training
    if probe_type is _OwnTrain:
        assert probe.calls == [False, True, False, True]  # its train() ran both ways
        # Module.train() sets every submodule, as model.train() always did here
        assert frozen.training
    else:
        assert not frozen.training  # left as the user set it


def test_recurrent_dropout_warns():
    model = nn.Sequential(nn.GRU(3, 4, num_layers=2, dropout=0.1))
    with pytest.warns(UserWarning, match=r"0 \(GRU\)"):
        manifoldwalk_torch._model.warn_if_stochastic(model)


def test_plain_models_do_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # the small net is untrained; that warning is tests/adapters/test_misuse.py's subject
        warnings.filterwarnings("ignore", message="the model looks untrained")
        small_problem()


def test_theta_of_the_wrong_dtype_or_length_is_refused():
    problem, _ = small_problem()
    with pytest.raises(TypeError, match="dtype"):
        problem.loss_and_grad(problem.theta0.float())
    with pytest.raises(ValueError, match="length"):
        problem.loss_and_grad(problem.theta0[:-1])


def test_numpy_theta_is_refused_with_the_conversion_to_make():
    """A numpy θ (a loaded WalkResult's) is refused by name, not with an AttributeError."""
    problem, _ = small_problem()
    theta = problem.theta0.numpy()
    for call in (
        lambda: walk(problem, theta, stop=Stop(max_steps=1)),
        lambda: problem.loss(theta),
        lambda: problem.evaluate(theta, np.zeros((2, 5)), np.zeros(2, dtype=np.int64)),
    ):
        with pytest.raises(TypeError, match=r"torch.Tensor, got numpy.ndarray.*torch.as_tensor"):
            call()


def test_mixed_parameter_dtypes_are_refused():
    model = nn.Sequential(nn.Linear(3, 2), nn.Linear(2, 2, dtype=torch.float64))
    with pytest.raises(TypeError, match="mix dtypes"):
        from_model(model, nn.MSELoss(), (torch.zeros(4, 3), torch.zeros(4, 2)))


def test_unflatten_gives_views_and_assign_writes_the_model():
    problem, _ = small_problem()
    theta = torch.randn(problem.n_params, dtype=torch.float64)
    parts = problem.unflatten(theta)
    assert list(parts) == [n for n, _ in problem.model.named_parameters()]
    assert all(p.data_ptr() >= theta.data_ptr() for p in parts.values())  # views into θ
    assert problem.assign(theta) is problem.model
    for name, param in problem.model.named_parameters():
        assert torch.equal(param.detach(), parts[name])
    assert torch.equal(problem.theta0, theta)


def test_frozen_parameters_and_buffers_stay_in_the_model():
    problem, _ = small_problem()
    problem.model[0].requires_grad_(False)
    frozen = from_model(problem.model, nn.CrossEntropyLoss(), small_problem()[1])
    assert frozen.names == ("2.weight", "2.bias", "4.weight", "4.bias")
    before = problem.model[0].weight.detach().clone()
    frozen.assign(torch.zeros(frozen.n_params, dtype=torch.float64))
    assert torch.equal(problem.model[0].weight.detach(), before)


class _Tied(nn.Module):
    """A weight shared by two layers, a submodule reached by two names, a frozen layer, a
    weight-normed layer (a parametrisation) and batch norm: every place a trainable parameter
    can hide from a by-name swap."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(4, 4, dtype=torch.float64)
        self.b = nn.Linear(4, 4, dtype=torch.float64)
        self.b.weight = self.a.weight  # tied across two modules
        self.again = self.a  # one module, two paths
        self.frozen = nn.Linear(4, 4, dtype=torch.float64).requires_grad_(False)
        self.norm = nn.BatchNorm1d(4, dtype=torch.float64)
        self.out = nn.utils.parametrizations.weight_norm(nn.Linear(4, 3, dtype=torch.float64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(self.again(torch.tanh(self.b(torch.tanh(self.a(x))))))
        return self.out(self.norm(torch.tanh(self.frozen(h))))


def _by_name(model: nn.Module, names, theta: torch.Tensor, x, y) -> tuple[torch.Tensor, ...]:
    """The loss, gradient and outputs the way ``torch.func.functional_call`` computes them.

    Run on a copy: ``functional_call`` (torch 2.13) leaves θ's view in a submodule reached by
    two names instead of putting its parameter back.
    """
    model = copy.deepcopy(model).eval()
    leaf = theta.detach().requires_grad_(True)
    trainable = [p for p in model.parameters() if p.requires_grad]
    pieces = torch.split(leaf, [p.numel() for p in trainable])
    shaped = {n: v.view(p.shape) for n, v, p in zip(names, pieces, trainable, strict=True)}
    out = torch.func.functional_call(model, shaped, (x,))
    loss = nn.CrossEntropyLoss()(out, y)
    return (loss.detach(), *torch.autograd.grad(loss, leaf), out.detach())


@given(seed=st.integers(0, 2**31 - 1), batch_size=st.sampled_from([None, 5]))
def test_parameter_slots_give_functional_calls_values_bit_for_bit(seed, batch_size):
    torch.manual_seed(seed)
    with pytest.warns(UserWarning, match="batch-norm"):
        problem = from_model(
            _Tied(),
            nn.CrossEntropyLoss(),
            (x := torch.randn(10, 4, dtype=torch.float64), y := torch.randint(0, 3, (10,))),
            batch_size=batch_size,
        )
    # a tied weight is one place in θ; the frozen layer and the buffers are not in it
    assert "b.weight" not in problem.names and not any("frozen" in n for n in problem.names)
    theta = torch.randn(problem.n_params, dtype=torch.float64)
    before = {n: p for n, p in problem.model.named_parameters(remove_duplicate=False)}
    loss, grad = problem.loss_and_grad(theta)
    ref_loss, ref_grad, out = _by_name(problem.model, problem.names, theta, x, y)
    if batch_size is None:
        assert torch.equal(loss, ref_loss) and torch.equal(grad, ref_grad)
    else:  # accumulated over batches: the same sums, another rounding order
        torch.testing.assert_close(loss, ref_loss, rtol=1e-13, atol=0)
        torch.testing.assert_close(grad, ref_grad, rtol=1e-12, atol=1e-14)
    assert torch.equal(problem.loss(theta), loss)
    accuracy = (out.argmax(-1) == y).double().mean().item()
    assert problem.evaluate(theta, x, y)["accuracy"] == accuracy
    # the model holds its own parameters again, the tied ones still shared
    after = dict(problem.model.named_parameters(remove_duplicate=False))
    assert after.keys() == before.keys() and all(after[n] is before[n] for n in before)
    assert problem.model.b.weight is problem.model.a.weight


def test_parameter_slots_put_the_parameters_back_when_the_forward_raises():
    problem, (x, y) = small_problem()
    before = list(problem.model.parameters())

    def failing_forward(module, args):
        raise RuntimeError("boom")

    handle = problem.model[2].register_forward_pre_hook(failing_forward)
    with pytest.raises(RuntimeError, match="boom"):
        problem.loss_and_grad(problem.theta0)
    handle.remove()
    assert all(p is q for p, q in zip(problem.model.parameters(), before, strict=True))
    assert all(isinstance(p, nn.Parameter) for p in problem.model.parameters())


def test_evaluate_accepts_one_hot_targets_and_numpy():
    problem, _ = small_problem()
    x, y = small_data("classification", seed=5)
    by_index = problem.evaluate(problem.theta0, x, y)
    one_hot = np.eye(SIZES[-1])[y]
    by_one_hot = problem.evaluate(problem.theta0, x, one_hot)
    assert by_index["accuracy"] == by_one_hot["accuracy"]
    assert by_index["loss"] == pytest.approx(by_one_hot["loss"], rel=1e-12)
    with pytest.raises(ValueError, match="task"):
        problem.evaluate(problem.theta0, x, y, task="ranking")


def test_callable_reg_must_return_a_scalar():
    # refused when wrapped: the regulariser's gradient is taken once at θ0 there
    with pytest.raises(ValueError, match="0-d"):
        small_problem(reg=lambda t: t * t)
    with pytest.raises(ValueError, match="numpy value: compute R with torch operations"):
        small_problem(reg=lambda t: np.square(t.detach().numpy()).sum())


# ---------------------------------------------------------------------------------------------
# compile=...: the whole step under torch.compile
# ---------------------------------------------------------------------------------------------


def test_compiled_walk_takes_the_eager_path():
    """A float64 walk with a compiled step: the same steps, stop and θ as the eager walk.

    One walk exercises the l2-weights reg and a batched full-batch mean inside the graph.
    """
    import manifoldwalk as mw

    kwargs = {"reg": "l2-weights", "batch_size": 64}
    eager, _ = small_problem(**kwargs)
    fast, _ = small_problem(compile=True, **kwargs)
    assert fast.compile_step is not None
    a = mw.walk(eager, eager.theta0, stop=Stop(max_steps=150))
    b = mw.walk(fast, fast.theta0, stop=Stop(max_steps=150))
    assert_same_walk(a, b, a.theta.numpy(), b.theta.numpy())


@pytest.mark.parametrize(
    ("compile", "k", "scheme", "m"),
    [
        (False, 1, "default", 1),
        (False, 7, "default", 1),
        (True, 3, "default", 1),
        (True, 3, "compensated", 1),
        (True, 5, "default", 2),  # 2-step graphs, 3 calls per chunk: the 6th step masked
    ],
)
def test_chunked_walk_takes_the_eager_path(compile, k, scheme, m):
    """K masked steps per host sync (eager, one compiled graph of K steps, or graphs of M
    steps called ⌈K/M⌉ times): the eager driver's path, history and trajectory."""
    import manifoldwalk as mw

    eager, _ = small_problem()
    chunked, _ = small_problem(compile=compile)
    kw = {
        "stop": Stop(max_steps=150),
        "record": mw.Record(trajectory_every=10, every=5),
        "scheme": scheme,
    }
    a = mw.walk(eager, eager.theta0, **kw)
    b = mw.walk(
        chunked, chunked.theta0, **kw, driver=Chunked(steps_per_sync=k, steps_per_iteration=m)
    )
    assert_same_walk(a, b, a.theta.numpy(), b.theta.numpy())
    assert list(b.history["step"]) == list(a.history["step"])
    torch.testing.assert_close(b.trajectory, a.trajectory, rtol=1e-9, atol=1e-11)
    # one chunk (the walk's, from the cache) takes exactly K steps
    host = prepare_walk(chunked, chunked.theta0, **kw).host(k, steps_per_iteration=m)
    assert int(chunked.compile_loop(host.loop)(host.carry).n_done) == k


def test_chunked_walk_without_records_along_the_way():
    import manifoldwalk as mw

    problem, _ = small_problem()
    kw = {"stop": Stop(max_steps=150), "record": mw.Record(every=None), "scheme": "paper"}
    a = mw.walk(problem, problem.theta0, **kw)
    b = mw.walk(problem, problem.theta0, **kw, driver=Chunked(steps_per_sync=7))
    assert_same_walk(a, b, a.theta.numpy(), b.theta.numpy())
    assert list(b.history["n_predictor"]) == [0, a.n_predictor]


@given(k=st.integers(1, 200), m=st.integers(1, 12))
def test_graph_steps_caps_the_unrolled_chunk(k, m):
    """A compiled chunk graph holds M steps if given, else all K up to the cap, else the
    largest divisor of K up to the cap (no step computed only to be masked away)."""
    from manifoldwalk_torch._compile import MAX_GRAPH_STEPS, graph_steps

    n = graph_steps(k, m)
    if m > 1:
        assert n == m
    else:
        assert 1 <= n <= MAX_GRAPH_STEPS and k % n == 0
        assert n == k or all(k % d for d in range(n + 1, MAX_GRAPH_STEPS + 1))


def test_long_compiled_chunks_call_a_small_graph(monkeypatch):
    """With compile and M = 1, a chunk of K = 10 steps runs a 2-step graph five times (not a
    10-step graph, whose compilation would take minutes) and takes the eager path."""
    import manifoldwalk_torch._compile as torch_compile

    import manifoldwalk as mw

    graphs: list[int] = []
    calls: list[int] = []

    def fake_compiled(fn, mode, around):  # the graph run eagerly, its size recorded
        def run(carry):
            calls.append(1)
            with around():
                return fn(carry)

        graphs.append(1)
        return run

    monkeypatch.setattr(torch_compile, "compiled", fake_compiled)
    eager, _ = small_problem()
    chunked, _ = small_problem(compile=True)
    kw = {"stop": Stop(max_steps=60), "record": mw.Record(every=5)}
    a = mw.walk(eager, eager.theta0, **kw)
    host = prepare_walk(chunked, chunked.theta0, **kw).host(10)
    assert torch_compile.graph_steps(10, 1) == 2
    out = torch_compile.chunk_runner(host.loop, "default", contextlib.nullcontext)(host.carry)
    assert len(graphs) == 1 and len(calls) == 5 and int(out.n_done) == 10
    b = mw.walk(chunked, chunked.theta0, **kw, driver=Chunked(steps_per_sync=10))
    assert_same_walk(a, b, a.theta.numpy(), b.theta.numpy())


def test_chunked_walk_that_fails_to_correct_keeps_the_eager_last_good_point():
    """A walk that stops off the level set inside a chunk returns the eager walk's last
    on-level point (the host replays the chunk that reached it)."""
    import manifoldwalk as mw

    eager, _ = small_problem()
    chunked, _ = small_problem()
    kw = {
        "scheme": get_scheme("authors", max_corrector_steps=6),
        "tolerance": mw.Tolerance(tau=1e-14),
        "stop": Stop(max_steps=200),
    }
    a = mw.walk(eager, eager.theta0, **kw)
    b = mw.walk(chunked, chunked.theta0, **kw, driver=Chunked(steps_per_sync=8))
    assert a.stop_reason == "corrector_failed"
    assert_same_walk(a, b, a.theta.numpy(), b.theta.numpy())


def test_later_walks_reuse_the_chunk(monkeypatch):
    """A second chunked walk with the same options builds no new chunk and walks the same path."""
    import manifoldwalk_torch.problem as torch_problem

    import manifoldwalk as mw

    built: list[int] = []
    make = torch_problem.chunk_runner
    monkeypatch.setattr(torch_problem, "chunk_runner", lambda *args: built.append(1) or make(*args))
    problem, _ = small_problem()
    kw = {"stop": Stop(max_steps=30), "record": mw.Record(every=5)}
    a, b = (
        mw.walk(problem, problem.theta0, **kw, driver=Chunked(steps_per_sync=4)) for _ in range(2)
    )
    assert len(built) == 1 and len(problem.loop_cache) == 1
    torch.testing.assert_close(b.theta, a.theta, rtol=0, atol=0)
    mw.walk(problem, problem.theta0, **kw, driver=Chunked(steps_per_sync=5))
    assert len(built) == 2  # another K: another chunk


def test_eager_problems_hand_the_step_back_unchanged():
    problem, _ = small_problem()
    step = make_step(problem, MinimiseReg(), get_scheme("default"))
    assert problem.compile_step(step) is step


@pytest.mark.parametrize("bad", ["fast", 1, "eager"])
def test_unknown_compile_modes_are_refused(bad):
    with pytest.raises(ValueError, match="reduce-overhead"):
        small_problem(compile=bad)


def test_compile_with_a_dataloader_is_refused():
    x, y = tensors(*small_data("classification"), torch.float64)
    loader = DataLoader(TensorDataset(x, y), batch_size=16)
    model = make_mlp(init_layers(SIZES, seed=0), torch.float64)
    with pytest.raises(ValueError, match="DataLoader"):
        from_model(model, nn.CrossEntropyLoss(), loader, compile=True)


# ---------------------------------------------------------------------------------------------
# dispatch-level: no host synchronisation, no device change
# ---------------------------------------------------------------------------------------------


class _Watch(TorchDispatchMode):
    """Record every aten op, the ones that read a value to the host, and device changes."""

    def __init__(self, device: torch.device) -> None:
        super().__init__()
        self.device = device
        self.ops: list[str] = []
        self.syncs: list[str] = []
        self.moves: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        name = str(func)
        self.ops.append(name)
        if func is torch.ops.aten._local_scalar_dense.default:
            self.syncs.append(name)
        outs = out if isinstance(out, tuple | list) else (out,)
        for t in outs:
            if isinstance(t, torch.Tensor) and t.device != self.device:
                self.moves.append(f"{name} -> {t.device}")
        return out


def _watch(device, fn) -> _Watch:
    with _Watch(device) as watch:
        fn()
    return watch


def _devices() -> list[str]:
    return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", _devices())
def test_loss_and_grad_and_a_walk_step_stay_on_device(device):
    layers = init_layers(SIZES, seed=0)
    x, y = tensors(*small_data("classification"), torch.float32)
    model = make_mlp(layers, torch.float32).to(device)
    problem = from_model(model, nn.CrossEntropyLoss(), (x, y))
    theta = problem.theta0
    dev = theta.device
    watch = _watch(dev, lambda: problem.loss_and_grad(theta))
    assert watch.syncs == [] and watch.moves == []
    assert sum("addmm" in op or "mm" in op for op in watch.ops) >= 3  # the pass did run

    scheme = get_scheme("default")
    state = init_state(problem, MinimiseReg(), scheme, theta)
    step = make_step(problem, MinimiseReg(), scheme)
    holder = {}
    watch = _watch(dev, lambda: holder.setdefault("s", step(state)))
    assert watch.syncs == [], watch.syncs
    assert watch.moves == [], watch.moves
    assert holder["s"].theta.device == dev


def test_one_forward_and_one_backward_per_call():
    problem, _ = small_problem()
    watch = _watch(torch.device("cpu"), lambda: problem.loss_and_grad(problem.theta0))
    # three Linear layers: three forward addmm; no second forward sneaks in
    assert sum(op.startswith("aten.addmm") for op in watch.ops) == 3
    assert sum(op.startswith("aten.tanh_backward") for op in watch.ops) == 2


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_walk_on_cuda_returns_a_cuda_tensor():
    import manifoldwalk

    layers = init_layers(SIZES, seed=0)
    x, y = tensors(*small_data("classification"), torch.float64)
    model = make_mlp(layers, torch.float64).cuda()
    problem = from_model(model, nn.CrossEntropyLoss(), (x, y))
    result = manifoldwalk.walk(problem, problem.theta0, stop=Stop(max_steps=20))
    assert result.theta.is_cuda
    assert problem.evaluate(result.theta, x, y)["accuracy"] >= 0


def test_package_reexports_only():
    assert manifoldwalk_torch.__all__ == [
        "TorchLossProblem",
        "TorchProblem",
        "from_loss",
        "from_model",
        "walk_batch",
    ]


def test_docs_example_runs(capsys):
    """The complete example in docs/adapters.md runs and walks as it says."""
    import re
    from pathlib import Path

    text = (Path(__file__).parents[2] / "docs" / "adapters.md").read_text(encoding="utf-8")
    section = text.split("## PyTorch", 1)[1].split("\n## ", 1)[0]
    example = [b for b in re.findall(r"```python\n(.*?)```", section, re.S) if "import" in b][0]
    exec(compile(example, "docs/adapters.md", "exec"), {"__name__": "docs_example"})
    out = capsys.readouterr().out
    assert "max_steps" in out and "test accuracy along the walk" in out
