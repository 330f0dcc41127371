"""Invariants on random architectures: spatial scaling, batch size, pruning monotonicity, uniform quantization
versus the freebie, determinism, meta versus real tensors."""

from __future__ import annotations

import copy

import pytest
import torch
from _reliability_archs import build, cnn_specs, expected, net_specs
from _reliability_profiles import budget
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

import micronet_score as ms

RULES = "micronet-2019-cifar100"


def _per_example(report: ms.Report) -> tuple:
    """Everything of a report that must not depend on the batch size."""
    layers = tuple((r.name, r.params, r.nonzero_params, r.mask_bits, r.param_storage, r.mults, r.adds,
                    r.math_ops, r.param_bits, r.mult_bits, r.add_bits) for r in report.layers)
    return (report.params, report.nonzero_params, report.mask_bits, report.param_storage, report.mults,
            report.adds, report.math_ops, report.params_by_bits, report.mults_by_bits, report.adds_by_bits,
            report.freebie, layers, report.tensors, report.warnings)


@budget(25, long=1000)
@given(spec=cnn_specs(masks=True, same=True, head=False, max_size=8))
def test_size_preserving_conv_nets_scale_with_the_spatial_size(spec):
    """Stride 1 and padding that keeps sizes: every operator is per position, so 2H x 2W costs exactly 4x."""
    model = build(spec)
    b, c, h, w = spec.input_shape
    small = ms.count(model, (b, c, h, w))
    large = ms.count(model, (b, c, 2 * h, 2 * w))
    assert (large.mults, large.adds) == (4 * small.mults, 4 * small.adds)
    assert large.math_ops == pytest.approx(4 * small.math_ops, rel=1e-12)
    assert (large.params, large.param_storage) == (small.params, small.param_storage)
    e = expected(spec.with_input((b, c, 2 * h, 2 * w)))
    assert (large.mults, large.adds) == (e.mults, e.adds)


@budget(25, long=1000)
@given(spec=net_specs(masks=True), batch=st.integers(2, 5))
def test_batch_size_does_not_change_per_example_counts(spec, batch):
    model = build(spec)
    one = ms.count(model, spec.with_batch(1).input_shape)
    many = ms.count(model, spec.with_batch(batch).input_shape)
    assert _per_example(one) == _per_example(many)
    assert (one.batch_size, many.batch_size) == (1, batch)


_MONOTONE = ("mults", "adds", "nonzero_params", "param_storage", "math_ops")


@budget(25, long=1000)
@given(spec=net_specs(masks=False), steps=st.lists(st.tuples(st.integers(0, 2**16), st.floats(0.0, 1.0)),
                                                 min_size=1, max_size=3))
def test_pruning_more_weights_never_increases_a_count(spec, steps):
    """Zero a growing set of weights step by step: no count may grow (stored values stay the same). The mask
    bits may appear (dense -> bitmask) but only when that lowers the storage."""
    model = build(spec)
    layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    previous = ms.count(model, spec.input_shape)
    for seed, fraction in steps:
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for m in layers:
                m.weight.mul_((torch.rand(m.weight.shape, generator=g) >= fraction).float())
        current = ms.count(model, spec.input_shape)
        for field in _MONOTONE:
            assert getattr(current, field) <= getattr(previous, field), field
        assert current.params == previous.params
        previous = current


@budget(25, long=1000)
@given(spec=net_specs(masks=True), b=st.integers(1, 16), precision=st.booleans())
def test_uniform_quantization_at_16_bits_or_less_never_raises_the_score(spec, b, precision):
    """The whole model at b <= 16 bits (weights and activations) scores no worse than fp32 with the freebie."""
    model = build(spec)
    value = ms.Precision(weight=b, activation=b) if precision else b
    fp32 = ms.score(ms.count(model, spec.input_shape), rules=RULES)
    quantized = ms.score(ms.count(model, spec.input_shape, bits={nn.Module: value}), rules=RULES)
    assert quantized.value <= fp32.value
    assert quantized.param_term <= fp32.param_term and quantized.ops_term <= fp32.ops_term


def test_quantizing_only_part_of_the_model_below_16_bits_can_raise_the_score():
    """One small layer at 8 bits switches the freebie off: everything else now counts at 32 bits."""
    model = nn.Sequential(nn.Conv2d(3, 32, 3), nn.ReLU(), nn.Conv2d(32, 32, 3), nn.ReLU(), nn.Flatten(),
                          nn.Linear(32 * 4 * 4, 10))
    fp32 = ms.count(model, (1, 3, 8, 8))
    partial = ms.count(model, (1, 3, 8, 8), bits={"5": 8})
    assert fp32.freebie and not partial.freebie
    # fp32 + freebie: every parameter and multiply at 16 bits; partial: the Linear's at 8, the rest at 32.
    linear_params = 32 * 16 * 10 + 10
    assert fp32.param_storage == fp32.params * 16 / 32
    assert partial.param_storage == (fp32.params - linear_params) + linear_params * 8 / 32
    assert ms.score(partial, rules=RULES).value > ms.score(fp32, rules=RULES).value


@budget(20, long=500)
@given(spec=net_specs(masks=True))
def test_counting_twice_gives_identical_reports(spec):
    model = build(spec)
    first = ms.count(model, spec.input_shape)
    second = ms.count(model, spec.input_shape)
    assert first == second
    assert first.to_json() == second.to_json()


@budget(20, long=500)
@given(spec=net_specs(masks=False))
def test_meta_and_real_tensors_give_identical_operations(spec):
    model = build(spec)
    real = ms.count(model, spec.input_shape)
    meta = ms.count(copy.deepcopy(model).to("meta"), spec.input_shape)
    assert (meta.mults, meta.adds, meta.params, meta.freebie) == (real.mults, real.adds, real.params, real.freebie)
    assert meta.math_ops == real.math_ops
    assert meta.mults_by_bits == real.mults_by_bits and meta.adds_by_bits == real.adds_by_bits

    def ops(report):
        return [(r.name, r.mults, r.adds, r.math_ops) for r in report.layers]

    assert ops(meta) == ops(real)
    assert meta.nonzero_params is None and not meta.nonzeros_known



@budget(20, long=500)
@given(spec=net_specs(masks=True))
def test_shapes_only_gives_the_real_report(spec):
    """count(shapes_only=True) runs activations on meta but reads the real weights: same report."""
    model = build(spec)
    assert ms.count(model, spec.input_shape, shapes_only=True) == ms.count(model, spec.input_shape)
