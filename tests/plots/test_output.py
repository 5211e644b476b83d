"""Writing into an output directory never writes through a link out of it."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest

from manifoldwalk.plots import output
from manifoldwalk.plots.output import LinkError, OutputDir
from manifoldwalk.plots.report import Block, write_report


@pytest.fixture(autouse=True, params=["descriptors", "paths"])
def way(request, monkeypatch):
    """Each test twice: with directory descriptors (POSIX) and with the checks on paths (the
    way where the system has no ``O_NOFOLLOW`` or ``*at`` calls)."""
    monkeypatch.setattr(output, "_AT", request.param == "descriptors" and output._AT)
    return request.param


@pytest.fixture
def outside(tmp_path):
    """A private file outside the output directory."""
    target = tmp_path / "outside" / "secret.txt"
    target.parent.mkdir()
    target.write_text("keep me")
    target.chmod(0o600)
    return target


def _unchanged(target) -> None:
    assert target.read_text() == "keep me"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def _mode(path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_a_symlink_at_a_files_name_is_replaced_not_followed(tmp_path, outside):
    out = OutputDir(tmp_path / "out").sub("exp")
    out.make()
    link = out.path / "phase2.png"
    link.symlink_to(outside)
    out.write_bytes("phase2.png", b"new figure")
    _unchanged(outside)
    assert not link.is_symlink() and link.read_bytes() == b"new figure"
    umask = os.umask(0o022)
    os.umask(umask)
    assert _mode(link) == 0o666 & ~umask


def test_a_hard_link_and_a_dangling_link_are_replaced(tmp_path, outside):
    out = OutputDir(tmp_path / "out")
    out.make()
    os.link(outside, out.path / "pca.json")
    (out.path / "x.csv").symlink_to(tmp_path / "nowhere" / "x.csv")
    out.write_json("pca.json", {"a": 1})
    out.write_csv("x.csv", ["a"], [[1.5]])
    _unchanged(outside)
    assert (out.path / "x.csv").read_text() == "a\n1.5\n"
    assert not (tmp_path / "nowhere").exists()


def test_new_files_respect_the_umask(tmp_path):
    old = os.umask(0o077)
    try:
        path = OutputDir(tmp_path / "out").write_npz("s.npz", a=np.arange(3))
    finally:
        os.umask(old)
    assert _mode(path) == 0o600
    with np.load(path, allow_pickle=False) as z:
        np.testing.assert_array_equal(z["a"], [0, 1, 2])


def test_a_linked_directory_below_the_root_is_refused(tmp_path, outside):
    root = tmp_path / "out"
    root.mkdir()
    (root / "iris-ff").symlink_to(outside.parent, target_is_directory=True)
    with pytest.raises(LinkError, match=r"iris-ff is a link; refusing to write through it"):
        OutputDir(root).sub("iris-ff").write_bytes("secret.txt", b"x")
    (root / "runs").write_text("a file where a directory goes")
    with pytest.raises(LinkError, match="runs is not a directory"):
        OutputDir(root).sub("runs/grid14").make()
    _unchanged(outside)
    assert sorted(p.name for p in outside.parent.iterdir()) == ["secret.txt"]


def test_the_report_writer_replaces_links_too(tmp_path, outside):
    d = tmp_path / "out"
    d.mkdir()
    (d / "report.html").symlink_to(outside)
    md, page = write_report(d, "x", [Block("h1", "x"), Block("p", "text")])
    _unchanged(outside)
    assert page.read_text().startswith("<!DOCTYPE html>") and not page.is_symlink()
    assert md.read_text() == "# x\n\ntext\n"


def test_paths_leaving_the_output_are_refused(tmp_path):
    with pytest.raises(ValueError, match="'..'"):
        OutputDir(tmp_path).sub("../elsewhere")
    with pytest.raises(ValueError, match="absolute"):
        OutputDir(tmp_path).sub("/etc")
    with pytest.raises(ValueError, match="plain relative path"):
        OutputDir(tmp_path).write_bytes("../x", b"")


def test_a_directory_at_a_files_name_is_named(tmp_path):
    out = OutputDir(tmp_path)
    (tmp_path / "report.md").mkdir()
    with pytest.raises(IsADirectoryError, match="report.md is a directory"):
        out.write_text("report.md", "x")
    assert [p.name for p in tmp_path.iterdir()] == ["report.md"]  # no temporary file left
