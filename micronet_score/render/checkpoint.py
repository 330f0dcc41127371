"""Text rendering of a checkpoint scan (:class:`~micronet_score.io.stats.CheckpointStats`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from micronet_score.io.stats import CheckpointStats

__all__ = ["checkpoint_table"]


def checkpoint_table(stats: CheckpointStats) -> str:
    """One row per tensor (shape, dtype, values, non-zeros, density), the totals, and the read speed."""
    from micronet_score.io.files import clean

    rows = [("name", "shape", "dtype", "values", "non-zeros", "density")]
    for t in stats.tensors:
        note = f" (= {t.alias_of})" if t.alias_of else ""
        rows.append((clean(t.name) + note, "x".join(map(str, t.shape)) or "scalar", t.dtype, f"{t.numel:,}",
                     f"{t.nonzeros:,}", f"{t.density:.4f}"))
    rows.append(("total", "", "", f"{stats.numel:,}", f"{stats.nonzeros:,}", f"{stats.density:.4f}"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
             for r in rows]
    lines.insert(1, "-" * len(lines[0]))
    lines.insert(len(lines) - 1, "-" * len(lines[0]))
    lines.append(f"{stats.format}, {stats.bytes_read / 1e9:.3f} GB of tensor data in {stats.seconds:.3f} s "
                 f"({stats.gb_per_s:.2f} GB/s)")
    return "\n".join(lines)
