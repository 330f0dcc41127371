"""Text rendering of a :class:`~micronet_score.cross_check.CrossCheck` (tabulate)."""

from __future__ import annotations

import textwrap
from typing import TYPE_CHECKING

from tabulate import tabulate

from micronet_score.render.text import format_count

if TYPE_CHECKING:
    from micronet_score.cross_check import CrossCheck


def cross_check_table(check: CrossCheck, tablefmt: str = "simple", why_width: int = 70) -> str:
    """One row per module: MACs per example in micronet-score, fvcore and FlopCounterMode, and why they differ;
    then the totals and the notes."""
    body = []
    for row in check.rows:
        why = "\n".join(textwrap.wrap(row.why, why_width)) or row.why
        body.append([row.module or "(root)", row.type, format_count(row.micronet), format_count(row.fvcore),
                     format_count(row.flop_counter), why])
    body.append(["total", "", format_count(check.micronet), format_count(check.fvcore),
                 format_count(check.flop_counter), ""])
    headers = ["module", "type", "micronet-score", "fvcore", "FlopCounterMode", "why"]
    text = tabulate(body, headers=headers, tablefmt=tablefmt, disable_numparse=True,
                    colalign=("left", "left", "right", "right", "right", "left"))
    return text + "".join(f"\n- {note}" for note in check.notes)
