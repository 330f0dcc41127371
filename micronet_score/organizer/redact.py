"""Published files name no absolute path of the organizer's machine.

Leaderboard rows quote paths: the manifest's ``weights`` and ``model`` as written, and error messages from
scoring (``weights file '/home/org/challenge/subs/x.pt' does not exist``). Before anything is published, every
string in a row is rewritten: a path under the manifest's folder becomes relative to it, the test data becomes
``<data>``, the output folder ``<out>``, and any other absolute path ``<path>/`` and its last component.

>>> paths = [("/srv/data", "<data>"), ("/srv/ch", "")]
>>> redact("weights file '/srv/ch/subs/a.pt' does not exist", paths)
"weights file 'subs/a.pt' does not exist"
>>> redact("/srv/data: not an npz file; see /usr/lib/python3/x.py", paths)
'<data>: not an npz file; see <path>/x.py'
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

_END = r"""(?=$|[\s'"`<>|,;:()\[\]{}])"""  # where a path stops when nothing follows the root
_COMPONENT = r"""[^\s'"`<>|,;:()\[\]{}/\\]+"""
# an absolute POSIX path with at least one folder (not preceded by a word, a dot, a colon or a slash: not a
# fraction such as 20/50, a URL's path or a relative path), or a Windows drive path
_ABSOLUTE = re.compile(rf"(?<![\w.:/\\~<>-])/(?:{_COMPONENT}/)+({_COMPONENT})|"
                       rf"\b[A-Za-z]:[\\/](?:{_COMPONENT}[\\/])*({_COMPONENT})")


def roots(*, base: str | os.PathLike[str] | None, data: str | os.PathLike[str] | None = None,
          out: str | os.PathLike[str] | None = None) -> list[tuple[str, str]]:
    """``(absolute root, replacement)`` pairs for :func:`redact`, longest root first: the manifest's folder
    (replaced by nothing: paths become relative), the test data (``<data>``) and the output folder (``<out>``),
    each as given and with symbolic links resolved."""
    found: list[tuple[str, str]] = []
    for label, path in (("", base), ("<data>", data), ("<out>", out)):
        if path is None:
            continue
        for variant in (os.path.abspath(path), os.path.realpath(path)):
            variant = variant.rstrip("/\\")
            if len(variant) > 2 and all(variant != root for root, _ in found):  # never a filesystem root
                found.append((variant, label))
    return sorted(found, key=lambda pair: -len(pair[0]))  # stable: the manifest's folder wins a tie


def redact(value: Any, paths: Sequence[tuple[str, str]]) -> Any:
    """``value`` (a string, or dicts and lists of them) with every absolute path rewritten (see the module):
    under a root of ``paths`` (``(root, replacement)`` pairs, longest first) by the replacement, elsewhere by
    ``<path>/`` and its last component."""
    if isinstance(value, str):
        return _redact_text(value, paths)
    if isinstance(value, Mapping):
        return {k: redact(v, paths) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(redact(v, paths) for v in value)
    return value


def _redact_text(text: str, paths: Sequence[tuple[str, str]]) -> str:
    for root, label in paths:
        inside, alone = (label + "/", label) if label else ("", ".")
        pattern = re.escape(root)
        text = re.sub(pattern + r"[/\\]", lambda _m, s=inside: s, text)
        text = re.sub(pattern + _END, lambda _m, s=alone: s, text)
    return _ABSOLUTE.sub(lambda m: "<path>/" + (m.group(1) or m.group(2)), text)
