"""The documentation site (mkdocs.yml): it builds strictly, covers every public module, and every
public name it documents has a docstring.

The build and the docstring checks read the sources statically (Griffe): no framework is
imported, so they run wherever the ``docs`` extra is installed.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

pytest.importorskip("mkdocs", reason="the docs site needs the docs extra: pip install '.[docs]'")
griffe = pytest.importorskip("griffe", reason="the docs site needs the docs extra")

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
REFERENCE = DOCS / "reference"
PACKAGES = {  # top-level package -> the folder it is found in
    "manifoldwalk": ROOT,
    "manifoldwalk_torch": ROOT / "adapters",
    "manifoldwalk_jax": ROOT / "adapters",
    "manifoldwalk_tf": ROOT / "adapters",
}


def referenced_modules() -> dict[str, str]:
    """Every module rendered by a ``::: module`` block of docs/reference/, with its page."""
    found: dict[str, str] = {}
    for page in sorted(REFERENCE.glob("*.md")):
        for name in re.findall(r"^::: ([\w.]+)\s*$", page.read_text(encoding="utf-8"), re.M):
            assert name not in found, f"{name} is rendered on both {found[name]} and {page.name}"
            found[name] = page.name
    return found


def public_modules() -> set[str]:
    """Every module of the four packages whose dotted name has no part starting with ``_``."""
    names = set()
    for package, parent in PACKAGES.items():
        for path in (parent / package).rglob("*.py"):
            parts = path.relative_to(parent).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            if not any(part.startswith("_") for part in parts):
                names.add(".".join(parts))
    return names


@pytest.fixture(scope="module")
def loader():
    """The four packages loaded statically by Griffe, as mkdocstrings loads them."""
    loader = griffe.GriffeLoader(
        search_paths=[str(ROOT), str(ROOT / "adapters")],
        docstring_parser=griffe.Parser.google,
    )
    for package in PACKAGES:
        loader.load(package)
    loader.resolve_aliases(external=False, implicit=False)
    return loader


def public_members(loader, module: str):
    """``(name, object or alias)`` for each public non-module member, as the site renders them."""
    obj = loader.modules_collection[module]
    return [(n, m) for n, m in obj.members.items() if m.is_public and not m.is_module]


@pytest.fixture(scope="module")
def built_site(tmp_path_factory) -> Path:
    """``mkdocs build --strict`` into a temporary folder; fails with the build's messages."""
    site = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}  # a banner on stderr, not a finding
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    messages = [ln for ln in (done.stdout + done.stderr).splitlines() if "WARNING" in ln]
    assert done.returncode == 0, "mkdocs build --strict failed:\n" + (
        "\n".join(messages) or done.stderr[-4000:]
    )
    return site


def test_strict_build_succeeds(built_site):
    for page in ["index.html", "reference/core/index.html", "reference/torch/index.html"]:
        assert (built_site / page).is_file(), f"the site has no {page}"


def test_every_public_module_has_a_reference_page():
    rendered = set(referenced_modules())
    missing = sorted(public_modules() - rendered - {"manifoldwalk.__main__"})
    assert not missing, (
        "public modules missing from docs/reference/ (add a '::: module' block to the page of "
        f"their package): {missing}"
    )
    unknown = sorted(rendered - public_modules())
    assert not unknown, f"docs/reference/ renders modules that are not public modules: {unknown}"


def test_every_public_name_has_a_docstring(loader):
    undocumented = []
    for module in referenced_modules():
        for name, member in public_members(loader, module):
            target = member.final_target if member.is_alias else member
            if target.docstring is None or not target.docstring.value.strip():
                undocumented.append(f"{module}.{name} (defined at {target.path})")
    assert not undocumented, "public names without a docstring:\n" + "\n".join(undocumented)


def _inventory(site: Path) -> set[str]:
    """The object names of the site's objects.inv (Sphinx inventory, version 2)."""
    raw = (site / "objects.inv").read_bytes()
    body = raw.split(b"\n", 4)[4]  # four header lines, then zlib
    return {line.split(" ", 1)[0] for line in zlib.decompress(body).decode().splitlines()}


def test_every_public_name_is_rendered(built_site, loader):
    """A package block that leaves out its re-exports relies on their defining module's block."""
    inventory = _inventory(built_site)
    missing = []
    for module in referenced_modules():
        assert module in inventory, f"{module} is not rendered"
        for name, member in public_members(loader, module):
            target = member.final_target if member.is_alias else member
            if f"{module}.{name}" not in inventory and target.path not in inventory:
                missing.append(f"{module}.{name} (defined at {target.path})")
    assert not missing, "public names the site does not render:\n" + "\n".join(missing)


def test_every_measurement_is_listed():
    index = (DOCS / "measurements" / "index.md").read_text(encoding="utf-8")
    listed = set(re.findall(r"\]\(([^)#]+)\)", index))
    files = {p.name for p in (DOCS / "measurements").iterdir() if p.name != "index.md"}
    missing = sorted(files - listed)
    assert not missing, f"add these to docs/measurements/index.md: {missing}"


def test_getting_started_example_runs():
    import numpy as np

    text = (DOCS / "index.md").read_text(encoding="utf-8")
    block = next(b for b in re.findall(r"```python\n(.*?)```", text, re.S) if "import" in b)
    namespace: dict = {}
    exec(compile(block, "docs/index.md", "exec"), namespace)  # noqa: S102 - our own docs
    result = namespace["result"]
    # what the page's comment says it prints
    np.testing.assert_allclose(result.theta, [-0.7071, -0.7071], atol=1e-4)
    assert abs(result.angle - 180.0) < 1e-3
    assert result.stop_reason == "stationary"


def _conventions():
    """docs/griffe_conventions.py, the Griffe extension mkdocs.yml loads."""
    spec = importlib.util.spec_from_file_location(
        "griffe_conventions", DOCS / "griffe_conventions.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


CONVENTIONS = _conventions()
IDENTIFIERS = st.from_regex(r"[a-z_][a-z0-9_]{0,8}", fullmatch=True)


@given(
    names=st.lists(IDENTIFIERS, min_size=2, max_size=5, unique=True),
    text=st.from_regex(r"[a-z][a-z ,.]{0,30}", fullmatch=True),
    more=st.booleans(),
)
def test_grouped_args_become_one_entry_per_name(names, text, more):
    group = ", ".join(names + (["..."] if more else []))
    first = "    first: x,\n        c, d: a continuation line, not an entry.\n"
    rest = "    last: x.\n\nReturns:\n    a, b: y.\n"  # outside Args: unchanged
    doc = f"Walk.\n\nArgs:\n{first}    {group}: {text}\n        more.\n{rest}"
    entries = "".join(f"    {name}: {text}\n        more.\n" for name in names)
    assert CONVENTIONS.split_grouped_args(doc) == f"Walk.\n\nArgs:\n{first}{entries}{rest}"


def test_sphinx_roles_become_optional_cross_references():
    code = '''
class Walker:
    def go(self):
        """See :meth:`stop`, :func:`walk`, :class:`~manifoldwalk.Stop` and
        :meth:`join <manifoldwalk_jax._flat.FlatParams.join>`."""
'''
    with griffe.temporary_visited_module(code, module_name="walkers") as module:
        go = module["Walker.go"]
        out = CONVENTIONS.link_roles(go.docstring.value, go)
    ref = '<autoref identifier="{}" optional><code>{}</code></autoref>'
    assert out == (
        f"See {ref.format('walkers.Walker.stop', 'stop')}, "
        f"{ref.format('walkers.walk', 'walk')}, "
        f"{ref.format('manifoldwalk.Stop', 'Stop')} and\n"
        f"{ref.format('manifoldwalk_jax._flat.FlatParams.join', 'join')}."
    )
