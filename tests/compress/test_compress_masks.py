"""Property tests of the block and N:M mask functions."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from micronet_score.compress import block_mask, nm_mask


@settings(max_examples=40, deadline=None)
@given(
    rows=st.integers(1, 4),
    cols=st.integers(1, 4),
    br=st.integers(1, 3),
    bc=st.integers(1, 3),
    amount=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**16),
)
def test_block_mask_zeroes_round_amount_of_whole_blocks(rows, cols, br, bc, amount, seed):
    weight = torch.randn(rows * br, cols * bc, generator=torch.Generator().manual_seed(seed))
    mask = block_mask(weight, (br, bc), amount)
    tiles = mask.reshape(rows, br, cols, bc)
    per_block = tiles.sum(dim=(1, 3))
    assert set(per_block.unique().tolist()) <= {0.0, float(br * bc)}  # blocks are all-or-nothing
    assert int((per_block == 0).sum()) == round(amount * rows * cols)
    # every removed block is no stronger than every kept block
    norms = weight.abs().reshape(rows, br, cols, bc).sum(dim=(1, 3))
    if 0 < (per_block == 0).sum() < rows * cols:
        assert norms[per_block == 0].max() <= norms[per_block > 0].min()


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 4),
    extra=st.integers(0, 4),
    groups=st.integers(1, 3),
    out=st.integers(1, 3),
    kernel=st.integers(1, 2),
    seed=st.integers(0, 2**16),
)
def test_nm_mask_keeps_exactly_n_largest_per_group(n, extra, groups, out, kernel, seed):
    m = n + extra
    weight = torch.randn(out, groups * m, kernel, kernel, generator=torch.Generator().manual_seed(seed))
    mask = nm_mask(weight, n, m)
    runs = mask.permute(0, 2, 3, 1).reshape(-1, m)
    values = weight.abs().permute(0, 2, 3, 1).reshape(-1, m)
    assert (runs.sum(dim=1) == n).all()
    kept_min = torch.where(runs.bool(), values, torch.inf).amin(dim=1)
    dropped_max = torch.where(runs.bool(), -torch.inf, values).amax(dim=1)
    assert (kept_min >= dropped_max).all()
