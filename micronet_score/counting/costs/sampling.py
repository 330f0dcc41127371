"""``grid_sample`` and ``affine_grid``: the operations of torch's own reference formula (``torch._decomp``'s
``_grid_sampler_2d`` and ``affine_grid_generator``), per output location (coordinates and interpolation weights,
shared by the channels) plus per output element (the weighted sum of the neighbours: 4 for bilinear, 8 for
trilinear, 16 for bicubic, none for nearest). Elementwise operations are priced as everywhere (add/sub 1 add;
mul/div, abs, floor, round, fmod, comparisons 1 mult; logical and 1 add; ``where`` free; a float-to-int64 cast
1 op, as ``_to_copy`` prices it); constants combined with constants are load-time work.

``grid_sample``, per output location, as the reference writes it (each of its operations on per-location values
counted once, each neighbour's checks counted per neighbour):

- unnormalize each coordinate, ``c·mul + ofs``: 1 mult + 1 add per coordinate;
- the padding mode, per coordinate computed: zeros nothing; border a clamp, 2 comparisons; reflection
  ``|c - lo|`` (1 add, 1 mult), ``fmod`` (1 mult), ``/ span`` and ``floor`` (2 mults), the parity test
  ``flips & 1 == 0`` (2 mults; the int8 cast of ``flips`` is exact, free), the two reflected candidates
  (2 adds), then the clamp (2 mults): 8 mults + 3 adds (2 mults, the clamp, when the axis has one value and
  ``align_corners``: the reference gives zeros);
- each neighbour read: the in-bounds test ``0 <= x < W and 0 <= y < H`` (4 comparisons, 3 logical ands) and
  the two index casts: 6 mults + 3 adds (a third coordinate: 9 mults + 5 adds).

Bilinear: unnormalize (2 mults, 2 adds), padding of x and y, ``floor`` (2 mults), ``nw + 1`` (2 adds), the four
weights as written, ``w_nw = (x_se - x)·(y_se - y)`` and so on (8 subtractions, 4 products), 4 neighbours
(24 mults, 12 adds): 32 mults + 24 adds with zero padding; per element 4 mults + 3 adds.
Nearest: unnormalize (2, 2), padding, ``round`` (2 mults), 1 neighbour (6, 3): 10 mults + 5 adds; per element
nothing (a copy).
Bicubic (2-D only): unnormalize (2, 2), ``floor`` (2 mults), ``t = c - floor`` (2 adds), the cubic
coefficients (torch's convolution polynomials with A = -0.75 on t, 1 - t, t + 1, 2 - t: 12 mults + 13 adds),
which the reference evaluates five times (once per row for x, once for y), the neighbour coordinates
(``y_nw + (row - 1)``: 4 adds, ``x_nw - 1``, ``+ 1``, ``+ 2`` per row: 12 adds), 16 neighbours each padded
in x and y and checked (16 × (6 mults + 3 adds)): 160 mults + 133 adds with zero padding. Per element the spec
prices the weighted sum of 16 neighbours, 16 mults + 15 adds, whose 16 weights are the products of the 1-D
coefficients: 16 mults more per location (the reference instead applies the 1-D coefficients to each channel,
4 + 1 rows of 4 products). With zero padding: 176 mults + 133 adds per location.
Trilinear (``grid_sampler_3d``, which torch has no decomposition for): the bilinear reference with a third
coordinate: unnormalize (3, 3), padding of x, y and z, ``floor`` (3), ``nw + 1`` (3 adds), eight weights each
a product of 3 differences (24 subtractions, 16 products), 8 neighbours (9 mults + 5 adds each): 94 mults +
70 adds with zero padding; per element 8 mults + 7 adds. Nearest 3-D: 3 + 3 (round) + 9 = 15 mults, 3 + 5 = 8
adds per location.

``affine_grid`` (``affine_grid_generator``): the base grid of normalized coordinates and a constant 1 is built
from shapes (free); each output location is ``theta @ (x, y, 1)``: per output coordinate 3 mults + 2 adds
(2-D: 6 mults + 4 adds per location; 3-D, ``theta @ (x, y, z, 1)``: 12 mults + 9 adds).
"""

from __future__ import annotations

import math

from micronet_score.counting.registry import Cost, OpCall, aten, maybe, register

_BILINEAR, _NEAREST, _BICUBIC = 0, 1, 2
_ZEROS, _BORDER, _REFLECTION = 0, 1, 2


def _padding(mode: int, size: int, align_corners: bool) -> tuple[int, int]:
    """(mults, adds) of the padding mode on one coordinate along an axis of ``size`` values."""
    if mode == _BORDER:
        return 2, 0
    if mode == _REFLECTION:
        return (2, 0) if align_corners and size <= 1 else (8, 3)
    return 0, 0


def _grid_call(call: OpCall) -> tuple[int, int, int, bool, int]:
    """(interpolation, padding, output locations, align_corners, output elements)."""
    x, grid = call.args[0], call.args[1]
    interpolation = int(call.arg(2, "interpolation_mode", _BILINEAR))
    padding = int(call.arg(3, "padding_mode", _ZEROS))
    align = bool(call.arg(4, "align_corners", False))
    locations = grid.numel() // grid.shape[-1] if grid.dim() and grid.shape[-1] else 0
    return interpolation, padding, locations, align, locations * x.shape[1]


def _grid_2d(call: OpCall) -> Cost:
    interpolation, padding, locations, align, elements = _grid_call(call)
    height, width = call.args[0].shape[-2:]
    pad_m, pad_a = (a + b for a, b in zip(_padding(padding, width, align), _padding(padding, height, align)))
    if interpolation == _NEAREST:
        return Cost(locations * (10 + pad_m), locations * (5 + pad_a))
    if interpolation == _BICUBIC:
        return Cost(locations * (176 + 16 * pad_m) + elements * 16, locations * (133 + 16 * pad_a) + elements * 15)
    return Cost(locations * (32 + pad_m) + elements * 4, locations * (24 + pad_a) + elements * 3)


def _grid_3d(call: OpCall) -> Cost:
    interpolation, padding, locations, align, elements = _grid_call(call)
    sizes = call.args[0].shape[-3:]
    pads = [_padding(padding, size, align) for size in sizes]
    pad_m, pad_a = sum(p[0] for p in pads), sum(p[1] for p in pads)
    if interpolation == _NEAREST:
        return Cost(locations * (15 + pad_m), locations * (8 + pad_a))
    return Cost(locations * (94 + pad_m) + elements * 8, locations * (70 + pad_a) + elements * 7)


register(aten.grid_sampler_2d, *maybe("_grid_sampler_2d_cpu_fallback"))(_grid_2d)
register(aten.grid_sampler_3d)(_grid_3d)


@register(*maybe("cudnn_grid_sampler"))
def cudnn_grid_sampler(call: OpCall) -> Cost:
    """cuDNN's sampler: bilinear with zero padding and align_corners=False only (2-D)."""
    grid, channels = call.args[1], call.args[0].shape[1]
    locations = grid.numel() // 2
    return Cost(locations * 32 + locations * channels * 4, locations * 24 + locations * channels * 3)


@register(aten.affine_grid_generator)
def affine_grid(call: OpCall) -> Cost:
    size = list(call.arg(1, "size"))
    spatial = len(size) - 2  # 2 or 3 output coordinates
    locations = size[0] * math.prod(size[2:])
    per_coordinate_m, per_coordinate_a = spatial + 1, spatial  # theta row (k + 1 values) times (x.., 1)
    return Cost(locations * spatial * per_coordinate_m, locations * spatial * per_coordinate_a)
