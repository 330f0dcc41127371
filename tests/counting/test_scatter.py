"""Scatter and indexed writes: free when they copy, one add or mult per source element when they combine."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import micronet_score as ms

X = torch.arange(1.0, 7.0).reshape(1, 6)  # one example of 6 values
IDX = torch.tensor([[0, 1, 1, 3, 2, 0]])  # 6 source elements into 4 places


def ops(fn_module, fn, x: torch.Tensor = X) -> tuple[float, float]:
    r = ms.count(fn_module(fn), x, strict=True)
    return r.mults, r.adds


def test_index_put(fn_module):
    rows, cols = torch.tensor([0]), torch.tensor([0, 2, 2])  # broadcast: 3 positions, 3 values
    assert ops(fn_module, lambda x: x.index_put((rows, cols), x[0, :3] * 1, accumulate=True)) == (3, 3 + 0)
    assert ops(fn_module, lambda x: x.index_put((rows, cols), x[0, :3] * 1)) == (3, 0)  # x * 1: 3 mults
    # a boolean mask with 3 true entries and a scalar value broadcast to them: 3 adds, not 1
    mask = torch.tensor([[True, False, True, True, False, False]])
    assert ops(fn_module, lambda x: x.index_put((mask,), torch.tensor(1.0), accumulate=True)) == (0, 3)
    assert ops(fn_module, lambda x: x.clone().index_put_((mask,), torch.tensor(1.0), accumulate=True)) == (0, 3)
    assert ops(fn_module, lambda x: x.index_put((mask,), torch.tensor(1.0))) == (0, 0)


def test_scatter(fn_module):
    z = torch.zeros(1, 4)
    assert ops(fn_module, lambda x: z.scatter(1, IDX, x, reduce="add")) == (0, 6)
    assert ops(fn_module, lambda x: z.scatter(1, IDX, x, reduce="multiply")) == (6, 0)
    assert ops(fn_module, lambda x: x.scatter(1, IDX, 2.0, reduce="multiply")) == (6, 0)  # value variant
    assert ops(fn_module, lambda x: z.scatter(1, IDX[:, :4], x)) == (0, 0)  # plain scatter copies
    assert ops(fn_module, lambda x: x.scatter(1, IDX, 0.0)) == (0, 0)
    assert ops(fn_module, lambda x: z.clone().scatter_(1, IDX, x, reduce="add")) == (0, 6)


def test_scatter_add_and_reduce(fn_module):
    z = torch.zeros(1, 4)
    assert ops(fn_module, lambda x: z.scatter_add(1, IDX, x)) == (0, 6)
    assert ops(fn_module, lambda x: z.scatter_reduce(1, IDX, x, "sum")) == (0, 6)
    assert ops(fn_module, lambda x: z.scatter_reduce(1, IDX, x, "prod")) == (6, 0)
    assert ops(fn_module, lambda x: z.scatter_reduce(1, IDX, x, "amax")) == (6, 0)  # comparisons
    # mean: 6 adds, then one division for each of the 4 outputs
    assert ops(fn_module, lambda x: z.scatter_reduce(1, IDX, x, "mean")) == (4, 6)


def test_index_add_and_reduce(fn_module):
    z = torch.zeros(1, 4)
    index = torch.tensor([0, 1, 1, 3, 2, 0])
    assert ops(fn_module, lambda x: z.index_add(1, index, x)) == (0, 6)
    assert ops(fn_module, lambda x: z.index_add(1, index, x, alpha=2.0)) == (6, 6)  # alpha scales each source
    assert ops(fn_module, lambda x: z.index_reduce(1, index, x, "prod")) == (6, 0)
    assert ops(fn_module, lambda x: z.index_reduce(1, index, x, "mean")) == (4, 6)


def test_put(fn_module):
    index = torch.tensor([0, 1, 1, 5, 7, 2])
    assert ops(fn_module, lambda x: torch.zeros(8).put_(index, x.reshape(6), accumulate=True)) == (0, 6)
    assert ops(fn_module, lambda x: torch.zeros(8).put(index, x.reshape(6), accumulate=True)) == (0, 6)
    assert ops(fn_module, lambda x: torch.zeros(8).put_(index, x.reshape(6))) == (0, 0)


def test_copy_is_free_even_across_dtypes(fn_module):
    # A known limit (costs/free.py): copy_ into float64 converts like _to_copy (1 op per element) but is priced
    # free, because costing it would drop the width of fake-quantized activations copied by slice assignment.
    assert ops(fn_module, lambda x: torch.empty(1, 6, dtype=torch.float64).copy_(x)) == (0, 0)
    assert ops(fn_module, lambda x: torch.empty(1, 6).copy_(x)) == (0, 0)


class Quantized(torch.nn.Module):
    """An 8-bit fake-quantized activation written into a buffer, then multiplied by an 8-bit weight."""

    def __init__(self, write) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.full((3, 4), 0.5))
        self.write = write

    def forward(self, x):
        q = torch.fake_quantize_per_tensor_affine(x, 0.1, 0, -128, 127)
        w = torch.fake_quantize_per_tensor_affine(self.weight, 0.1, 0, -128, 127)
        return torch.nn.functional.linear(self.write(q), w)


def test_a_plain_copy_keeps_the_width_of_what_it_copies():
    def write(q):
        buf = torch.zeros(q.shape)
        buf[:, :] = q  # copy_ into a slice
        return buf

    # 3 outputs x 4 mults, both operands 8-bit
    assert dict(ms.count(Quantized(write), (2, 4)).mults_by_bits) == {8: 12}


def test_a_plain_index_put_keeps_the_width_of_what_it_writes():
    def write(q):
        buf = torch.zeros(q.shape)
        buf[:, torch.tensor([0, 1, 2, 3])] = q  # index_put_ without accumulate
        return buf

    assert dict(ms.count(Quantized(write), (2, 4)).mults_by_bits) == {8: 12}


def test_unknown_reduction_is_an_error(fn_module):
    from micronet_score.counting.costs.scatter import _reduce_cost

    with pytest.raises(ValueError, match="unknown scatter reduction 'median'"):
        _reduce_cost("median", 6, 4)


# ------------------------------------------------------------------- F.unfold (free) and F.fold (overlaps summed)


def test_unfold_moves_values_and_costs_nothing(fn_module):
    r = ms.count(fn_module(lambda x: F.unfold(x, 3, padding=1)), (1, 2, 5, 5))
    assert (r.mults, r.adds, r.unsupported) == (0, 0, {})


def test_fold_sums_the_overlapping_block_values(fn_module):
    # 3x3 output, 2x2 blocks at stride 1 (4 blocks): a corner receives 1 value, an edge 2, the centre 4, so
    # per channel 4*0 + 4*1 + 1*3 = 7 adds; 2 channels
    r = ms.count(fn_module(lambda x: F.fold(x, (3, 3), 2)), (1, 2 * 4, 4))
    assert (r.mults, r.adds, r.unsupported) == (0, 2 * 7, {})
    # blocks that do not overlap: nothing to add
    assert ms.count(fn_module(lambda x: F.fold(x, (4, 4), 2, stride=2)), (1, 3 * 4, 4)).adds == 0
    # 3x3 blocks with padding 1 on a 3x3 output (9 blocks): per dimension the positions receive 2, 3, 2 values,
    # so the 9 outputs receive 4, 6, 4 / 6, 9, 6 / 4, 6, 4: 3+5+3 + 5+8+5 + 3+5+3 = 40 adds; per example
    r = ms.count(fn_module(lambda x: F.fold(x, (3, 3), 3, padding=1)), (2, 9, 9))
    assert (r.adds, r.batch_size) == (40, 2)


def test_unfold_then_fold_round_trip_costs_the_overlaps_only(fn_module):
    # F.fold(F.unfold(x)) with 3x3 blocks, padding 1, on 4x4: per dimension positions receive 2, 3, 3, 2 values
    # (10 in all, 4 reached): 10 * 10 - 16 = 84 adds per channel, 3 channels
    r = ms.count(fn_module(lambda x: F.fold(F.unfold(x, 3, padding=1), (4, 4), 3, padding=1)), (1, 3, 4, 4))
    assert (r.mults, r.adds) == (0, 3 * 84)
