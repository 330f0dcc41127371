"""grid_sample and affine_grid (spec §3): torch's reference formula per output location (coordinates and weights,
shared by the channels) plus the weighted sum of the neighbours per output element. The per-location tallies
(read from torch._decomp's _grid_sampler_2d, see micronet_score/counting/costs/sampling.py): bilinear 32 mults +
24 adds, nearest 10 + 5, bicubic 176 + 133 (zero padding); border padding 2 mults per coordinate computed,
reflection 8 mults + 3 adds; per element bilinear 4 + 3, bicubic 16 + 15, nearest 0. affine_grid: 3 mults +
2 adds per output coordinate. Counts are over the whole batch of 2 (the report gives them per example)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import micronet_score as ms

THETA = torch.tensor([[[0.9, 0.1, 0.05], [-0.1, 0.8, 0.0]]] * 2)  # 2 examples
IMAGE = torch.randn(2, 3, 6, 7, generator=torch.Generator().manual_seed(0))  # C = 3
SIZE = (2, 3, 4, 5)  # 2 x 4 x 5 = 40 output locations, x 3 channels = 120 output elements


def totals(fn_module, fn, inputs, **kw) -> tuple[float, float]:
    r = ms.count(fn_module(fn), inputs, strict=True, **kw)
    assert r.unsupported == {}
    return r.mults * r.examples, r.adds * r.examples


@pytest.mark.parametrize("shapes_only", [True, False])
def test_affine_grid(fn_module, shapes_only):
    # 40 locations x 2 coordinates x (3 mults, 2 adds) = 240 mults, 160 adds
    fn = lambda t: F.affine_grid(t, SIZE, align_corners=False)  # noqa: E731
    assert totals(fn_module, fn, THETA, shapes_only=shapes_only) == (240, 160)
    # 3-D: (2, 3, 2, 3, 4): 48 locations x 3 coordinates x (4 mults, 3 adds) = 576 mults, 432 adds
    theta3 = torch.eye(3, 4).expand(2, 3, 4).contiguous()
    fn = lambda t: F.affine_grid(t, (2, 3, 2, 3, 4), align_corners=True)  # noqa: E731
    assert totals(fn_module, fn, theta3, shapes_only=shapes_only) == (576, 432)


@pytest.mark.parametrize("shapes_only", [True, False])
@pytest.mark.parametrize("mode, padding, mults, adds", [
    # 40 x 32 + 120 x 4 = 1760; 40 x 24 + 120 x 3 = 1320
    ("bilinear", "zeros", 1760, 1320),
    # border: 2 coordinates clamped, 4 comparisons more per location: 40 x 36 + 480 = 1920
    ("bilinear", "border", 1920, 1320),
    # reflection: (8 mults + 3 adds) x 2 coordinates per location: 40 x 48 + 480 = 2400; 40 x 30 + 360 = 1560
    ("bilinear", "reflection", 2400, 1560),
    # nearest: 40 x 10 = 400; 40 x 5 = 200; nothing per element
    ("nearest", "zeros", 400, 200),
    # bicubic: 40 x 176 + 120 x 16 = 8960; 40 x 133 + 120 x 15 = 7120
    ("bicubic", "zeros", 8960, 7120),
    # bicubic, border: 16 neighbours x 2 coordinates x 2 comparisons = 64 more per location: 40 x 240 + 1920
    ("bicubic", "border", 11520, 7120),
])
def test_grid_sample_2d(fn_module, mode, padding, mults, adds, shapes_only):
    # the grid comes from the input (a spatial transformer); the affine grid itself: 240 mults, 160 adds
    def fn(t, image):
        grid = F.affine_grid(t, SIZE, align_corners=False)
        return F.grid_sample(image, grid, mode=mode, padding_mode=padding, align_corners=False)

    assert totals(fn_module, fn, (THETA, IMAGE), shapes_only=shapes_only) == (mults + 240, adds + 160)


def test_reflection_of_an_axis_of_one_value(fn_module):
    # align_corners with an input of height 1: the reference reflects y to zeros, then clamps (2 mults); x as
    # usual (8 mults, 3 adds): per location 32 + 10 mults, 24 + 3 adds: 40 x 42 + 480 = 2160, 40 x 27 + 360 = 1440
    def fn(t, image):
        grid = F.affine_grid(t, SIZE, align_corners=True)
        return F.grid_sample(image, grid, padding_mode="reflection", align_corners=True)

    assert totals(fn_module, fn, (THETA, IMAGE[:, :, :1])) == (2160 + 240, 1440 + 160)


@pytest.mark.parametrize("mode, mults, adds", [
    # volume (2, 3, 4, 5, 6) sampled at 2 x 2 x 3 x 4 = 48 locations, 144 output elements
    # trilinear: 48 x 94 + 144 x 8 = 5664; 48 x 70 + 144 x 7 = 4368
    ("bilinear", 5664, 4368),
    # nearest: 48 x 15 = 720; 48 x 8 = 384
    ("nearest", 720, 384),
])
def test_grid_sample_3d(fn_module, mode, mults, adds):
    volume = torch.randn(2, 3, 4, 5, 6, generator=torch.Generator().manual_seed(1))
    grid = torch.rand(2, 2, 3, 4, 3, generator=torch.Generator().manual_seed(2)) * 2 - 1
    fn = lambda v: F.grid_sample(v, grid, mode=mode, align_corners=False)  # noqa: E731
    assert totals(fn_module, fn, volume) == (mults, adds)
    assert totals(fn_module, fn, volume, shapes_only=False) == (mults, adds)


@pytest.mark.parametrize("padding", [0, 1, 2])
@pytest.mark.parametrize("mode", [0, 1])
def test_the_tally_is_what_torchs_reference_decomposition_does(fn_module, mode, padding):
    # Independent of the tally: count torch's own decomposition run per location (the grid not expanded over
    # the channels) with the library's elementwise prices. The reference multiplies a nearest neighbour by 1
    # (1 mult per element), which the cost leaves out.
    decompositions = pytest.importorskip("torch._decomp.decompositions")
    reference = getattr(decompositions, "_grid_sampler_2d", None)
    if reference is None:
        pytest.skip("this torch has no _grid_sampler_2d reference")
    def by_reference(t, image):
        grid = F.affine_grid(t, SIZE, align_corners=False)
        return reference(image, grid, mode, padding, False, _expand_grid=False)

    def by_operator(t, image):
        grid = F.affine_grid(t, SIZE, align_corners=False)
        return torch.grid_sampler_2d(image, grid, mode, padding, False)

    ref = totals(fn_module, by_reference, (THETA, IMAGE), shapes_only=False)
    ours = totals(fn_module, by_operator, (THETA, IMAGE), shapes_only=False)
    assert ours == (ref[0] - (120 if mode == 1 else 0), ref[1])
