"""Tables of the docs render as written in mkdocs-material (Python-Markdown's tables extension)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAGES = sorted((ROOT / "docs").glob("*.md")) + [ROOT / "README.md"]


def test_no_escaped_pipe_inside_a_code_span_of_a_table():
    # Python-Markdown keeps the backslash of `a\|b` inside a code span: the page would show "mixup\|cutmix"
    bad = [f"{page.name}:{n}: {line.strip()}" for page in PAGES
           for n, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1)
           if line.lstrip().startswith("|") and any("\\|" in span for span in re.findall(r"`[^`]*`", line))]
    assert not bad, "write the choices in words (`a`, `b` or `c`):\n" + "\n".join(bad)


def test_options_in_a_table_never_break_at_a_hyphen():
    css = (ROOT / "docs" / "stylesheets" / "extra.css").read_text(encoding="utf-8")
    assert ".md-typeset table:not([class]) td:first-child code { white-space: nowrap; }" in css
