"""Compressed models read back without being told: pruning hooks, parametrizations, torch.ao quantization."""

import warnings

import pytest
import torch
import torch.ao.quantization as tq
from torch import nn
from torch.nn.utils import parametrize, prune

import micronet_score as ms


class Mask(nn.Module):
    def __init__(self, mask):
        super().__init__()
        self.register_buffer("mask", mask)

    def forward(self, w):
        return w * self.mask


def test_parametrized_weight_reads_the_effective_weight():
    conv = nn.Conv2d(2, 2, 1, bias=False)
    with torch.no_grad():
        conv.weight.fill_(1.0)
    parametrize.register_parametrization(conv, "weight", Mask(torch.tensor([1.0, 0.0, 0.0, 1.0]).view(2, 2, 1, 1)))
    r = ms.count(conv, (1, 2, 3, 3))
    # 2 of 4 weights survive: 2 mults, 0 adds per output position (9 positions, each filter has 1 weight).
    assert (r.params, r.nonzero_params, r.mults, r.adds) == (4, 2, 18, 0)
    assert [t.name for t in r.tensors] == ["weight"]
    assert r.layers[0].name == ""


def test_pruned_then_baked_model_counts_the_same():
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 8, 3))
    prune.global_unstructured([(model[0], "weight"), (model[2], "weight")], prune.L1Unstructured, amount=0.5)
    hooked = ms.count(model, (1, 3, 10, 10))
    for m in (model[0], model[2]):
        prune.remove(m, "weight")
    baked = ms.count(model, (1, 3, 10, 10))
    # 216 + 576 = 792 weights, half of them zeroed: 396 non-zeros + 16 biases.
    assert hooked.nonzero_params == baked.nonzero_params == 396 + 16
    assert (hooked.mults, hooked.adds, hooked.param_storage) == (baked.mults, baked.adds, baked.param_storage)
    assert {t.name for t in hooked.tensors} == {t.name for t in baked.tensors} == {
        "0.weight", "0.bias", "2.weight", "2.bias"}


def _static_quantized():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.q = tq.QuantStub()
            self.conv = nn.Conv2d(3, 4, 3)
            self.relu = nn.ReLU()
            self.fc = nn.Linear(4 * 6 * 6, 10)
            self.dq = tq.DeQuantStub()

        def forward(self, x):
            x = self.relu(self.conv(self.q(x)))
            return self.dq(self.fc(x.flatten(1)))

    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = Net().eval()
        model.qconfig = tq.get_default_qconfig("x86")
        tq.prepare(model, inplace=True)
        model(torch.randn(8, 3, 8, 8))
        tq.convert(model, inplace=True)
    return model


def test_torch_ao_static_quantized_model():
    model = _static_quantized()
    r = ms.count(model, (1, 3, 8, 8))
    # Each non-zero conv weight is used at every one of the 6x6 output positions; each non-zero linear weight
    # once (one row). Rounding to int8 may zero a few weights: read them from the quantized model.
    conv_nz = int(torch.count_nonzero(model.conv.weight().dequantize()))
    fc_nz = int(torch.count_nonzero(model.fc.weight().dequantize()))
    assert r.layer("conv").params == 108 + 4 and r.layer("fc").params == 1_440 + 10
    assert r.layer("conv").param_bits == (8, 32)  # qint8 weights, fp32 bias
    assert r.mults_by_bits.keys() == {8}  # quint8 activations x qint8 weights
    assert not r.freebie
    assert r.layer("conv").mults == conv_nz * 36
    assert r.layer("fc").mults == fc_nz
    assert r.unsupported == {}


def test_torch_ao_dynamic_quantized_linear():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = tq.quantize_dynamic(nn.Sequential(nn.Linear(8, 4)), {nn.Linear}, dtype=torch.qint8)
    r = ms.count(model, (1, 8))
    nz = int(torch.count_nonzero(model[0].weight().dequantize()))
    # fp32 input quantized inside the kernel: int8 x int8 multiplies, 8 bits.
    assert r.mults_by_bits == {8: nz}
    assert r.params_by_bits == {8: 32, 32: 4}


def test_qat_prepared_model_reads_fake_quant_ranges_with_reduce_range():
    model = nn.Sequential(tq.QuantStub(), nn.Conv2d(3, 4, 3), nn.ReLU(), tq.DeQuantStub()).train()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.qconfig = tq.get_default_qat_qconfig("fbgemm")  # activations reduce_range: 0..127 = 7 bits
        tq.prepare_qat(model, inplace=True)
        model(torch.randn(4, 3, 8, 8))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    r = ms.count(model, (1, 3, 8, 8))
    # weights fake-quantized to qint8 (-128..127: 8 bits), the conv input to 0..127 (7 bits): mults at 8.
    assert r.layer("1").param_bits == (8, 32)
    assert r.mults_by_bits.get(8) == 27 * 4 * 36 or r.layer("1").mult_bits == (8,)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # observers untouched


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_models(dtype):
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()).to(dtype)
    r = ms.count(model, (1, 3, 8, 8), freebie=False)
    assert r.params_by_bits == {16: 112} and set(r.mults_by_bits) == {16}


def test_qat_observers_are_not_inference_work():
    # A QAT model counted with its observers still enabled: their min/max statistics are training-time work,
    # so the count equals the one with observers disabled, and the observer buffers are left untouched.
    def build():
        torch.manual_seed(0)
        model = nn.Sequential(tq.QuantStub(), nn.Conv2d(3, 4, 3), nn.ReLU(), tq.DeQuantStub()).train()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.qconfig = tq.QConfig(activation=tq.FakeQuantize.with_args(observer=tq.MovingAverageMinMaxObserver),
                                       weight=tq.default_weight_fake_quant)
            tq.prepare_qat(model, inplace=True)
            model(torch.randn(4, 3, 8, 8))
        return model

    observing = build()
    before = {k: v.clone() for k, v in observing.state_dict().items()}
    counted = ms.count(observing, (1, 3, 8, 8))
    quiet = build().apply(tq.disable_observer)
    assert counted.mults == ms.count(quiet, (1, 3, 8, 8)).mults
    # conv 27 mults per output x 4*6*6 outputs, ReLU 144
    assert counted.mults == 27 * 144 + 144
    assert all(torch.equal(before[k], v) for k, v in observing.state_dict().items())
