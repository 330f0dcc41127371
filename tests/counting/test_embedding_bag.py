"""nn.EmbeddingBag: a free lookup, then per bag of s rows of D values: sum (s-1)·D adds, mean the same and D
mults, max (s-1)·D comparisons, per-sample weights s·D mults; padding rows and empty bags cost nothing."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import micronet_score as ms

IDS = torch.tensor([1, 2, 4, 5, 4, 3, 2, 9])  # 8 indices


def _bag(mode: str = "sum", **kw) -> nn.EmbeddingBag:
    torch.manual_seed(0)
    return nn.EmbeddingBag(10, 3, mode=mode, **kw)  # a table of 10 rows of D = 3


@pytest.mark.parametrize("mode, mults, adds", [
    # 2 bags of 4 rows: per bag (4 - 1) * 3 = 9 combined values; mean divides 3 values once per bag
    ("sum", 0, 9), ("mean", 3, 9), ("max", 9, 0),
])
def test_flat_indices_with_offsets_are_one_example_per_bag(mode, mults, adds):
    r = ms.count(_bag(mode), (IDS, torch.tensor([0, 4])), strict=True)
    assert (r.mults, r.adds, r.examples, r.params) == (mults, adds, 2, 30)
    assert "2 bags" in r.examples_from
    assert [(t.name, t.role) for t in r.tensors] == [("weight", "weight")]  # the table is a lookup table


def test_a_2d_input_is_a_batch_of_equal_bags():
    # 2 bags of 3: (3 - 1) * 3 = 6 adds each
    r = ms.count(_bag(), torch.tensor([[1, 2, 4], [4, 3, 2]]), strict=True)
    assert (r.mults, r.adds, r.examples) == (0, 6, 2)


def test_empty_bags_and_padding_rows_cost_nothing():
    # offsets 0, 0, 4: bags of 0, 4 and 4 rows: (3 + 3) * 3 = 18 adds over 3 examples
    r = ms.count(_bag(), (IDS, torch.tensor([0, 0, 4])), strict=True)
    assert (r.adds, r.examples) == (6, 3)
    # padding_idx 4 leaves bags {1, 2} and {3}: 1 * 3 adds in all, 2 examples
    r = ms.count(_bag(padding_idx=4), torch.tensor([[1, 2, 4], [4, 3, 4]]), strict=True)
    assert (r.adds, r.examples) == (1.5, 2)
    # include_last_offset: offsets 0, 3, 8 close two bags of 3 and 5 rows: (2 + 4) * 3 = 18 adds, 2 examples
    r = ms.count(_bag(include_last_offset=True), (IDS, torch.tensor([0, 3, 8])), strict=True)
    assert (r.adds, r.examples) == (9, 2)


def test_per_sample_weights_cost_a_mult_per_looked_up_value():
    # 8 rows of 3 values weighted: 24 mults; 2 bags of 4 summed: 18 adds; 2 examples
    r = ms.count(_bag(), (IDS, torch.tensor([0, 4]), torch.rand(8)), strict=True)
    assert (r.mults, r.adds) == (12, 9)


def test_bag_sizes_need_values_the_meta_device_does_not_hold():
    x = (IDS, torch.tensor([0, 4]))
    with pytest.raises(ms.ValuesNeededError, match="shapes_only=False"):
        ms.count(_bag(), x, shapes_only=True)
    assert ms.count(_bag(), x).adds == ms.count(_bag(), x, shapes_only=False).adds == 9


def test_a_bag_ends_at_the_last_offset_when_it_is_included():
    # offsets 0, 3, 6 with include_last_offset: bags of 3 and 3 rows (the 2 indices after 6 are in none):
    # (2 + 2) * 3 = 12 adds over 2 examples
    r = ms.count(_bag(include_last_offset=True), (IDS, torch.tensor([0, 3, 6])), strict=True)
    assert (r.adds, r.examples) == (6, 2)


def test_a_mean_of_8_bit_rows_divides_at_8_bits():
    # the table fake-quantized to 8 bits: the division of each bag's 3 sums counts at 8 bits, the sums at 32
    class Quantized(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.table = nn.Parameter(torch.full((10, 3), 0.5))

        def forward(self, ids, offsets):
            table = torch.fake_quantize_per_tensor_affine(self.table, 0.1, 0, -128, 127)
            return nn.functional.embedding_bag(ids, table, offsets, mode="mean")

    # the functional form has no module to say its bags are the examples: batch_size= does (2 bags)
    r = ms.count(Quantized(), (IDS, torch.tensor([0, 4])), strict=True, batch_size=2)
    assert (dict(r.mults_by_bits), r.adds, r.examples) == ({8: 3}, 9, 2)
