"""The version is written once and everything that shows it agrees."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import manifoldwalk

ROOT = Path(__file__).resolve().parents[1]


def test_citation_and_changelog_follow_the_version():
    citation = (ROOT / "CITATION.cff").read_text()
    assert re.search(rf"^version: {re.escape(manifoldwalk.__version__)}$", citation, re.M)
    changelog = (ROOT / "CHANGELOG.md").read_text()
    top = re.search(r"^## (\S+)", changelog, re.M)
    assert top and top.group(1) == manifoldwalk.__version__


def test_pyproject_reads_the_version_from_the_package():
    pyproject = (ROOT / "pyproject.toml").read_text()
    project = pyproject.split("[project]", 1)[1].split("\n[", 1)[0]
    assert 'dynamic = ["version"]' in project
    assert not re.search(r"^version\s*=", project, re.M)
    assert 'version = { attr = "manifoldwalk.__version__" }' in pyproject


def test_installed_metadata_matches():
    from importlib.metadata import version

    assert version("manifoldwalk") == manifoldwalk.__version__


def test_cli_prints_the_version():
    out = subprocess.run(
        [sys.executable, "-m", "manifoldwalk", "--version"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == f"manifoldwalk {manifoldwalk.__version__}"


def test_built_wheel_installs_and_runs_in_a_fresh_venv(tmp_path):
    # the wheel holds the package data the CLI needs (Auto-MPG's CSV, …) and its entry point
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", str(ROOT), "-w", str(wheels)],
        check=True,
        capture_output=True,
    )
    (wheel,) = wheels.glob("manifoldwalk-*.whl")
    assert f"-{manifoldwalk.__version__}-" in wheel.name
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    bindir = venv / ("Scripts" if sys.platform == "win32" else "bin")
    subprocess.run(
        [str(bindir / "python"), "-m", "pip", "install", "-q", str(wheel)],
        check=True,
        capture_output=True,
    )
    out = subprocess.run(
        [str(bindir / "manifoldwalk"), "circle"], capture_output=True, text=True, check=True
    )
    assert "stationary" in out.stdout
    listing = subprocess.run(
        [
            str(bindir / "python"),
            "-c",
            "import manifoldwalk.datasets as d; print(d.load_auto_mpg(seed=0).x_train.shape)",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert listing.stdout.strip() == "(314, 9)"
