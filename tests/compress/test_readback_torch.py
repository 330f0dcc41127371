"""The scorer reads back models compressed with PyTorch's own tools, with hand-derived expected numbers.

Extends tests/counting/test_readback.py (which covers a masked conv parametrization, prune + prune.remove, an
x86 static model, a qint8 dynamic linear, the default QAT qconfig's widths and fp16/bf16 models with the freebie
forced off) with: chained parametrizations on a linear layer, ``model.half()`` with the freebie as the rules
decide it, a static model whose rounding zeros are known, a 4-bit QAT model, and float16 dynamic quantization.

torch.ao.quantization warns that it is deprecated while a model is *prepared*; that is torch's API, used here
to build the models, so those warnings are silenced during preparation only. ``ms.count`` itself runs under
this folder's warnings-are-errors fixture.
"""

from __future__ import annotations

import warnings

import torch
import torch.ao.quantization as tq
from torch import nn
from torch.nn.utils import parametrize

import micronet_score as ms
from micronet_score.compress import finalize_


class Mask(nn.Module):
    def __init__(self, mask: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("mask", mask)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return w * self.mask


class Double(nn.Module):
    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return 2 * w


def test_chained_parametrizations_on_a_linear_weight_then_removed():
    layer = nn.Linear(6, 2)
    with torch.no_grad():
        layer.weight.copy_(torch.arange(1.0, 13.0).view(2, 6))
        layer.bias.fill_(1.0)
    # keep 3 of 6 inputs in row 0 and 1 of 6 in row 1: 4 of 12 weights
    mask = torch.tensor([[1.0, 0, 1, 0, 1, 0], [0, 0, 0, 0, 0, 1]])
    parametrize.register_parametrization(layer, "weight", Mask(mask))
    parametrize.register_parametrization(layer, "weight", Double())
    model = nn.Sequential(layer)
    hooked = ms.count(model, (1, 6))
    # mults: 3 + 1 = 4; adds: (3 - 1) + 1 bias + (1 - 1) + 1 bias = 4
    assert (hooked.params, hooked.nonzero_params, hooked.mults, hooked.adds) == (14, 4 + 2, 4, 4)
    assert {t.name for t in hooked.tensors} == {"0.weight", "0.bias"}
    # 12 weights, 4 kept at 16 bits: 4 x 16 + 12 = 76 bits < 192 dense; bias 2 x 16: (76 + 32) / 32
    assert hooked.mask_bits == 12 and hooked.param_storage == 108 / 32
    finalize_(model)  # removes the parametrizations, keeping 2 * w * mask
    assert not parametrize.is_parametrized(layer)
    baked = ms.count(model, (1, 6))
    assert (baked.nonzero_params, baked.mults, baked.adds, baked.param_storage) == (6, 4, 4, 108 / 32)


def test_model_half_gets_the_same_score_as_float_under_the_freebie():
    def build() -> nn.Sequential:
        torch.manual_seed(0)
        return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 10))

    fp32 = ms.count(build(), (1, 3, 8, 8))
    fp16 = ms.count(build().half(), torch.randn(1, 3, 8, 8).half())
    # params 108 + 4 + 1440 + 10 = 1562; mults 108 x 36 + 144 + 1440 = 5472; adds 27 x 144 + 1440 = 5328
    for r in (fp32, fp16):
        assert r.freebie
        assert (r.params, r.mults, r.adds) == (1562, 5472, 5328)
        assert r.params_by_bits == {16: 1562} and r.mults_by_bits == {16: 5472}
        assert r.param_storage == 781.0 and r.math_ops == 5472 / 2 + 5328
    # without the freebie the float32 model counts at 32 bits and the half model still at 16
    assert ms.count(build(), (1, 3, 8, 8), freebie=False).params_by_bits == {32: 1562}
    assert ms.count(build().half(), torch.randn(1, 3, 8, 8).half(), freebie=False).params_by_bits == {16: 1562}


class QuantNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.q = tq.QuantStub()
        self.fc = nn.Linear(4, 2)
        self.dq = tq.DeQuantStub()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dq(self.fc(self.q(x)))


def test_static_per_tensor_model_counts_the_zeros_that_rounding_made():
    model = QuantNet().eval()
    with torch.no_grad():
        model.fc.weight.copy_(torch.tensor([[1.0, 0.003, -0.5, 0.25], [0.002, -1.0, 0.75, 0.5]]))
        model.fc.bias.fill_(0.1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.qconfig = tq.default_qconfig  # weights: qint8, per-tensor symmetric min/max
        tq.prepare(model, inplace=True)
        model(torch.tensor([[-1.0, 0.0, 0.5, 1.0]]))
        tq.convert(model, inplace=True)
    r = ms.count(model, (1, 4))
    # scale = max|w| / 127.5 = 1 / 127.5: 0.003 -> 0.38 and 0.002 -> 0.26 both round to 0; 6 non-zeros left
    assert int(torch.count_nonzero(model.fc.weight().int_repr())) == 6
    fc = r.layer("fc")
    assert (fc.params, fc.nonzero_params) == (10, 8)
    # each row keeps 3 weights: 3 mults, 2 adds + 1 bias add, per row
    assert (r.mults, r.adds) == (6, 6)
    # int8 weights: 6 x 8 + 8 mask bits = 56 bits < 64 dense; fp32 bias: 2 x 32. (56 + 64) / 32 = 3.75
    weight = next(t for t in r.tensors if t.name == "fc.weight")
    assert (weight.bits, weight.stored_values, weight.mask_bits) == (8, 6, 8)
    assert r.param_storage == 3.75
    assert r.params_by_bits == {8: 8, 32: 2} and r.mults_by_bits == {8: 6}
    assert not r.freebie and r.math_ops == 6 * 8 / 32 + 6


def _qat_4bit() -> nn.Sequential:
    qconfig = tq.QConfig(
        activation=tq.FakeQuantize.with_args(observer=tq.MovingAverageMinMaxObserver, quant_min=0, quant_max=15,
                                             dtype=torch.quint8),
        weight=tq.FakeQuantize.with_args(observer=tq.MovingAveragePerChannelMinMaxObserver, quant_min=-8,
                                         quant_max=7, dtype=torch.qint8, qscheme=torch.per_channel_symmetric),
    )
    torch.manual_seed(0)
    model = nn.Sequential(tq.QuantStub(), nn.Conv2d(3, 4, 3), nn.ReLU(), tq.DeQuantStub()).train()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.qconfig = qconfig
        tq.prepare_qat(model, inplace=True)
        model(torch.randn(4, 3, 8, 8))
        model.apply(tq.disable_observer)  # inference: ranges frozen
    return model


def test_qat_4_bit_model_reads_its_ranges_and_rounding_zeros():
    model = _qat_4bit()
    r = ms.count(model, (1, 3, 8, 8))
    conv = r.layer("1")
    # weights -8..7 and the conv input 0..15: 16 levels each, 4 bits; the fp32 bias stays 32-bit
    assert conv.param_bits == (4, 32) and conv.mult_bits == (4,)
    assert not r.freebie
    with torch.no_grad():
        nz = int(torch.count_nonzero(model[1].weight_fake_quant(model[1].weight)))
    assert nz < 108  # 4-bit rounding zeroes some of the 108 weights
    # every non-zero weight is used at the 6 x 6 output positions
    assert conv.mults == nz * 36
    assert r.params_by_bits[4] == 108


def test_qat_weight_row_is_named_after_the_weight():
    r = ms.count(_qat_4bit(), (1, 3, 8, 8))
    assert "1.weight" in {t.name for t in r.tensors}


def test_default_qat_model_stores_no_observer_flags():
    model = nn.Sequential(tq.QuantStub(), nn.Conv2d(3, 4, 3), nn.ReLU(), tq.DeQuantStub()).train()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.qconfig = tq.get_default_qat_qconfig("x86")
        tq.prepare_qat(model, inplace=True)
        model(torch.randn(4, 3, 8, 8))
        model.apply(tq.disable_observer)
    r = ms.count(model, (1, 3, 8, 8))
    # got params_by_bits {8: 108, 32: 12, 64: 4}: two 64-bit flags per activation fake quantizer
    assert 64 not in r.params_by_bits
    assert not any(t.name.endswith(("observer_enabled", "fake_quant_enabled")) for t in r.tensors)


def test_float16_dynamic_linear_is_16_bit():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = tq.quantize_dynamic(nn.Sequential(nn.Linear(8, 4)), {nn.Linear}, dtype=torch.float16)
    r = ms.count(model, (1, 8), freebie=False)
    # 32 float16 weights, fp32 bias; the kernel multiplies at the weight's width (the engine's own rule for
    # dynamic layers). Got {32: 36} and {32: 32}.
    assert r.params_by_bits == {16: 32, 32: 4}
    assert r.mults_by_bits == {16: 32}
