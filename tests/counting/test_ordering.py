"""Orders and selections over n values per row: (n - 1)·⌈log₂(k + 1)⌉ comparisons, booked as mults (spec §3).
Every count below is hand arithmetic on 4 rows (4 examples) of n = 8 values unless said otherwise."""

from __future__ import annotations

import pytest
import torch

import micronet_score as ms

X = torch.arange(32.0).reshape(4, 8).flip(-1)  # 4 examples, rows of n = 8 distinct values


def totals(fn_module, fn, x: torch.Tensor = X, **kw) -> tuple[float, float]:
    """(mults, adds) over the whole batch (the report gives them per example)."""
    r = ms.count(fn_module(fn), x, strict=True, **kw)
    assert r.unsupported == {}
    return r.mults * r.examples, r.adds * r.examples


@pytest.mark.parametrize("shapes_only", [True, False])
@pytest.mark.parametrize("fn, mults", [
    # full order: 4 rows x (8 - 1) x ceil(log2 9) = 4 = 112
    (lambda x: torch.sort(x, -1)[0], 112),
    (lambda x: torch.argsort(x, -1), 112),
    (lambda x: torch.mode(x, -1)[0], 112),
    # msort orders dim 0: 8 rows of n = 4: 8 x 3 x ceil(log2 5) = 3 = 72
    (lambda x: torch.msort(x), 72),
    (lambda x: torch.sort(x, dim=0, stable=True, descending=True)[0], 72),  # sort.stable: dim is a keyword
    # topk(3): 4 x 7 x ceil(log2 4) = 2 = 56
    (lambda x: torch.topk(x, 3)[0], 56),
    # topk(1) is a max: 4 x 7 x 1 = 28
    (lambda x: torch.topk(x, 1, largest=False)[0], 28),
    # topk(8), everything: as sort, 112
    (lambda x: torch.topk(x, 8)[0], 112),
    # kthvalue(k) at the spec's k: kthvalue(3) 4 x 7 x 2 = 56; kthvalue(8) 4 x 7 x ceil(log2 9) = 4 = 112;
    # kthvalue(6) 4 x 7 x ceil(log2 7) = 3 = 84
    (lambda x: torch.kthvalue(x, 3)[0], 56),
    (lambda x: torch.kthvalue(x, 8)[0], 112),
    (lambda x: torch.kthvalue(x, 6)[0], 84),
    # median over 8 (lower median, rank 4): 4 x 7 x ceil(log2 5) = 3 = 84; nanmedian alike
    (lambda x: torch.median(x, -1)[0], 84),
    (lambda x: torch.nanmedian(x, -1)[0], 84),
    # median of all 32 values, one row, rank 16: 31 x ceil(log2 17) = 5 = 155
    (lambda x: torch.median(x), 155),
])
def test_orders_and_selections(fn_module, fn, mults, shapes_only):
    assert totals(fn_module, fn, shapes_only=shapes_only) == (mults, 0)


def test_sort_of_a_single_value_costs_nothing(fn_module):
    # 4 rows of n = 1: (1 - 1) x ceil(log2 2) = 0
    assert totals(fn_module, lambda x: torch.sort(x, -1)[0], X[:, :1]) == (0, 0)


def test_unique_sorts_all_values_and_needs_real_inputs(fn_module):
    # torch.unique: one row of the 32 values: 31 x ceil(log2 33) = 6 = 186; then .sum() of the unique values
    # (32 distinct here) adds 31
    fn = lambda x: torch.unique(x).sum()  # noqa: E731
    assert totals(fn_module, fn) == (186, 31)
    assert totals(fn_module, fn, shapes_only=False) == (186, 31)
    with pytest.raises(ms.ValuesNeededError, match=r"aten\._unique2.*shapes_only=False"):
        ms.count(fn_module(fn), X, shapes_only=True)


def test_unique_along_a_dim_compares_slices(fn_module):
    # unique(dim=0): 4 slices of 8 values: 8 x (4 - 1) x ceil(log2 5) = 3 = 72; .sum() of the 4 x 8 result: 31
    fn = lambda x: torch.unique(x, dim=0).sum()  # noqa: E731
    assert totals(fn_module, fn) == (72, 31)
    with pytest.raises(ms.ValuesNeededError, match="unique_dim"):
        ms.count(fn_module(fn), X, shapes_only=True)


def test_unique_consecutive_compares_neighbours(fn_module):
    # no order needed: 31 neighbour comparisons over the 32 values (k = 1: ceil(log2 2) = 1); with dim=1,
    # 8 slices of 4 values: 4 x 7 = 28; the sums add 31 each
    fn = lambda x: torch.unique_consecutive(x).sum()  # noqa: E731
    assert totals(fn_module, fn) == (31, 31)
    fn = lambda x: torch.unique_consecutive(x, dim=1).sum()  # noqa: E731
    assert totals(fn_module, fn, shapes_only=False) == (28, 31)
    with pytest.raises(ms.ValuesNeededError, match="unique_consecutive"):
        ms.count(fn_module(fn), X, shapes_only=True)
