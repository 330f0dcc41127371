"""A griffe extension for the docs build: fence docstrings' ``>>>`` examples as ``pycon`` blocks, Sphinx roles as code.

Our docstrings write runnable doctest examples in prose (the test suite runs them); unfenced, Markdown would
read their outputs (``['a', 'b']``) as links. Used by ``mkdocs.yml`` (mkdocstrings' python handler).
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:class|func|meth|mod|attr|data|exc|obj):`(~?)([^`]+)`")


def roles(text: str) -> str:
    """Sphinx roles (``:class:`~a.b.C```) as Markdown code (`` `C` ``; the full path without ``~``)."""
    return _ROLE.sub(lambda m: f"`{m.group(2).rsplit('.', 1)[-1] if m.group(1) else m.group(2)}`", text)


def fence(text: str) -> str:
    """Wrap each run of doctest lines (a ``>>>`` line, its ``...`` continuations and its output up to the next
    blank line) in a fenced ``pycon`` block."""
    out: list[str] = []
    in_block = False
    for line in text.splitlines():
        stripped = line.strip()
        if not in_block and stripped.startswith(">>>"):
            out.append("```pycon")
            in_block = True
        elif in_block and not stripped:
            out.append("```")
            in_block = False
        out.append(line.strip() if in_block else line)
    if in_block:
        out.append("```")
    return "\n".join(out)


class FenceDoctests(griffe.Extension):
    """Fence doctest examples in every loaded object's docstring."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = fence(roles(obj.docstring.value))
