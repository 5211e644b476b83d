"""The ``manifoldwalk`` command: the README's main job."""

from __future__ import annotations

import subprocess
import sys

from manifoldwalk.cli import main


def test_circle_prints_the_table_with_the_papers_answer(capsys):
    assert main(["circle", "--schemes", "default", "paper"]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line.split() for line in out.splitlines() if line[:1].isalpha()}
    for scheme in ("default", "paper"):
        x, y, angle = map(float, lines[scheme][1:4])
        assert abs(x + 0.70711) < 1e-3 and abs(y + 0.70711) < 1e-3 and angle > 179.9
    assert "exact minimiser: (-0.70711, -0.70711)" in out


def test_unknown_commands_and_choices_fail_with_a_usage_message():
    done = subprocess.run(
        [sys.executable, "-m", "manifoldwalk", "circle", "--schemes", "fast"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2 and "invalid choice" in done.stderr and "paper" in done.stderr
