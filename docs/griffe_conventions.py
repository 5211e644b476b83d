"""Griffe extension for the docs site: the project's docstring conventions, read as Markdown.

Two conventions of the project's docstrings are not Google style as Griffe and mkdocstrings
read it, so before a docstring is parsed this rewrites them:

- Parameters that share one meaning are documented on one line (``x, y: the training data``;
  ``problem, theta0, scheme, ...: as for walk``). Griffe would read one parameter named ``x, y``,
  which the signature lacks (a warning, so a failed ``mkdocs build --strict``). Such an entry
  becomes one entry per name with the same description; a trailing ``...`` (the remaining
  parameters, "as for" another function) is dropped. Every name must still be in the signature:
  a misspelt one is still a warning.
- Cross-references are written as Sphinx roles (``:func:`walk```, ``:class:`~manifoldwalk.Stop```),
  which Markdown would print as they stand. Each becomes its name in code, linked to the object's
  entry when the site documents it (an optional cross-reference: no link, and no warning, when
  it does not, as for an internal ``_module``).

Loaded by ``mkdocs.yml`` (``plugins.mkdocstrings.handlers.python.options.extensions``).
"""

from __future__ import annotations

import re
from html import escape
from typing import Any

from griffe import Extension, Object

ARGS_HEADERS = frozenset(
    {
        "args",
        "arguments",
        "params",
        "parameters",
        "keyword args",
        "keyword arguments",
        "other args",
        "other arguments",
        "other params",
        "other parameters",
    }
)
"""Section titles (lower case, without the colon) whose entries name parameters."""

_HEADER = re.compile(r"^([A-Za-z][A-Za-z ]*):\s*$")
_NAME = r"\*{0,2}[A-Za-z_]\w*"
# "a, b (type): text", "a, b, ...: text"; the type is optional, as in Google style
_GROUPED = re.compile(
    rf"^(?P<indent>\s+)(?P<names>{_NAME}(?:\s*,\s*(?:{_NAME}|\.\.\.))+)"
    r"(?P<annotation>\s*\([^)]*\))?:(?P<text>.*)$"
)


def split_grouped_args(docstring: str) -> str:
    """Rewrite each grouped ``Args:`` entry of a docstring into one entry per name.

    Args:
        docstring: the docstring's text, dedented (as Griffe holds it).

    Returns:
        The text with ``a, b: text`` (and its continuation lines) repeated once per name and
        ``...`` left out; lines outside argument sections are unchanged.
    """
    lines = docstring.split("\n")
    out: list[str] = []
    in_args = False
    entry_indent = None  # the indent of the section's entries (deeper lines continue one)
    i = 0
    while i < len(lines):
        line = lines[i]
        if line and not line[0].isspace():
            header = _HEADER.match(line)
            in_args = bool(header) and header.group(1).strip().lower() in ARGS_HEADERS
            entry_indent = None
            out.append(line)
            i += 1
            continue
        if in_args and entry_indent is None and line.strip():
            entry_indent = len(line) - len(line.lstrip())
        match = _GROUPED.match(line) if in_args else None
        if match is not None and len(match.group("indent")) != entry_indent:
            match = None
        if match is None:
            out.append(line)
            i += 1
            continue
        indent = match.group("indent")
        # continuation lines: indented deeper than the entry, or blank inside the section
        j = i + 1
        while j < len(lines) and (
            not lines[j].strip() or len(lines[j]) - len(lines[j].lstrip()) > len(indent)
        ):
            j += 1
        while j > i + 1 and not lines[j - 1].strip():
            j -= 1  # trailing blank lines belong to what follows
        rest = lines[i + 1 : j]
        names = [n.strip() for n in match.group("names").split(",") if n.strip() != "..."]
        for name in names:
            out.append(f"{indent}{name}{match.group('annotation') or ''}:{match.group('text')}")
            out.extend(rest)
        i = j
    return "\n".join(out)


_ROLE = re.compile(r":(?:py:)?(?P<role>func|class|meth|mod|attr|data|exc|obj):`(?P<target>[^`]+)`")
_EXPLICIT_TITLE = re.compile(r"^(.*?)\s*<([^<>]+)>$")
# targets under these are absolute; any other is looked up relative to the docstring's object
_ABSOLUTE_ROOTS = frozenset(
    {"manifoldwalk", "manifoldwalk_torch", "manifoldwalk_jax", "manifoldwalk_tf"}
    | {"numpy", "scipy", "torch", "jax", "tensorflow", "keras", "os", "pathlib", "hypothesis"}
)


def _scope(obj: Object, role: str) -> str:
    """The path a relative target of ``role`` in ``obj``'s docstring is looked up under."""
    if role in ("meth", "attr"):  # a member of the class the docstring belongs to (or is in)
        if obj.is_class:
            return obj.path
        if obj.parent is not None and obj.parent.is_class:
            return obj.parent.path
    return obj.path if obj.is_module else obj.module.path


def link_roles(docstring: str, obj: Object) -> str:
    """Replace each Sphinx role in a docstring by an optional cross-reference to its target.

    Args:
        docstring: the docstring's text.
        obj: the object the docstring belongs to; a relative target (``walk``,
            ``RunConfig.for_seed``) is looked up in its module, or for ``:meth:`` and ``:attr:``
            without a dot in its class.

    Returns:
        The text with ``:role:`target``` replaced by ``<autoref identifier=... optional>``
        around the name in code (its last part where the target starts with ``~``, the title
        where the role reads ``:role:`title <target>```).
    """

    def replace(match: re.Match[str]) -> str:
        target = match.group("target").strip()
        explicit = _EXPLICIT_TITLE.match(target)  # "title <target>"
        if explicit:
            title, target = explicit.group(1), explicit.group(2)
        short = target.startswith("~")
        target = target.lstrip("~.")
        path = target.removesuffix("()")
        if not explicit:
            title = path.rsplit(".", 1)[-1] if short else target
        if path.split(".", 1)[0] not in _ABSOLUTE_ROOTS:
            role = match.group("role")
            if "." in path and role in ("meth", "attr"):
                path = f"{obj.module.path}.{path}"
            else:
                path = f"{_scope(obj, role)}.{path}"
        return (
            f'<autoref identifier="{escape(path)}" optional><code>{escape(title)}</code></autoref>'
        )

    return _ROLE.sub(replace, docstring)


class DocstringConventions(Extension):
    """Rewrite every loaded object's docstring (grouped ``Args:`` entries, Sphinx roles)."""

    def on_instance(self, *, obj: Object, **kwargs: Any) -> None:
        """Rewrite ``obj``'s docstring before it is parsed (Griffe calls this for every object).

        Args:
            obj: the module, class, function or attribute just created.
            **kwargs: the rest of Griffe's event arguments (unused).
        """
        if obj.docstring is not None:
            obj.docstring.value = link_roles(split_grouped_args(obj.docstring.value), obj)
