"""The scorer reads back what ``quantize_`` did: bit widths from the fake-quant ranges (quant_min/quant_max),
16-bit dtypes, per-layer (mixed) precision, and zeros created by rounding. Expected numbers are derived by
hand in the comments.

Rules used: a width is ceil(log2(quant_max - quant_min + 1)); a multiply counts at the wider of its inputs, an
add at 32 bits; the 16-bit freebie is off as soon as something is below 16 bits, and then every float value
and operation counts at 32 bits.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import micronet_score as ms
from micronet_score.compress import FakeQuant, Half, calibrate, quantize_

# Weights chosen so that the grids are exact: max |w| = 7 (per tensor) gives a 4-bit symmetric scale of
# 7 / 7 = 1; row 1's own max, 3.5, gives a per-channel scale of 0.5.
WEIGHT = torch.tensor([[7.0, 1.2, 2.2, -3.0],
                       [3.5, 1.0, 0.3, -2.0]])


def tiny(bias: bool = False) -> nn.Sequential:
    layer = nn.Linear(4, 2, bias=bias)
    with torch.no_grad():
        layer.weight.copy_(WEIGHT)
        if bias:
            layer.bias.copy_(torch.tensor([0.5, -0.5]))
    return nn.Sequential(layer)


def quantized(config: FakeQuant, bias: bool = False) -> nn.Sequential:
    model = quantize_(tiny(bias), config)
    if config.act_bits is not None:
        calibrate(model, [torch.tensor([[-1.0, 0.0, 0.5, 1.0]])])
    return model


# (weight_bits, per_channel, symmetric) -> non-zeros after rounding, worked out by hand:
#  4-bit symmetric per tensor, scale 1: 0.3 -> 0 (the only small value): 7 non-zeros.
#  4-bit symmetric per channel: row 0 scale 1, nothing rounds to 0; row 1 scale 0.5: 0.3 / 0.5 = 0.6 -> 1: 8.
#  4-bit affine per tensor, range [-3, 7]: scale 10 / 15 = 2/3; 0.3 / (2/3) = 0.45 -> 0, the rest >= 1.5: 7.
#  4-bit affine per channel: row 0 as per tensor (no zero); row 1 range [-2, 3.5], scale 5.5 / 15:
#    0.3 -> 0.82 -> 1: 8.
#  8-bit symmetric per tensor, scale 7 / 127: 0.3 -> 5.4 -> 5: 8.
#  8-bit symmetric per channel: row 1 scale 3.5 / 127: 0.3 -> 10.9: 8.
#  8-bit affine per tensor, scale 10 / 255: 0.3 -> 7.65: 8.
#  8-bit affine per channel: row 1 range [-2, 3.5], scale 5.5 / 255: 0.3 -> 13.9: 8.
# (An affine value is zero after fake quantization exactly when round(w / scale) is 0: the zero point
# is added and taken off again.)
CASES = [
    (4, False, True, 7),
    (4, True, True, 8),
    (4, False, False, 7),
    (4, True, False, 8),
    (8, False, True, 8),
    (8, True, True, 8),
    (8, False, False, 8),
    (8, True, False, 8),
]


@pytest.mark.parametrize(("bits", "per_channel", "symmetric", "nonzeros"), CASES)
def test_weight_bits_rounding_zeros_and_mults(bits, per_channel, symmetric, nonzeros):
    model = quantized(FakeQuant(weight_bits=bits, act_bits=8, per_channel=per_channel, symmetric=symmetric))
    r = ms.count(model, (1, 4))
    (row,) = r.tensors
    assert row.name == "0.weight" and row.bits == bits and row.nonzero_params == nonzeros
    # Symmetric grid -(2^(b-1)) .. 2^(b-1)-1 and affine grid 0 .. 2^b-1 both have 2^b levels: b bits.
    assert r.params_by_bits == {bits: 8}
    # 8 values. With 7 non-zeros (b = 4) a bitmask costs 7 x 4 + 8 = 36 bits > 8 x 4 = 32 dense; with 8 there is
    # no zero to skip. Dense either way.
    assert (row.stored_values, row.mask_bits, row.block) == (8, 0, None)
    assert r.param_storage == 8 * bits / 32
    # The input is fake-quantized to 8 bits (affine 0..255): every multiply is max(b, 8) = 8 bits.
    # With 7 non-zeros the row with the zero costs 3 mults and 2 adds, the other 4 and 3.
    adds = nonzeros - 2
    assert r.mults_by_bits == {8: nonzeros}
    assert (r.mults, r.adds) == (nonzeros, adds)
    assert not r.freebie
    assert r.math_ops == nonzeros * 8 / 32 + adds
    assert r.layer("0").param_bits == (bits,) and r.layer("0").mult_bits == (8,)


def test_biases_and_float_activations_count_at_32_bits_without_the_freebie():
    model = quantized(FakeQuant(weight_bits=4, act_bits=None), bias=True)
    r = ms.count(model, (1, 4))
    # weights at 4 bits (per channel: 8 non-zeros, see CASES); the float bias stays 32-bit: no freebie,
    # and a 32-bit input times a 4-bit weight is a 32-bit multiply.
    assert r.params_by_bits == {4: 8, 32: 2}
    assert r.mults_by_bits == {32: 8}
    assert not r.freebie
    assert r.param_storage == (8 * 4 + 2 * 32) / 32 == 3.0
    # 8 mults at 32 bits; adds: 2 x (3 + 1 bias) = 8 at 32 bits
    assert r.math_ops == 16.0
    # forcing the freebie back on changes only the float values: the bias and the multiplies become 16-bit
    forced = ms.count(model, (1, 4), freebie=True)
    assert forced.params_by_bits == {4: 8, 16: 2} and forced.mults_by_bits == {16: 8}


@pytest.mark.parametrize(("act_bits", "symmetric", "expected"), [(6, False, 6), (6, True, 6), (3, False, 3)])
def test_activation_width_comes_from_the_input_range(act_bits, symmetric, expected):
    # act 0..63 or -32..31 (6 bits), 0..7 (3 bits), weights 2-bit (-2..1): multiply at max(2, act bits)
    model = quantized(FakeQuant(weight_bits=2, act_bits=act_bits, act_symmetric=symmetric))
    r = ms.count(model, (1, 4))
    assert r.params_by_bits == {2: 8}
    assert set(r.mults_by_bits) == {expected}


def test_activations_alone_below_16_bits_switch_the_freebie_off():
    model = quantized(FakeQuant(weight_bits=None, act_bits=4), bias=True)
    r = ms.count(model, (1, 4))
    # the input is quantized to 4 bits, so the entry quantizes something: float weights count at 32 bits and
    # the 32-bit x 4-bit multiplies at 32. Got: freebie on, {16: 10} and {16: 8}.
    assert not r.freebie
    assert r.params_by_bits == {32: 10}
    assert r.mults_by_bits == {32: 8}


def convnet() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 10))


def nonzeros(layer: nn.Module) -> int:
    """Non-zeros of the weight the layer multiplies with (after its own fake quantizer)."""
    with torch.no_grad():
        return int(torch.count_nonzero(layer.weight_fake_quant(layer.weight)))


def test_mixed_precision_mapping_puts_each_layers_bits_in_its_row():
    model = quantize_(convnet(), {"": FakeQuant(weight_bits=8, act_bits=8), "3": FakeQuant(weight_bits=4, act_bits=6)})
    calibrate(model, [torch.randn(8, 1, 8, 8, generator=torch.Generator().manual_seed(1))])
    r = ms.count(model, (1, 1, 8, 8))
    conv, relu, fc = r.layer("0"), r.layer("1"), r.layer("3")
    assert (conv.type, fc.type) == ("FakeQuantConv2d", "FakeQuantLinear")
    assert conv.param_bits == (8, 32) and conv.mult_bits == (8,)  # 8-bit weights x 8-bit input; fp32 bias
    assert fc.param_bits == (4, 32) and fc.mult_bits == (6,)  # 4-bit weights x 6-bit input
    assert relu.mult_bits == (32,)  # the conv output is float
    assert r.params_by_bits == {4: 1440, 8: 36, 32: 14}
    nz_conv, nz_fc = nonzeros(model[0]), nonzeros(model[3])
    # conv: each non-zero weight is used at the 6 x 6 output positions; fc: once
    assert r.mults_by_bits == {8: nz_conv * 36, 6: nz_fc, 32: 4 * 36}
    assert (conv.nonzero_params, fc.nonzero_params) == (nz_conv + 4, nz_fc + 10)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_is_16_bits_with_or_without_the_freebie(dtype):
    model = quantize_(tiny(bias=True), Half(dtype))
    x = torch.ones(1, 4, dtype=dtype)
    for freebie in (None, False):
        r = ms.count(model, x, freebie=freebie)
        assert r.params_by_bits == {16: 10} and r.mults_by_bits == {16: 8}
        assert r.adds_by_bits == {32: 8}  # adds stay at the 32-bit accumulator
        # 10 values at 16 bits; 8 mults at 16 bits + 8 adds at 32 bits
        assert (r.param_storage, r.math_ops) == (5.0, 12.0)
    assert ms.count(model, x).freebie


def test_half_layer_inside_a_quantized_model_keeps_its_16_bits():
    model = quantize_(convnet(), {"0": FakeQuant(weight_bits=4, act_bits=8), "3": Half(torch.bfloat16, cast_io=True)})
    calibrate(model, [torch.randn(8, 1, 8, 8, generator=torch.Generator().manual_seed(1))])
    r = ms.count(model, (1, 1, 8, 8))
    assert not r.freebie
    assert r.layer("0").param_bits == (4, 32) and r.layer("0").mult_bits == (8,)
    assert r.layer("3").param_bits == (16,) and r.layer("3").mult_bits == (16,)
    # the linear layer is dense and bf16: 1440 mults at 16 bits
    assert r.mults_by_bits[16] == 1440
    assert r.params_by_bits == {4: 36, 16: 1450, 32: 4}
