"""The cost registry: one function per operator, free operators listed, duplicates refused."""

import pytest
import torch

import micronet_score as ms
from micronet_score.counting import Cost, free_ops, register, registered_ops
from micronet_score.counting.registry import _COSTS, lookup

aten = torch.ops.aten


def test_duplicates_are_refused():
    with pytest.raises(ValueError, match="already has a cost"):
        register(aten.convolution)(lambda call: Cost())
    with pytest.raises(ValueError, match="already has a cost or is listed as free"):
        register(aten.view)(lambda call: Cost())


def test_tables_are_disjoint_and_cover_the_families():
    costed, free = set(registered_ops()), set(free_ops())
    assert not costed & free
    for name in ("aten.convolution", "aten.addmm", "aten.bmm", "aten.native_batch_norm", "aten.native_layer_norm",
                 "aten.relu", "aten.avg_pool2d", "aten.mean", "aten._softmax", "aten.upsample_bilinear2d"):
        assert name in costed
    for name in ("aten.view", "aten.cat", "aten.constant_pad_nd", "aten.upsample_nearest2d"):
        assert name in free


def test_a_registered_cost_is_used_by_count(fn_module):
    op = aten.special_bessel_j0
    assert lookup(op) is None
    model = fn_module(torch.special.bessel_j0)
    assert ms.count(model, (1, 5)).unsupported == {"": {"aten.special_bessel_j0": 1}}
    try:
        register(op)(lambda call: Cost(mults=call.out.numel()))  # one transcendental per element
        report = ms.count(model, (1, 5))
        assert report.mults == 5 and report.unsupported == {}
    finally:
        _COSTS.pop(op, None)
