"""Cross-checks on random architectures: micronet-score against closed forms written from the spec, against
torch's FlopCounterMode and against fvcore.

The nets (``_reliability_archs``) mix convolutions (random kernel, stride, padding, dilation, groups,
depthwise), linear layers, max/average/adaptive pooling, residual adds, concatenations, activations, folded and
unfolded batch norms, random masks (written into the weights or held by torch.nn.utils.prune hooks) and
uniform bit widths (``bits=`` with an int or an ``ms.Precision``, by module name or by type).
"""

from __future__ import annotations

import logging

import pytest
import torch
from _reliability_archs import (
    assert_clean,
    assert_closed_forms,
    bits_option,
    build,
    cnn_specs,
    expected,
    mlp_specs,
    net_specs,
    precisions,
)
from _reliability_profiles import budget
from hypothesis import given
from hypothesis import strategies as st
from torch.utils.flop_counter import FlopCounterMode

import micronet_score as ms

LAYER_TYPES = ("Conv2d", "Linear")


def _layer_mults(report: ms.Report) -> int:
    return sum(row.mults for row in report.layers if row.type in LAYER_TYPES)


def _torch_flops(model: torch.nn.Module, x: torch.Tensor) -> int:
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(x)
    return counter.get_total_flops()


def _fvcore_macs(model: torch.nn.Module, x: torch.Tensor) -> int:
    from fvcore.nn import FlopCountAnalysis

    logging.getLogger("fvcore").setLevel(logging.ERROR)
    analysis = FlopCountAnalysis(model, x).unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    return sum(v for k, v in analysis.by_operator().items() if k in ("conv", "linear", "addmm"))


@budget(80, long=3000)
@given(spec=net_specs(masks=True), precision=precisions(), by_name=st.booleans())
def test_counts_match_closed_forms(spec, precision, by_name):
    """mults, adds, params, non-zeros, freebie, 32-bit-equivalent ops and storage bounds, whole net and per
    conv/linear layer, on random masked nets at random uniform bit widths."""
    model = build(spec)
    value, w, a = precision
    report = ms.count(model, spec.input_shape, bits=bits_option(model, value, by_name))
    e = expected(spec)

    assert_closed_forms(report, e)
    assert _layer_mults(report) == e.layer_mults
    assert report.freebie == e.freebie(w, a)
    assert report.math_ops == pytest.approx(e.math_ops(w, a), rel=1e-12, abs=1e-9)
    low, high = e.storage_bounds(w, a)
    assert low - 1e-9 <= report.param_storage <= high + 1e-9
    if not e.sparse_tensors:
        assert report.param_storage == pytest.approx(e.dense_storage(w, a), rel=1e-12)
        assert report.mask_bits == 0
    assert_clean(report, e)
    assert report.batch_size == spec.batch


@budget(40, long=1000)
@given(spec=net_specs(masks=False))
def test_conv_linear_macs_match_flop_counter_and_fvcore(spec):
    """On dense fp32 nets, conv + linear mults are the MACs of torch's FlopCounterMode (flops / 2) and of
    fvcore (conv, linear, addmm), all three equal to the closed form."""
    model = build(spec)
    x = torch.randn(spec.input_shape)
    e = expected(spec)
    report = ms.count(model, x)
    assert _layer_mults(report) == e.dense_macs
    assert _torch_flops(model, x) == 2 * spec.batch * e.dense_macs
    assert _fvcore_macs(model, x) == spec.batch * e.dense_macs


@budget(30, long=1000)
@given(spec=cnn_specs(masks=True, head=False))
def test_sparse_conv_mults_are_output_positions_times_filter_nonzeros(spec):
    """With random per-filter masks (some filters fully zeroed), each conv's mults are the sum over its output
    positions of its filter's non-zeros; FlopCounterMode still counts the dense product."""
    model = build(spec)
    report = ms.count(model, spec.input_shape)
    sparse = expected(spec)
    dense = expected(spec, masked=False)
    for name, (mults, _) in sparse.layers.items():
        assert report.layer(name).mults == mults
        assert mults <= dense.layers[name][0]
    assert _torch_flops(model, torch.randn(spec.input_shape)) == 2 * spec.batch * dense.dense_macs


@budget(20, long=500)
@given(spec=mlp_specs(masks=True), precision=precisions())
def test_mlps_match_closed_forms(spec, precision):
    model = build(spec)
    value, w, a = precision
    report = ms.count(model, spec.input_shape, bits=bits_option(model, value, False))
    e = expected(spec)
    assert (report.mults, report.adds, report.params) == (e.mults, e.adds, e.params)
    assert report.math_ops == pytest.approx(e.math_ops(w, a), rel=1e-12, abs=1e-9)


def test_the_strategies_cover_every_block_kind():
    """Guard against a strategy that silently stops producing some architecture feature."""
    from _reliability_archs import (
        Act,
        Adaptive,
        Concat,
        Conv,
        Dropout,
        Flatten,
        GlobalMean,
        Linear,
        Norm,
        Pool,
        Residual,
    )
    from hypothesis import find

    kinds = (Act, Adaptive, Concat, Conv, Dropout, Flatten, GlobalMean, Linear, Norm, Pool, Residual)
    for kind in kinds:
        find(net_specs(masks=True), lambda s, k=kind: any(isinstance(b, k) for b in s.blocks))
    find(cnn_specs(), lambda s: any(isinstance(b, Conv) and b.groups == b.cin > 1 for b in s.blocks))
    find(cnn_specs(), lambda s: any(isinstance(b, Conv) and b.dilation > 1 and b.stride > 1 for b in s.blocks))
    find(cnn_specs(masks=True), lambda s: any(isinstance(b, Conv) and b.mask is not None and b.mask.dead
                                              and b.mask.via == "prune" for b in s.blocks))


@pytest.mark.parametrize("size, folds", [(1, True), (2, False)])
def test_batch_norm_after_a_flattened_conv_folds_only_when_channels_match(size, folds):
    """Found by the long run: conv -> flatten -> BatchNorm1d. Flatten is a view, so on a 1x1 map the norm
    normalizes exactly the conv's channels and folds into it (+1 bias add per output, 0 ops, C bias values);
    on a larger map its channels are the flattened features: a per-channel affine on C.H.W features."""
    model = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 1, bias=False), torch.nn.Flatten(),
                                torch.nn.BatchNorm1d(3 * size * size)).eval()
    report = ms.count(model, (1, 2, size, size))
    conv = (3 * size * size * 2, 3 * size * size * 1)  # 2 mults and 1 add per output
    if folds:
        assert (report.mults, report.adds) == (conv[0], conv[1] + 3)
        assert report.params == 6 + 3
    else:
        n = 3 * size * size
        assert (report.mults, report.adds) == (conv[0] + n, conv[1] + n)
        assert report.params == 6 + 2 * n
