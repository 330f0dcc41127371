"""Write generated docs snippets, or check the checked-in ones against them (shared by the generators here)."""

from __future__ import annotations

import difflib
import sys
from pathlib import Path


def write_or_check(generated: dict[str, str], out: Path, *, check: bool, command: str) -> int:
    """Write every ``name -> text`` under ``out``; with ``check``, write nothing and print a diff of each stale
    file instead. Returns the exit status (1 when something is stale)."""
    stale = []
    for name, text in generated.items():
        path = out / name
        if check:
            current = path.read_text(encoding="utf-8") if path.exists() else ""
            if current != text:
                stale.append(name)
                sys.stdout.writelines(difflib.unified_diff(current.splitlines(True), text.splitlines(True),
                                                           f"{path} (checked in)", f"{path} (generated)"))
        else:
            out.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    if stale:
        print(f"stale docs snippets: {', '.join(stale)}; run: {command}")
        return 1
    return 0
