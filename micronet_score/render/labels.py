"""Point labels that do not collide: each label takes the nearest free spot around its point (a leader line joins
it when it sits further out), clear of the other labels, the points, the legend and the axes' edges.

The search works in display space on a drawn figure, so place labels after ``tight_layout`` and once the axes'
limits are final. Offsets are in points, so the layout holds at any dpi.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

# directions tried at each distance, in order of preference: up-right first (the usual label spot), then around
_DIRECTIONS = (45, -45, 135, -135, 0, 180, 90, -90, 22, -22, 158, -158, 68, -68, 112, -112)
_RADII = (7, 16, 26, 38, 52, 68, 86)  # points
_MARKER = 4.5  # half the side of the square a scatter point is taken to cover, in points


def _overlap(a: Any, b: Any) -> float:
    w = min(a.x1, b.x1) - max(a.x0, b.x0)
    h = min(a.y1, b.y1) - max(a.y0, b.y0)
    return w * h if w > 0 and h > 0 else 0.0


def _inside(inner: Any, outer: Any) -> bool:
    return inner.x0 >= outer.x0 and inner.x1 <= outer.x1 and inner.y0 >= outer.y0 and inner.y1 <= outer.y1


def _segment_hits(box: Any, path: Sequence[tuple[float, float]]) -> int:
    """How many of the points sampled along ``path`` (display coordinates) fall in ``box``."""
    hits = 0
    for (x0, y0), (x1, y1) in zip(path, path[1:]):
        for k in range(21):
            t = k / 20
            hits += box.contains(x0 + t * (x1 - x0), y0 + t * (y1 - y0))
    return hits


def place_labels(ax: Any, points: Sequence[tuple[float, float]], labels: Sequence[str], *,
                 avoid: Sequence[Any] = (), fontsize: float = 9) -> list[Any]:
    """Annotate each of ``points`` (data coordinates) with its label, at a spot that overlaps no other label,
    point, axes edge or the artists in ``avoid`` (a legend, say) where one exists (else the least-crowded spot).

    Returns the annotations, in the order of ``points``.
    """
    from matplotlib.transforms import Bbox

    fig = ax.figure
    px = fig.dpi / 72.0
    display = [tuple(ax.transData.transform(p)) for p in points]
    half = _MARKER * px
    obstacles = [Bbox.from_extents(x - half, y - half, x + half, y + half) for x, y in display]
    obstacles += [a.get_window_extent() for a in avoid]
    frame = ax.get_window_extent()
    placed: list[Any] = []
    annotations = []
    for (x, y), label in zip(points, labels):
        best: tuple[float, Any, bool] | None = None
        for radius in _RADII:
            for angle in _DIRECTIONS:
                dx, dy = radius * math.cos(math.radians(angle)), radius * math.sin(math.radians(angle))
                ha = "left" if dx > 0.5 else "right" if dx < -0.5 else "center"
                va = "bottom" if dy > 0.5 else "top" if dy < -0.5 else "center"
                ann = ax.annotate(label, (x, y), xytext=(dx, dy), textcoords="offset points", ha=ha, va=va,
                                  fontsize=fontsize)
                box = ann.get_window_extent().padded(2 * px)
                ann.remove()
                crowd = sum(_overlap(box, o) for o in obstacles + placed)
                crowd += 0.0 if _inside(box, frame) else box.width * box.height
                hits = _segment_hits(box, display)
                cost = crowd * 1e3 + hits * 50 + radius
                if best is None or cost < best[0]:
                    best = (cost, (dx, dy, ha, va, box, radius), not crowd and not hits)
            if best is not None and best[2]:  # a free spot, clear of the line too: take the nearest one
                break
        assert best is not None
        dx, dy, ha, va, box, radius = best[1]
        arrow = {"arrowstyle": "-", "color": "0.45", "lw": 0.8, "shrinkA": 1, "shrinkB": 4} \
            if radius > _RADII[0] else None
        annotations.append(ax.annotate(label, (x, y), xytext=(dx, dy), textcoords="offset points", ha=ha, va=va,
                                       fontsize=fontsize, arrowprops=arrow,
                                       bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none",
                                             "alpha": 0.85}))
        placed.append(box)
    return annotations
