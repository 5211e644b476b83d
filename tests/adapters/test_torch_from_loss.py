"""manifoldwalk_torch.from_loss: a loss of the model and one batch, batches of any structure.

The full-batch loss over several batches equals the one-batch value to rounding (dicts, tuples,
nested dicts, numpy leaves, a batch_size of one's own); from_model is the same evaluation; the
model is left as it was; the build-time check names what a bad loss returned; evaluate,
regularisers, as_float64, compile, buffers and eval mode work as for from_model.
"""

from __future__ import annotations

import copy
import warnings
from collections import namedtuple

import manifoldwalk_torch as mt
import numpy as np
import pytest
import torch
from backend_suite import assert_same_walk, rel_err
from hypothesis import given
from hypothesis import strategies as st
from torch import nn
from torch.nn import functional as F  # noqa: N812

import manifoldwalk as mw
from manifoldwalk.problem import ProblemError

N = 24


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny nets: one intra-op thread (restored afterwards), as the other torch tests."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


class TwoInputs(nn.Module):
    """A net of two inputs (x and z), 2 classes."""

    def __init__(self, dtype: torch.dtype = torch.float64) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.a = nn.Linear(3, 6, dtype=dtype)
        self.b = nn.Linear(2, 6, dtype=dtype)
        self.out = nn.Linear(6, 2, dtype=dtype)

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self.out(torch.tanh(self.a(x) + self.b(z)))


class OwnLoss(TwoInputs):
    """The same net computing its own loss when given labels."""

    def forward(self, x, z, labels=None):  # type: ignore[override]
        logits = super().forward(x, z)
        return logits if labels is None else F.cross_entropy(logits, labels)


def data(n: int = N, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, generator=g, dtype=torch.float64)
    z = torch.randn(n, 2, generator=g, dtype=torch.float64)
    return {"x": x, "z": z, "y": (x[:, 0] + z[:, 1] > 0).long()}


def dict_loss(m: nn.Module, b: dict) -> torch.Tensor:
    return F.cross_entropy(m(b["x"], b["z"]), b["y"])


def split(batch: dict, cuts: list[int]) -> list[dict]:
    edges = [0, *cuts, N]
    return [{k: v[i:j] for k, v in batch.items()} for i, j in zip(edges, edges[1:], strict=False)]


def assert_same_value(problem, reference, theta, tol=1e-13):
    loss, grad = problem.loss_and_grad(theta)
    loss_r, grad_r = reference.loss_and_grad(theta)
    assert abs(loss.item() - loss_r.item()) <= tol * abs(loss_r.item())
    assert rel_err(grad.numpy(), grad_r.numpy()) <= tol
    assert abs(problem.loss(theta).item() - loss_r.item()) <= tol * abs(loss_r.item())


@pytest.fixture(scope="module")
def one_batch():
    return mt.from_loss(TwoInputs(), dict_loss, data())


# --- exactness over batches -------------------------------------------------------------------


@given(st.lists(st.integers(1, N - 1), min_size=1, max_size=5, unique=True).map(sorted))
def test_several_dict_batches_of_unequal_size_give_the_one_batch_loss_and_gradient(cuts):
    reference = mt.from_loss(TwoInputs(), dict_loss, data())
    many = mt.from_loss(reference.model, dict_loss, split(data(), cuts))
    assert not many._data.single
    assert_same_value(many, reference, reference.theta0 * 1.1)


def test_tuple_batches_and_a_namedtuple_batch(one_batch):
    d = data()
    tuples = [(d["x"][:5], d["z"][:5], d["y"][:5]), (d["x"][5:], d["z"][5:], d["y"][5:])]
    problem = mt.from_loss(
        one_batch.model, lambda m, b: F.cross_entropy(m(b[0], b[1]), b[2]), tuples
    )
    assert_same_value(problem, one_batch, one_batch.theta0)
    Batch = namedtuple("Batch", "inputs labels")
    nt = Batch({"x": d["x"], "z": d["z"]}, d["y"])  # one batch, though no field is an array
    problem = mt.from_loss(
        one_batch.model, lambda m, b: F.cross_entropy(m(**b.inputs), b.labels), nt
    )
    assert problem._data.single
    assert_same_value(problem, one_batch, one_batch.theta0)


def test_nested_dicts_with_numpy_leaves_in_float32():
    """numpy floats cast to the float32 parameters, integer labels kept as int64."""
    model = TwoInputs(torch.float32)
    d = {k: v.numpy() for k, v in data().items()}
    nested = [
        {"inputs": {"x": d["x"][i:j], "z": d["z"][i:j]}, "y": d["y"][i:j]}
        for i, j in ((0, 10), (10, 11), (11, N))
    ]
    seen = []

    def loss_fn(m, b):
        seen.append((b["inputs"]["x"].dtype, b["y"].dtype))
        return F.cross_entropy(m(**b["inputs"]), b["y"])

    problem = mt.from_loss(model, loss_fn, nested)
    reference = mt.from_loss(
        model,
        dict_loss,
        {
            k: torch.as_tensor(v).to(torch.float32) if v.dtype.kind == "f" else torch.as_tensor(v)
            for k, v in d.items()
        },
    )
    assert_same_value(problem, reference, reference.theta0, tol=1e-6)
    assert set(seen) == {(torch.float32, torch.int64)}


def test_a_batch_size_of_ones_own_weights_the_mean():
    """A token-level loss on padded sequences: weighted by real tokens, the mean over batches
    is the mean over all tokens (the default weight, sequences per batch, is not)."""
    torch.manual_seed(1)
    emb = nn.Embedding(10, 1, dtype=torch.float64)
    ids = torch.randint(0, 10, (N, 5))
    lengths = torch.randint(1, 6, (N,))
    mask = torch.arange(5)[None, :] < lengths[:, None]

    def token_loss(m, b):
        per_token = m(b["ids"]).squeeze(-1) ** 2
        return (per_token * b["mask"]).sum() / b["mask"].sum()

    batches = [{"ids": ids[i:j], "mask": mask[i:j]} for i, j in ((0, 3), (3, 15), (15, N))]
    whole = mt.from_loss(emb, token_loss, {"ids": ids, "mask": mask})
    by_tokens = mt.from_loss(emb, token_loss, batches, batch_size=lambda b: int(b["mask"].sum()))
    assert_same_value(by_tokens, whole, whole.theta0)
    by_rows = mt.from_loss(emb, token_loss, batches)
    assert abs(by_rows.loss(whole.theta0).item() - whole.loss(whole.theta0).item()) > 1e-6


def test_a_model_computing_its_own_loss_and_a_generator_function_of_batches(one_batch):
    model = OwnLoss()
    model.load_state_dict(one_batch.model.state_dict())
    d = data()

    def batches():
        for part in split(d, [9, 17]):
            yield {"x": part["x"], "z": part["z"], "labels": part["y"]}

    problem = mt.from_loss(model, lambda m, b: m(**b), batches)
    assert_same_value(problem, one_batch, one_batch.theta0)


def test_a_dataloader_of_dict_batches_shuffled_gives_the_full_batch_mean(one_batch):
    d = data()

    class Rows(torch.utils.data.Dataset):
        def __len__(self):
            return N

        def __getitem__(self, i):
            return {k: v[i] for k, v in d.items()}

    loader = torch.utils.data.DataLoader(Rows(), batch_size=7, shuffle=True)
    problem = mt.from_loss(one_batch.model, dict_loss, loader)
    assert problem._data.is_loader
    assert_same_value(problem, one_batch, one_batch.theta0, tol=1e-12)
    with pytest.raises(ProblemError, match="drop_last"):
        mt.from_loss(
            one_batch.model, dict_loss, torch.utils.data.DataLoader(Rows(), 7, drop_last=True)
        )


def test_from_model_is_the_same_evaluation_as_from_loss(one_batch):
    """from_model(model, loss, (x, y)) and from_loss with loss(m(b[0]), b[1]): bit for bit."""
    model = nn.Sequential(
        nn.Linear(3, 5, dtype=torch.float64), nn.Tanh(), nn.Linear(5, 2, dtype=torch.float64)
    )
    d = data()
    ce = nn.CrossEntropyLoss()
    short = mt.from_model(model, ce, (d["x"], d["y"]), batch_size=10)
    long = mt.from_loss(
        model,
        lambda m, b: ce(m(b[0]), b[1]),
        [(d["x"][i : i + 10], d["y"][i : i + 10]) for i in (0, 10, 20)],
    )
    theta = short.theta0 * 0.9
    for a, b in zip(short.loss_and_grad(theta), long.loss_and_grad(theta), strict=True):
        assert torch.equal(a, b)
    assert torch.equal(short.loss(theta), long.loss(theta))


# --- the model is left as it was ----------------------------------------------------------------


def test_evaluations_leave_the_model_and_its_parameters_as_they_were(one_batch):
    model = one_batch.model
    before = {n: (p, p.detach().clone()) for n, p in model.named_parameters()}
    model.train()
    problem = mt.from_loss(model, dict_loss, split(data(), [8]))
    theta = torch.zeros(problem.n_params, dtype=torch.float64)
    assert problem.loss(theta).item() == pytest.approx(np.log(2), rel=1e-14)  # zero logits
    problem.loss_and_grad(theta)
    with pytest.raises(RuntimeError, match="boom"):
        mt.from_loss(model, dict_loss, data())._slots.run(
            problem._views(theta), lambda b: (_ for _ in ()).throw(RuntimeError("boom")), None
        )
    assert model.training
    for n, p in model.named_parameters():
        assert p is before[n][0] and torch.equal(p, before[n][1]) and isinstance(p, nn.Parameter)


# --- what is refused at build, by name ------------------------------------------------------------


@pytest.mark.parametrize(
    ("loss_fn", "match"),
    [
        (
            lambda m, b: F.cross_entropy(m(b["x"], b["z"]), b["y"], reduction="none"),
            r"shape \(24,\)",
        ),
        (lambda m, b: (m(b["x"], b["z"]).argmax(-1) == b["y"]).sum(), "dtype torch.int64"),
        (lambda m, b: dict_loss(m, b).item(), "got a float"),
        (lambda m, b: dict_loss(m, b).detach(), "does not depend on the model"),
        (lambda m, b: dict_loss(copy.deepcopy(m), b), "does not depend on the model"),
        (lambda m, b: m(b["x"]), r"fails on the first batch \(\{'x': Tensor\(24, 3\)"),
        (lambda m, b: m(b["x"], b["z"], b["y"]), "fails on the first batch"),
    ],
)
def test_a_loss_the_walk_cannot_use_is_refused_naming_what_it_returned(loss_fn, match):
    with pytest.raises(ProblemError, match=match):
        mt.from_loss(TwoInputs(), loss_fn, data())


def test_a_model_output_without_its_loss_gets_a_hint():
    class Output:
        def __init__(self, loss):
            self.loss = loss

    with pytest.raises(ProblemError, match=r"has a \.loss: return that"):
        mt.from_loss(TwoInputs(), lambda m, b: Output(dict_loss(m, b)), data())
    with pytest.raises(ProblemError, match=r"\.loss is None.*labels"):
        mt.from_loss(TwoInputs(), lambda m, b: Output(None), data())


def test_wrong_arguments_are_refused_by_name():
    model, d = TwoInputs(), data()
    with pytest.raises(TypeError, match="swapped"):
        mt.from_loss(dict_loss, model, d)
    with pytest.raises(TypeError, match=r"CrossEntropyLoss, a function of outputs and targets"):
        mt.from_loss(model, nn.CrossEntropyLoss(), d)
    with pytest.raises(TypeError, match="CrossEntropyLoss, a function"):
        mt.from_loss(model, nn.CrossEntropyLoss, d)
    with pytest.raises(TypeError, match="one-shot iterator"):
        mt.from_loss(model, dict_loss, iter(split(d, [5])))
    with pytest.raises(TypeError, match="batch_size is a function"):
        mt.from_loss(model, dict_loss, d, batch_size=8)
    with pytest.raises(ProblemError, match="empty"):
        mt.from_loss(model, dict_loss, [])
    with pytest.raises(ValueError, match="compile must be"):
        mt.from_loss(model, dict_loss, d, compile="fast")
    with pytest.raises(ProblemError, match="one batch or a list"):
        mt.from_loss(model, dict_loss, lambda: iter(split(d, [5])), compile=True)
    problem = mt.from_loss(model, dict_loss, d)
    with pytest.raises(TypeError, match="from_loss"):
        mt.walk_batch([problem, problem])
    from manifoldwalk_torch.distributed import DistributedTorchProblem

    with pytest.raises(TypeError, match="from_model problem"):
        DistributedTorchProblem(problem, N)


# --- what problems offer --------------------------------------------------------------------------


def test_evaluate_takes_batches_and_metric_functions(one_batch):
    d = data(seed=3)
    accuracy = lambda m, b: (m(b["x"], b["z"]).argmax(-1) == b["y"]).double().mean()  # noqa: E731
    theta = one_batch.theta0
    got = one_batch.evaluate(
        theta, split(d, [4, 11]), metrics={"acc": accuracy, "two": lambda m, b: 2}
    )
    one_batch.assign(theta)
    with torch.no_grad():
        logits = one_batch.model(d["x"], d["z"])
    assert got["loss"] == pytest.approx(F.cross_entropy(logits, d["y"]).item(), rel=1e-13)
    assert got["acc"] == pytest.approx(
        (logits.argmax(-1) == d["y"]).double().mean().item(), rel=1e-13
    )
    assert got["two"] == 2.0
    # weights of one's own: the first batch counted ten times as much
    weighted = one_batch.evaluate(
        theta,
        split(d, [4]),
        batch_size=lambda b: 10 * len(b["y"]) if len(b["y"]) == 4 else len(b["y"]),
    )
    first, rest = (one_batch.evaluate(theta, part)["loss"] for part in split(d, [4]))
    assert weighted["loss"] == pytest.approx((40 * first + 20 * rest) / 60, rel=1e-13)
    with pytest.raises(ValueError, match='"loss" is always'):
        one_batch.evaluate(theta, d, metrics={"loss": accuracy})
    with pytest.raises(ProblemError, match=r"metric 'bad' must return .*, got Tensor\(24, 2\)"):
        one_batch.evaluate(theta, d, metrics={"bad": lambda m, b: m(b["x"], b["z"])})
    with pytest.raises(TypeError, match="must be callable"):
        one_batch.evaluate(theta, d, metrics={"bad": 3})


@pytest.mark.parametrize("reg", ["l2-weights", lambda t: (t**4).sum()])
def test_regularisers_and_a_walk_that_holds_the_loss_and_lowers_r(reg):
    torch.manual_seed(2)
    model, d = TwoInputs(), data()
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(200):
        opt.zero_grad()
        dict_loss(model, d).backward()
        opt.step()
    problem = mt.from_loss(model, dict_loss, split(d, [10]), reg=reg)
    theta = problem.theta0
    if reg == "l2-weights":  # the kernels only, not the biases
        expected = sum((p * p).sum() for p in model.parameters() if p.dim() >= 2)
    else:
        expected = reg(theta)
    assert problem.reg(theta).item() == pytest.approx(expected.item(), rel=1e-12)
    result = mw.walk(problem, problem.theta0, stop=mw.Stop(max_steps=100))
    deviation = np.abs(np.asarray(result.history["loss"]) - result.level)
    assert len(deviation) > 10 and np.all(deviation <= result.tolerance)
    assert result.history["reg"][-1] < 0.9 * result.history["reg"][0]
    np.testing.assert_allclose(
        problem.reg(result.theta).item(), result.history["reg"][-1], rtol=1e-12
    )


def test_as_float64_and_check_gradient_on_a_float32_model():
    model = TwoInputs(torch.float32)
    d = {k: v.numpy() for k, v in data().items()}
    problem = mt.from_loss(
        model, dict_loss, [{k: v[:9] for k, v in d.items()}, {k: v[9:] for k, v in d.items()}]
    )
    wide = problem.as_float64()
    assert isinstance(wide, mt.TorchLossProblem) and wide.dtype == torch.float64
    assert wide.model is not model and next(model.parameters()).dtype == torch.float32
    theta = problem.theta0
    assert wide.loss(theta.double()).item() == pytest.approx(problem.loss(theta).item(), rel=1e-6)
    report = mw.check_gradient(problem, theta)
    assert report.passed, report.message


def test_compiled_walk_on_dict_batches_takes_the_eager_path(one_batch):
    d = data()
    torch.manual_seed(3)
    model = copy.deepcopy(one_batch.model)
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(100):
        opt.zero_grad()
        dict_loss(model, d).backward()
        opt.step()
    eager = mt.from_loss(model, dict_loss, split(d, [10]), reg="l2-weights")
    fast = mt.from_loss(model, dict_loss, split(d, [10]), reg="l2-weights", compile=True)
    a = mw.walk(eager, eager.theta0, stop=mw.Stop(max_steps=60))
    b = mw.walk(fast, fast.theta0, stop=mw.Stop(max_steps=60))
    assert_same_walk(a, b, a.theta.numpy(), b.theta.numpy())


def test_compile_names_a_loss_it_cannot_trace():
    def branchy(m, b):
        loss = dict_loss(m, b)
        return loss * 2 if loss.item() > 100 else loss  # a branch on a tensor's value

    problem = mt.from_loss(TwoInputs(), branchy, data(), compile=True)
    with pytest.raises(ProblemError, match=r"cannot trace the walk step.*compile=False"):
        mw.walk(problem, problem.theta0, stop=mw.Stop(max_steps=2))


class Normed(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(3, 4, dtype=torch.float64)
        self.norm = nn.BatchNorm1d(4, dtype=torch.float64)
        self.drop = nn.Dropout(0.5)

    def forward(self, x):
        return self.drop(self.norm(self.lin(x)))


def test_eval_mode_warning_and_buffers_changed_after_wrapping_are_refused():
    model, d = Normed(), data()
    loss_fn = lambda m, b: m(b["x"]).pow(2).mean()  # noqa: E731
    with pytest.warns(UserWarning, match=r"Dropout|BatchNorm"):
        problem = mt.from_loss(model, loss_fn, d)
    # eval mode: dropout off, so the loss is a function of θ
    assert torch.equal(problem.loss(problem.theta0), problem.loss(problem.theta0))
    assert model.training
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model(d["x"])  # a training-mode pass updates the running statistics
    with pytest.raises(ProblemError, match="buffer 'norm.num_batches_tracked' changed"):
        problem.loss(problem.theta0)


def docs_blocks() -> list[str]:
    """The python blocks of docs/adapters.md's "Any batch: from_loss" section."""
    import re
    from pathlib import Path

    text = (Path(__file__).parents[2] / "docs" / "adapters.md").read_text(encoding="utf-8")
    section = text.split("### Any batch: `from_loss`", 1)[1].split("\n### ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, re.S)


def test_docs_example_runs(capsys):
    """The dict-batch example in docs/adapters.md runs and walks as it says."""
    example = docs_blocks()[0]
    namespace = {"__name__": "docs_example"}
    exec(compile(example, "docs/adapters.md", "exec"), namespace)  # noqa: S102 - our own docs
    result, problem = namespace["result"], namespace["problem"]
    out = capsys.readouterr().out
    assert "max_steps" in out and "test accuracy along the walk" in out
    assert not problem._data.single and result.reg < result.history["reg"][0]
