"""What a pickle asks for, read from its opcodes without executing anything (``pickletools.genops``).

:func:`inspect_pickle` walks the opcodes with a symbolic stack: it records every global the pickle imports
(``GLOBAL``, ``STACK_GLOBAL`` and protocol 0's ``INST``) and every persistent id it loads (a torch zip's
``('storage', type, key, location, numel)``). Nothing is imported or called; values the walk cannot know are
placeholders.
"""

from __future__ import annotations

import pickletools
from dataclasses import dataclass, field
from typing import Any

__all__ = ["PickleContents", "inspect_pickle"]


class _Unknown:
    def __repr__(self) -> str:
        return "<?>"


_UNKNOWN = _Unknown()
_MARK = object()


@dataclass(frozen=True)
class Global:
    """A global the pickle imports, as ``module.name``."""

    name: str


@dataclass
class PickleContents:
    """Globals (in first-use order, no repeats) and persistent ids (tuples, placeholders where unknown)."""

    globals: list[str] = field(default_factory=list)
    persistent_ids: list[Any] = field(default_factory=list)


_PUSH_ARG = {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "SHORT_BINSTRING", "BINSTRING",
             "STRING", "SHORT_BINBYTES", "BINBYTES", "BINBYTES8", "BININT", "BININT1", "BININT2", "INT", "LONG",
             "LONG1", "LONG4", "BINFLOAT", "FLOAT"}


def inspect_pickle(data: bytes) -> PickleContents:
    """The globals and persistent ids of the pickle in ``data`` (stops quietly where the bytes end)."""
    out = PickleContents()
    stack: list[Any] = []
    memo: dict[int, Any] = {}

    def pop_mark() -> list[Any]:
        items: list[Any] = []
        while stack:
            item = stack.pop()
            if item is _MARK:
                break
            items.append(item)
        return items[::-1]

    def pop() -> Any:
        return stack.pop() if stack else _UNKNOWN

    def add_global(name: str) -> Global:
        if name not in out.globals:
            out.globals.append(name)
        return Global(name)

    try:
        for op, arg, _ in pickletools.genops(data):
            name = op.name
            if name in _PUSH_ARG:
                stack.append(arg)
            elif name == "NONE":
                stack.append(None)
            elif name in ("NEWTRUE", "NEWFALSE"):
                stack.append(name == "NEWTRUE")
            elif name == "MARK":
                stack.append(_MARK)
            elif name == "GLOBAL":
                module, _, attr = str(arg).partition(" ")
                stack.append(add_global(f"{module}.{attr}"))
            elif name == "INST":  # protocol 0: imports module.name and calls it on the items above the mark
                module, _, attr = str(arg).partition(" ")
                pop_mark()
                stack.append(add_global(f"{module}.{attr}"))
            elif name == "STACK_GLOBAL":
                attr, module = pop(), pop()
                stack.append(add_global(f"{module}.{attr}"))
            elif name == "MEMOIZE":
                memo[len(memo)] = stack[-1] if stack else _UNKNOWN
            elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
                memo[int(arg)] = stack[-1] if stack else _UNKNOWN
            elif name in ("GET", "BINGET", "LONG_BINGET"):
                stack.append(memo.get(int(arg), _UNKNOWN))
            elif name == "EMPTY_TUPLE":
                stack.append(())
            elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
                n = int(name[-1])
                items = [pop() for _ in range(n)][::-1]
                stack.append(tuple(items))
            elif name == "TUPLE":
                stack.append(tuple(pop_mark()))
            elif name == "BINPERSID":
                out.persistent_ids.append(pop())
                stack.append(_UNKNOWN)
            elif name == "PERSID":
                out.persistent_ids.append(arg)
                stack.append(_UNKNOWN)
            elif name in ("PROTO", "FRAME", "STOP"):
                pass
            else:
                _generic(op, stack, pop, pop_mark)
    except (ValueError, IndexError, KeyError, TypeError):  # truncated or malformed: report what was seen
        pass
    return out


def _generic(op: Any, stack: list[Any], pop: Any, pop_mark: Any) -> None:
    """Any other opcode: pop what it consumes (down to a mark if it takes one), push placeholders."""
    before = op.stack_before
    if pickletools.markobject in before:
        below = before.index(pickletools.markobject)
        pop_mark()
        for _ in range(below):
            pop()
    else:
        for _ in before:
            pop()
    for _ in op.stack_after:
        stack.append(_UNKNOWN)
