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
