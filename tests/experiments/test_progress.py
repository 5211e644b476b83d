"""The text progress bar of the experiment runner."""

from __future__ import annotations

import io

from manifoldwalk.experiments.progress import ProgressBar


def test_a_resumed_bar_counts_only_the_work_of_this_run():
    stream = io.StringIO()
    bar = ProgressBar(100, "seed 0 walk", unit="steps", stream=stream, interval=0, initial=90)
    bar.start -= 10.0  # ten seconds of this run, five steps done in them
    bar.update(95)
    line = stream.getvalue()
    assert "95/100 0.5 steps/s" in line and "left 10s" in line, line


def test_a_fresh_bar_counts_from_zero():
    bar = ProgressBar(100, "seed 0 walk", unit="steps", stream=io.StringIO(), interval=0)
    bar.start -= 10.0
    bar.update(20)
    assert "20/100 2.0 steps/s" in bar.line() and "left 40s" in bar.line()


def test_a_slow_bar_gives_its_rate_per_minute():
    bar = ProgressBar(3, "iris-ff seeds", unit="seeds", stream=io.StringIO(), interval=0)
    bar.start -= 120.0  # one seed in two minutes
    bar.update(1)
    assert "1/3 0.5 seeds/min" in bar.line() and "left 4m" in bar.line(), bar.line()


def test_progress_bar_is_tqdm_inside_jupyter_and_text_elsewhere(monkeypatch):
    import sys
    import types

    from manifoldwalk.experiments.progress import ProgressBar, progress_bar

    calls = []

    class FakeTqdm:
        def __init__(self, total, desc, unit, initial):
            self.n = initial
            calls.append(("new", total, desc, unit, initial))

        def update(self, k):
            self.n += k
            calls.append(("update", self.n))

        def set_postfix_str(self, text, refresh):
            calls.append(("postfix", text))

        def close(self):
            calls.append(("close",))

    fake_auto = types.ModuleType("tqdm.auto")
    fake_auto.tqdm = FakeTqdm
    monkeypatch.setitem(sys.modules, "tqdm", types.ModuleType("tqdm"))
    monkeypatch.setitem(sys.modules, "tqdm.auto", fake_auto)
    monkeypatch.delitem(sys.modules, "ipykernel", raising=False)
    assert isinstance(progress_bar(10, "walk", unit="steps", initial=2), ProgressBar)
    monkeypatch.setitem(sys.modules, "ipykernel", types.ModuleType("ipykernel"))
    bar = progress_bar(10, "walk", unit="steps", initial=2)
    bar.update(5, "R 3.1")
    bar.close()
    assert calls == [
        ("new", 10, "walk", "steps", 2),
        ("update", 5),
        ("postfix", "R 3.1"),
        ("close",),
    ]
    assert isinstance(progress_bar(10, "walk", enabled=False), ProgressBar)
