"""A model fake-quantized by ``quantize_`` with activation quantizers (``FakeQuant``'s default) can be traced by
``torch.export``, also with a dynamic batch: the quantizers pass scale and zero point as tensors (the op
``aten._fake_quantize_per_tensor_affine_cachemask_tensor_qparams``) and decide "calibrated?" without reading a
buffer's value while tracing. The exported program counts exactly as the eager model and computes the same
outputs."""

from __future__ import annotations

import copy
import os
import warnings

import pytest
import torch
from torch import nn

import micronet_score as ms
from micronet_score.compress import FakeQuant, GlobalUnstructured, calibrate, finalize_, prune_, quantize_

BATCH = torch.export.Dim("batch", min=1, max=1024)


def _totals(r: ms.Report) -> tuple:
    return (r.params, r.nonzero_params, r.mask_bits, r.mults, r.adds, r.param_storage, r.math_ops,
            r.params_by_bits, r.mults_by_bits, r.freebie)


def _export(model: nn.Module, x: torch.Tensor, dynamic: bool) -> torch.export.ExportedProgram:
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # torch's own notices while tracing
        return torch.export.export(model, (x,), dynamic_shapes=({0: BATCH},) if dynamic else None)


def _linear(act_bits: int = 8) -> nn.Module:
    torch.manual_seed(0)
    model = quantize_(nn.Sequential(nn.Linear(4, 3)), FakeQuant(weight_bits=8, act_bits=act_bits)).eval()
    calibrate(model, [torch.randn(8, 4)])
    return model


@pytest.mark.parametrize("dynamic", [False, True])
def test_fake_quantized_linear_exports_and_counts_by_hand(dynamic):
    model = _linear()
    ep = _export(copy.deepcopy(model), torch.randn(2, 4), dynamic)
    for batch in ((1, 2, 5) if dynamic else (2,)):
        x = torch.randn(batch, 4)
        for target in (model, ep, ep.module()):
            r = ms.count(target, x)
            # 12 weights at 8 bits (fake-quantized) + 3 biases at 32; per example (counts are per example,
            # whatever the batch) 3 x 4 = 12 mults, at 8 bits (8-bit input times 8-bit weight), and
            # 3 x 3 + 3 bias = 12 adds
            assert r.params == 15 and r.params_by_bits == {8: 12, 32: 3}
            assert r.mults == 12 and r.mults_by_bits == {8: 12}
            assert r.adds == 12
        with torch.no_grad():
            assert torch.equal(ep.module()(x), model(x))


def test_export_of_an_uncalibrated_model_is_refused_with_the_way_out():
    model = quantize_(nn.Sequential(nn.Linear(4, 3)), FakeQuant(weight_bits=8, act_bits=8)).eval()
    with pytest.raises(RuntimeError, match=r"input of layer '0' has no activation range yet: run .*calibrate"):
        _export(model, torch.randn(2, 4), dynamic=True)
    model = _linear()
    model[0].input_fake_quant.reset()  # a reset range is forgotten for tracing too
    with pytest.raises(RuntimeError, match="no activation range yet"):
        _export(model, torch.randn(2, 4), dynamic=True)


def test_a_loaded_range_exports():
    calibrated = _linear()
    fresh = quantize_(nn.Sequential(nn.Linear(4, 3)), FakeQuant(weight_bits=8, act_bits=8)).eval()
    fresh.load_state_dict(calibrated.state_dict())  # no eager forward: the loaded range is remembered on load
    ep = _export(fresh, torch.randn(2, 4), dynamic=True)
    x = torch.randn(3, 4)
    with torch.no_grad():
        assert torch.equal(ep.module()(x), calibrated(x))
    # a loaded "no range yet" (inf/-inf, as quantize_ leaves it) is refused again
    fresh.load_state_dict(quantize_(nn.Sequential(nn.Linear(4, 3)), FakeQuant()).state_dict())
    with pytest.raises(RuntimeError, match="no activation range yet"):
        _export(fresh, torch.randn(2, 4), dynamic=True)


def test_a_saved_program_loads_with_load_exported_and_counts_the_same(tmp_path):
    from micronet_score.io.exported import load_exported

    model = _linear(act_bits=6)
    torch.export.save(_export(copy.deepcopy(model), torch.randn(2, 4), dynamic=True), tmp_path / "m.pt2")
    loaded = load_exported(tmp_path / "m.pt2")
    x = torch.randn(4, 4)
    with torch.no_grad():
        assert torch.equal(loaded.module()(x), model(x))
    r = ms.count(loaded, x[:1])
    # 12 mults per example at max(6-bit input, 8-bit weight) = 8 bits; no freebie (6 and 8 < 16)
    assert _totals(r) == _totals(ms.count(model, x[:1])) and r.mults_by_bits == {8: 12} and not r.freebie


def test_tensor_qparams_fake_quant_sets_the_width_as_the_float_one():
    class Net(nn.Module):
        def __init__(self, tensors: bool) -> None:
            super().__init__()
            self.tensors = tensors
            self.lin = nn.Linear(4, 2, bias=False)

        def forward(self, x):
            if self.tensors:
                scale, zero_point = torch.tensor(0.05), torch.tensor(3, dtype=torch.int32)
                x = torch.fake_quantize_per_tensor_affine(x, scale, zero_point, 0, 63)
            else:
                x = torch.fake_quantize_per_tensor_affine(x, 0.05, 3, 0, 63)
            return self.lin(x)

    for tensors in (False, True):
        r = ms.count(Net(tensors), (1, 4))
        # input on a 0..63 grid: 6 bits; the weight is 32-bit float, so the 8 mults are at max(6, 32) = 32 bits
        # and the activation width shows in the quantized-input note: no 16-bit freebie (6 < 16)
        assert r.mults_by_bits == {32: 8}
        assert not r.freebie


def test_organizer_export_model_takes_a_fake_quantized_model():
    from micronet_score.organizer.programs import export_model

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 30 * 30, 10))
    quantize_(model, FakeQuant(weight_bits=8, act_bits=8))
    calibrate(model, [torch.randn(4, 3, 32, 32)])
    model.train()
    ep = export_model(model, (1, 3, 32, 32))
    assert model.training  # the training flags are put back
    model.eval()
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(ep.module()(x), model(x))
    assert _totals(ms.count(ep, x[:1])) == _totals(ms.count(model, x[:1]))


# ------------------------------------------ the seed recipe, quantized (slow: 1-3 min per export on a busy machine)


_LONG = pytest.mark.skipif(os.environ.get("MICRONET_LONG") != "1",
                           reason="another minute-long densenet-seed export: MICRONET_LONG=1 runs it")


@pytest.fixture(scope="module", params=[16, pytest.param(8, marks=_LONG)], ids=["fq16", "fq8"])
def seed(request) -> tuple[int, nn.Module, torch.export.ExportedProgram]:
    torch.manual_seed(0)
    model = ms.models.build("densenet-seed").eval()
    finalize_(prune_(model, GlobalUnstructured(amount=0.5)))
    quantize_(model, FakeQuant(weight_bits=request.param, act_bits=request.param))
    calibrate(model, [torch.randn(8, 3, 32, 32)])
    return request.param, model, _export(copy.deepcopy(model), torch.randn(2, 3, 32, 32), dynamic=True)


def test_seed_exports_with_a_dynamic_batch_to_the_same_count(seed):
    bits, model, ep = seed
    x = torch.randn(1, 3, 32, 32)
    eager = ms.count(model, x)
    assert eager.mults_by_bits.get(bits, 0) > 0  # the quantizers' width reached the count
    for target in (ep, ep.module()):
        assert _totals(ms.count(target, x)) == _totals(eager)


def test_seed_export_computes_the_eager_outputs(seed):
    _, model, ep = seed
    x = torch.randn(5, 3, 32, 32)  # another batch than the export's example
    with torch.no_grad():
        # the same kernels on the same values: equal up to float reordering (seen bit-equal with torch 2.13)
        assert torch.allclose(ep.module()(x), model(x), rtol=1e-5, atol=1e-5)


@_LONG
def test_seed_static_export_counts_the_same():
    torch.manual_seed(0)
    model = ms.models.build("densenet-seed").eval()
    quantize_(model, FakeQuant(weight_bits=8, act_bits=8))
    calibrate(model, [torch.randn(8, 3, 32, 32)])
    x = torch.randn(1, 3, 32, 32)
    ep = _export(copy.deepcopy(model), x, dynamic=False)
    assert _totals(ms.count(ep, x)) == _totals(ms.count(model, x))
