"""Write docs/api.md from the public names' docstrings: ``python docs/make_api.py``.

``tests/test_docs.py`` regenerates the page and fails if the committed one differs,
so the API page always matches the docstrings.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

MODULES = {
    "manifoldwalk": None,  # the names in __all__
    "manifoldwalk.problems": [
        "Quadric",
        "Sphere",
        "Circle",
        "QuadricDistance",
        "kkt_residual",
        "is_local_min",
        "lagrange_multiplier",
        "SphereHyperplane",
        "EllipsoidHyperplane",
        "TwoSpheres",
    ],
    "manifoldwalk.multi": ["history_columns", "prepare_constrained"],
    "manifoldwalk.stacking": ["StackedProblem"],
    "manifoldwalk.curvature": None,
    "manifoldwalk.testing": None,
    "manifoldwalk.adapter_api": None,
}


def _signature(obj) -> str:
    try:
        text = str(inspect.signature(obj))
    except (TypeError, ValueError):
        return ""
    # Default values that are functions print with their address; keep only the name.
    return re.sub(r"<function (\w+) at 0x[0-9a-f]+>", r"\1", text)


def render() -> str:
    """The API page as Markdown."""
    import importlib

    lines = [
        "# API reference",
        "",
        "Generated from the docstrings by `python docs/make_api.py`; do not edit by hand.",
        "",
    ]
    for module_name, names in MODULES.items():
        module = importlib.import_module(module_name)
        lines += [f"## `{module_name}`", "", inspect.cleandoc(module.__doc__ or ""), ""]
        for name in names or module.__all__:
            obj = getattr(module, name)
            kind = "class" if inspect.isclass(obj) else "function" if callable(obj) else "data"
            sig = _signature(obj) if kind != "data" else ""
            lines += [f"### `{name}{sig}`" if kind == "function" else f"### `{name}` ({kind})", ""]
            doc = inspect.getdoc(obj) if kind != "data" else None
            if doc:
                lines += [doc, ""]
            if kind == "class":
                for member, value in inspect.getmembers(obj):
                    if member.startswith("_") or not (
                        callable(value) or isinstance(value, property)
                    ):
                        continue
                    if member in getattr(obj, "__dataclass_fields__", {}):
                        continue
                    if issubclass(obj, tuple) and member in ("count", "index"):
                        continue
                    mdoc = inspect.getdoc(value)
                    if mdoc:
                        lines += [f"- `{member}`: {mdoc.splitlines()[0]}"]
                lines.append("")
    return "\n".join(lines).rstrip() + "\n"


if __name__ == "__main__":
    path = Path(__file__).with_name("api.md")
    path.write_text(render())
    print(f"wrote {path}")
