"""load_adapter: adapters by name, and a one-line error naming the extra when one is missing."""

from __future__ import annotations

import sys

import pytest

from manifoldwalk import _load_adapter as backends
from manifoldwalk._load_adapter import ADAPTERS, load_adapter


def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(ValueError, match="'torch', 'jax', 'tensorflow'"):
        load_adapter("mxnet")
    with pytest.raises(ValueError, match="unknown adapter"):
        load_adapter(None)  # type: ignore[arg-type]


def test_importing_manifoldwalk_imports_no_framework():
    import subprocess

    code = (
        "import sys, manifoldwalk, manifoldwalk._load_adapter; "
        "print([m for m in ('torch', 'jax', 'tensorflow') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_torch_adapter_loads():
    pytest.importorskip("torch")
    assert load_adapter("torch").__name__ == "manifoldwalk_torch"


@pytest.mark.parametrize("name", list(ADAPTERS))
def test_missing_framework_names_the_extra(name, monkeypatch):
    adapter = ADAPTERS[name]
    framework_module = {"torch": "torch", "jax": "jax", "tensorflow": "tensorflow"}[name]
    monkeypatch.setitem(sys.modules, framework_module, None)  # "not installed"
    for module in [m for m in sys.modules if m.split(".")[0] == adapter.module]:
        monkeypatch.delitem(sys.modules, module)
    with pytest.raises(ImportError, match=rf"pip install manifoldwalk\[{adapter.extra}\]"):
        load_adapter(name)


def test_missing_adapter_package_names_the_extra(monkeypatch):
    monkeypatch.setitem(
        ADAPTERS, "torch", backends._Adapter("manifoldwalk_no_such_package", "PyTorch", "torch")
    )
    with pytest.raises(ImportError, match=r"needs PyTorch.*pip install manifoldwalk\[torch\]"):
        load_adapter("torch")
