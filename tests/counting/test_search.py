"""Look-ups and selections (spec §3): a binary search into B boundaries costs ⌈log₂(B + 1)⌉ comparisons per
value; histc per value 1 mult + 1 add + 1 comparison and 1 add per counted value; nonzero / masked_select /
argwhere 1 comparison per input value. Comparisons are booked as mults. Counts are hand arithmetic over the whole
batch (the report gives them per example)."""

from __future__ import annotations

import pytest
import torch

import micronet_score as ms

X = torch.tensor([[-2.0, -0.5, 0.0, 0.25, 0.5, 1.0, 3.0, 0.0],
                  [0.0, 0.0, 0.75, -0.75, 2.5, 0.1, -0.1, 0.0],
                  [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]])  # 3 examples of 8 values, 24 in all
EDGES = torch.tensor([-1.0, 0.0, 1.0, 2.0, 3.0])  # B = 5 boundaries: ceil(log2 6) = 3 comparisons per value


def totals(fn_module, fn, x: torch.Tensor = X, **kw) -> tuple[float, float]:
    r = ms.count(fn_module(fn), x, strict=True, **kw)
    assert r.unsupported == {}
    return r.mults * r.examples, r.adds * r.examples


@pytest.mark.parametrize("shapes_only", [True, False])
def test_searchsorted_and_bucketize(fn_module, shapes_only):
    # 24 values x 3 comparisons = 72
    assert totals(fn_module, lambda x: torch.searchsorted(EDGES, x), shapes_only=shapes_only) == (72, 0)
    assert totals(fn_module, lambda x: torch.bucketize(x, EDGES, right=True), shapes_only=shapes_only) == (72, 0)
    # one sorted row per example (3 rows of B = 8, values sorted along the row) looked up by 2 values each:
    # 6 values x ceil(log2 9) = 4 = 24
    fn = lambda x: torch.searchsorted(torch.sort(x, -1)[0], x[:, :2].contiguous())  # noqa: E731
    # plus the sort: 3 rows x 7 x ceil(log2 9) = 4 = 84
    assert totals(fn_module, fn, shapes_only=shapes_only) == (24 + 84, 0)


def test_searchsorted_into_one_boundary(fn_module):
    # B = 1: ceil(log2 2) = 1 comparison per value: 24
    assert totals(fn_module, lambda x: torch.bucketize(x, torch.tensor([0.0]))) == (24, 0)


def test_histc_counts_the_values_in_range(fn_module):
    # range [-1, 1]: in range are row 0: -0.5, 0, 0.25, 0.5, 1, 0 (6); row 1: all but 2.5 (7); row 2: 8 -> 21
    # per value 2 mults (the bin index's product, the range comparison) and 1 add: 48 mults, 24 adds; + 21 adds
    fn = lambda x: torch.histc(x, bins=4, min=-1, max=1)  # noqa: E731
    assert totals(fn_module, fn) == (48, 24 + 21)
    assert totals(fn_module, fn, shapes_only=False) == (48, 24 + 21)
    with pytest.raises(ms.ValuesNeededError, match="histc.*shapes_only=False"):
        ms.count(fn_module(fn), X, shapes_only=True)


def test_histc_over_the_data_range_scans_for_it(fn_module):
    # min = max = 0: torch takes the range from the data (min -2, max 3): every value counted (24);
    # a min and a max over 24 values: 2 x 23 = 46 comparisons; 48 + 46 mults, 24 + 24 adds
    assert totals(fn_module, lambda x: torch.histc(x, bins=5)) == (94, 48)


def test_nonzero_and_argwhere_compare_each_value(fn_module):
    # 24 comparisons with zero; the indices selected move no value
    assert totals(fn_module, lambda x: torch.nonzero(x)) == (24, 0)
    assert totals(fn_module, lambda x: torch.argwhere(x)) == (24, 0)
    assert totals(fn_module, lambda x: torch.nonzero(x, as_tuple=True)[1]) == (24, 0)
    assert totals(fn_module, lambda x: torch.where(x)[0], shapes_only=False) == (24, 0)
    # nonzero_static has a fixed output size: it runs on the meta device too
    fn = lambda x: torch.nonzero_static(x, size=5)  # noqa: E731
    assert totals(fn_module, fn, shapes_only=True) == totals(fn_module, fn, shapes_only=False) == (24, 0)
    for fn in (torch.nonzero, torch.argwhere):
        with pytest.raises(ms.ValuesNeededError, match=r"aten\.nonzero.*shapes_only=False"):
            ms.count(fn_module(fn), X, shapes_only=True)


def test_masked_select_compares_each_mask_value(fn_module):
    # x > 0: 24 comparisons; masked_select: 24 more (one per value of the mask); the selection is free
    fn = lambda x: torch.masked_select(x, x > 0)  # noqa: E731
    assert totals(fn_module, fn) == (48, 0)
    # a mask of 8 broadcast over the 3 rows: 24 selection comparisons, the mask is a constant
    mask = torch.tensor([True, False] * 4)
    assert totals(fn_module, lambda x: torch.masked_select(x, mask), shapes_only=False) == (24, 0)
    with pytest.raises(ms.ValuesNeededError, match="masked_select"):
        ms.count(fn_module(fn), X, shapes_only=True)
