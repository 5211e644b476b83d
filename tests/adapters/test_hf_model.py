"""A real Hugging Face model through manifoldwalk_torch.from_loss: a tiny randomly initialised
BertForSequenceClassification (built from a config, nothing fetched from a hub), trained on a
synthetic token task, then walked on dict batches with ``lambda m, b: m(**b).loss``."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"  # before transformers is imported: no hub at run time

import manifoldwalk_torch as mt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from transformers import BertConfig, BertForSequenceClassification  # noqa: E402

import manifoldwalk as mw  # noqa: E402

VOCAB, LENGTH, N = 12, 8, 48
MARK = 5
"""The label says whether token MARK appears in the sequence."""


@pytest.fixture(scope="module")
def _threads():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _one_thread(_threads):
    """One intra-op thread for the module's tests (see test_torch_adapter.py)."""


def token_task(seed: int) -> dict[str, torch.Tensor]:
    """N sequences of LENGTH tokens (1..VOCAB-1), half of them holding MARK, and their labels."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, VOCAB, (N, LENGTH), generator=g)
    ids[ids == MARK] = MARK + 1
    with_mark = torch.arange(N) % 2 == 0
    where = torch.randint(0, LENGTH, (N,), generator=g)
    ids[with_mark, where[with_mark]] = MARK
    return {
        "input_ids": ids,
        "attention_mask": torch.ones_like(ids),
        "labels": with_mark.long(),
    }


@pytest.fixture(scope="module")
def trained(_threads):
    """The tiny BERT (dropout 0.1 as configured), trained with Adam in float64 to low loss,
    left in training mode."""
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=VOCAB,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=LENGTH,
        num_labels=2,
        hidden_dropout_prob=0.1,
        attention_probs_dropout_prob=0.1,
    )
    model = BertForSequenceClassification(config).double()
    data = token_task(0)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(150):
        opt.zero_grad()
        model(**data).loss.backward()
        opt.step()
    return model, data


def loss_fn(m, b):
    return m(**b).loss


def test_the_problem_evaluates_bert_in_eval_mode_without_changing_it(trained):
    model, data = trained
    batches = [{k: v[:20] for k, v in data.items()}, {k: v[20:] for k, v in data.items()}]
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    with pytest.warns(UserWarning, match="Dropout"):
        problem = mt.from_loss(model, loss_fn, batches)
    theta = problem.theta0
    first, second = problem.loss(theta), problem.loss(theta)
    assert torch.equal(first, second)  # dropout off: a function of θ
    model.eval()
    with torch.no_grad():
        expected = model(**data).loss
    model.train()
    assert first.item() == pytest.approx(expected.item(), rel=1e-12)
    assert model.training and all(m.training for m in model.modules())
    for n, p in model.named_parameters():
        assert torch.equal(p, before[n]), n


def test_a_walk_of_trained_bert_holds_the_loss_and_lowers_r(trained):
    model, data = trained
    batches = [{k: v[:20] for k, v in data.items()}, {k: v[20:] for k, v in data.items()}]
    with pytest.warns(UserWarning, match="Dropout"):
        problem = mt.from_loss(model, loss_fn, batches)
    level = problem.loss(problem.theta0).item()
    assert level < 0.1  # trained: the walk explores a low-loss level set
    accuracy = {
        "acc": lambda m, b: (m(**b).logits.argmax(-1) == b["labels"]).double().mean(),
    }
    held_out = token_task(1)
    assert problem.evaluate(problem.theta0, held_out, metrics=accuracy)["acc"] > 0.9
    result = mw.walk(
        problem, problem.theta0, stop=mw.Stop(max_steps=300), record=mw.Record(every=5)
    )
    deviation = np.abs(np.asarray(result.history["loss"]) - result.level)
    assert len(deviation) >= 20 and np.all(deviation <= result.tolerance)
    assert abs(problem.loss(result.theta).item() - level) <= result.tolerance
    assert result.reg < 0.95 * result.history["reg"][0]
    assert problem.evaluate(result.theta, held_out, metrics=accuracy)["acc"] > 0.9


def test_docs_example_runs(capsys):
    """docs/adapters.md's Hugging Face example runs and walks."""
    from test_torch_from_loss import docs_blocks

    example = docs_blocks()[1]
    assert "BertForSequenceClassification" in example
    namespace = {"__name__": "docs_example"}
    with pytest.warns(UserWarning, match="Dropout"):
        exec(compile(example, "docs/adapters.md", "exec"), namespace)  # noqa: S102 - our own docs
    result = namespace["result"]
    assert "max_steps" in capsys.readouterr().out
    assert result.n_predictor == 50 and result.reg < result.history["reg"][0]
    assert abs(result.loss - result.level) <= result.tolerance
