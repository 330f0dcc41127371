"""Bad inputs and unusual models: each gives a clear one-line error (and nothing half-done), or is counted
correctly with a warning where the spec asks for one."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F
import torch.nn.utils.prune as prune
from torch import nn

import micronet_score as ms
from micronet_score.models import UnknownModelError


def _one_line(exc: BaseException) -> str:
    text = str(exc)
    assert text.strip() and "\n" not in text.strip(), f"not a one-line message: {text!r}"
    return text


def _net() -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 5))


def _state(model: nn.Module) -> list:
    return [(n, t.detach().clone()) for n, t in list(model.named_parameters()) + list(model.named_buffers())]


def _same_state(model: nn.Module, before: list) -> bool:
    after = _state(model)
    return [n for n, _ in after] == [n for n, _ in before] and all(
        a.shape == b.shape and torch.equal(a, b) for (_, a), (_, b) in zip(after, before))


# ----------------------------------------------------------------------------------------------- inputs
@pytest.mark.parametrize("inputs, match", [
    ((1, 4, 8, 8), r"module '0' \(Conv2d\).*4 channels.*\(1, 4, 8, 8\)"),
    ((1, 3, 2, 2), r"module '0' \(Conv2d\).*Kernel size.*\(1, 3, 2, 2\)"),
    ((1, 3, 9, 9), r"module '3' \(Linear\).*\(1, 3, 9, 9\)"),
    ((1, 3, 8), r"module '0' \(Conv2d\)"),
])
def test_wrong_input_shape_names_the_module_and_the_shapes(inputs, match):
    model = _net().train()
    before = _state(model)
    with pytest.raises(ms.ForwardError, match=match) as info:
        ms.count(model, inputs)
    _one_line(info.value)
    assert _same_state(model, before) and model.training


@pytest.mark.parametrize("dtype", [torch.float64, torch.int64, torch.complex64, torch.bool])
def test_wrong_input_dtype_names_the_module(dtype):
    x = torch.ones(1, 3, 8, 8).to(dtype)
    with pytest.raises(ms.ForwardError, match=r"module '0' \(Conv2d\)") as info:
        ms.count(_net(), x)
    _one_line(info.value)


@pytest.mark.parametrize("inputs, match", [
    ("1,3,8,8", "inputs must be"),
    ((1, 3.5), "no tensor"),
    ((), "empty"),
    ((1, 0, 8, 8), "positive"),
    ((1, -3, 8, 8), "positive"),
    (None, "inputs must be"),
    ({"x": None}, "no tensor"),
])
def test_malformed_inputs_are_refused_before_running(inputs, match):
    with pytest.raises(ms.InputError, match=match) as info:
        ms.count(_net(), inputs)
    _one_line(info.value)


def test_unbatched_input_is_not_silently_taken_as_a_batch():
    # Regression: torch's Conv2d accepts an unbatched (C, H, W) input, and the engine used to read its first
    # dimension as the batch, dividing every per-example count by C (1,296 mults here instead of 3,888).
    report = ms.count(nn.Conv2d(3, 4, 3), torch.randn(3, 8, 8))
    assert (report.mults, report.batch_size) == (4 * 6 * 6 * 27, 1)


def test_inputs_on_another_device_than_the_model():
    # A real model given meta inputs: refused, naming both devices and the fix.
    with pytest.raises(ms.InputError, match=r"on meta .* on cpu.*\.to\(") as info:
        ms.count(_net(), torch.empty(1, 3, 8, 8, device="meta"))
    _one_line(info.value)
    # A model on the meta device given real inputs: they are moved (only shapes matter there).
    meta = _net().to("meta")
    assert ms.count(meta, torch.randn(1, 3, 8, 8)).mults == ms.count(_net(), (1, 3, 8, 8)).mults


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_model_with_cpu_inputs():  # pragma: no cover - CPU-only CI
    with pytest.raises(ms.InputError, match="cuda"):
        ms.count(_net().cuda(), torch.randn(1, 3, 8, 8))


# ----------------------------------------------------------------------------------------------- names
def test_unknown_rule_set():
    report = ms.count(_net(), (1, 3, 8, 8))
    for call in (lambda: ms.score(report, rules="nope"), lambda: ms.score(_net(), (1, 3, 8, 8), rules="nope")):
        with pytest.raises(ms.UnknownRuleSetError, match="unknown rule set 'nope'; known rule sets: .*micronet-2019"
                           ) as info:
            call()
        _one_line(info.value)


def test_unknown_model_name():
    with pytest.raises(UnknownModelError, match="unknown model 'nope'; known models: .*resnet18-cifar") as info:
        ms.models.build("nope")
    _one_line(info.value)
    with pytest.raises(KeyError):  # also a KeyError, for dict-like callers
        ms.models.spec("nope")
    with pytest.raises(ValueError, match="unexpected keyword argument"):
        ms.models.build("resnet18-cifar", nope=1)


def test_unknown_convention_and_bits():
    with pytest.raises(ms.MicronetError, match="unknown counting convention"):
        ms.count(_net(), (1, 3, 8, 8), convention="nope")
    with pytest.raises(ms.InputError, match="does not have"):
        ms.count(_net(), (1, 3, 8, 8), bits={"nope": 8})
    with pytest.raises(ValueError, match="Precision"):
        ms.count(_net(), (1, 3, 8, 8), bits={nn.Conv2d: 0})


# ----------------------------------------------------------------------------------------------- forward
class Inner(nn.Module):
    def forward(self, x):
        raise ZeroDivisionError("inner failure\nsecond line of detail")


class Outer(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 3, 1)
        self.block = nn.Sequential(nn.ReLU(), Inner())

    def forward(self, x):
        return self.block(self.stem(x))


def test_forward_that_raises_names_the_innermost_module():
    model = Outer()
    with pytest.raises(ms.ForwardError, match=r"module 'block\.1' \(Inner\): ZeroDivisionError: inner failure")\
            as info:
        ms.count(model, (1, 3, 4, 4))
    _one_line(info.value)
    assert info.value.module == "block.1"
    assert isinstance(info.value.__cause__, ZeroDivisionError)


def test_op_without_a_cost_in_strict_mode():
    class Determinant(nn.Module):  # (an FFT here until the spec priced FFTs, section 3)
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(8, 8)

        def forward(self, x):
            return torch.linalg.det(self.lin(x).view(-1, 2, 2, 2)).abs()

    model = Determinant()
    with pytest.raises(ms.UnsupportedOpError, match=r"operator 'aten\._linalg_det' in the root module") as info:
        ms.count(model, (1, 8), strict=True)
    _one_line(info.value)
    report = ms.count(model, (1, 8))  # not strict: counted, the op listed and warned about
    assert report.unsupported == {"": {"aten._linalg_det": 1}}
    # the linear (64 mults, 56 + 8 adds), |.| of the 2 determinants; the determinants are not counted
    assert (report.mults, report.adds) == (64 + 2, 64)
    assert any("aten._linalg_det" in w for w in report.warnings)


class NoOutput(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(3, 2)

    def forward(self, x):
        self.lin(x)


class Nested(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(3, 2)

    def forward(self, x):
        y = self.lin(x)
        return {"a": [y, (torch.relu(y), None)], "b": 3, "c": {"d": y * 2, "e": "text"}}


def test_forward_returning_none_is_counted_with_a_warning():
    report = ms.count(NoOutput(), (1, 3))
    assert (report.mults, report.adds, report.params) == (6, 6, 8)
    assert any("None" in w for w in report.warnings)


def test_forward_returning_a_nested_structure_is_counted():
    report = ms.count(Nested(), (2, 3))
    assert (report.mults, report.adds) == (6 + 2 + 2, 6)  # linear, ReLU, the product by 2
    assert report.warnings == ()


@pytest.mark.parametrize("where, value", [("weight", float("nan")), ("weight", float("inf")),
                                          ("bias", float("-inf"))])
def test_nan_and_inf_weights_are_counted_and_flagged(where, value):
    model = _net()
    with torch.no_grad():
        getattr(model[0], where).view(-1)[0] = value
    report = ms.count(model, (1, 3, 8, 8))
    assert report.params == ms.count(_net(), (1, 3, 8, 8)).params
    assert report.mults == ms.count(_net(), (1, 3, 8, 8)).mults
    assert any(f"0.{where}" in w and "NaN or Inf" in w for w in report.warnings)
    assert not next(t for t in report.tensors if t.name == f"0.{where}").finite


def test_nan_in_an_unfolded_batch_norm_is_flagged():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.BatchNorm2d(4)).eval()
    with torch.no_grad():
        model[2].weight[1] = float("nan")
    report = ms.count(model, (1, 3, 8, 8))
    assert any("NaN or Inf" in w for w in report.warnings)


@pytest.mark.parametrize("conv_bias", [False, True])
@pytest.mark.parametrize("tensor", ["weight", "bias", "running_mean", "running_var"])
def test_nan_in_a_folded_batch_norm_is_flagged(tensor, conv_bias):
    model = nn.Sequential(nn.Conv2d(3, 4, 3, bias=conv_bias), nn.BatchNorm2d(4)).eval()
    with torch.no_grad():
        getattr(model[1], tensor)[0] = float("nan")
    report = ms.count(model, (1, 3, 8, 8))
    assert report.layer("1").mults == 0  # folded
    assert any("NaN or Inf" in w for w in report.warnings)


# ----------------------------------------------------------------------------------------------- wrapped models
def test_model_with_pruning_hooks():
    model = _net()
    prune.l1_unstructured(model[0], "weight", amount=0.5)  # 108 -> 54 non-zeros
    prune.random_unstructured(model[3], "weight", amount=0.25)  # 720 -> 540
    hooks = (len(model[0]._forward_pre_hooks), len(model[3]._forward_pre_hooks))
    before = _state(model)
    report = ms.count(model, (1, 3, 8, 8), strict=True)
    assert report.params == 108 + 4 + 720 + 5
    assert report.nonzero_params == 54 + 4 + 540 + 5
    # sparse filters: the conv's 4 filters hold 54 non-zeros, applied at 36 positions; the linear 540.
    assert report.layer("0").mults == 36 * 54 and report.layer("3").mults == 540
    assert "0.weight" in {t.name for t in report.tensors}  # the effective weight, not weight_orig/weight_mask
    assert (len(model[0]._forward_pre_hooks), len(model[3]._forward_pre_hooks)) == hooks
    assert _same_state(model, before)


class FakeQuantCalls(nn.Module):
    """torch.fake_quantize_* calls in forward: input per tensor at 8 bits, weight per channel at 4 bits, the
    bias left in float (it is only added)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        with torch.no_grad():  # |w| in [0.5, 1]: nothing rounds to zero at 4 bits
            self.conv.weight.copy_(torch.rand(4, 3, 3, 3) * 0.5 + 0.5)

    def forward(self, x):
        x = torch.fake_quantize_per_tensor_affine(x, 0.05, 0, -128, 127)
        w = self.conv.weight
        scale = w.detach().abs().amax(dim=(1, 2, 3)) / 7
        w = torch.fake_quantize_per_channel_affine(w, scale, torch.zeros(4, dtype=torch.int32), 0, -8, 7)
        return F.conv2d(x, w, self.conv.bias)


def test_model_calling_fake_quantize_ops():
    report = ms.count(FakeQuantCalls(), (1, 3, 8, 8), strict=True)
    assert not report.freebie
    assert report.params_by_bits == {4: 108, 32: 4}
    # multiplies read the 8-bit input and the 4-bit weight: 8 bits; the fp32 bias is only added.
    assert report.mults_by_bits == {8: 27 * 4 * 36}
    assert report.mults == 27 * 4 * 36  # weight fake-quant is preprocessing: free


def test_shapes_only_counts_fake_quantized_models():
    # Regression: fake-quantize operators have no meta kernel; count(shapes_only=True) failed on every
    # fake-quantized model with a hint blaming data-dependent control flow.
    real = ms.count(FakeQuantCalls(), (1, 3, 8, 8))
    assert ms.count(FakeQuantCalls(), (1, 3, 8, 8), shapes_only=True) == real


def _qat_model(backend: str, bias: bool = False, calibrated: bool = True) -> nn.Module:
    import torch.ao.quantization as tq

    class Small(nn.Module):
        def __init__(self):
            super().__init__()
            self.quant = tq.QuantStub()
            self.conv = nn.Conv2d(3, 4, 3, bias=bias)
            self.relu = nn.ReLU()
            self.fc = nn.Linear(4, 2, bias=bias)
            self.dequant = tq.DeQuantStub()

        def forward(self, x):
            x = self.relu(self.conv(self.quant(x)))
            return self.dequant(self.fc(x.mean((2, 3))))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = Small().train()
        model.qconfig = tq.get_default_qat_qconfig(backend)
        tq.prepare_qat(model, inplace=True)
        if calibrated:
            model(torch.randn(4, 3, 8, 8))
    return model


def test_model_prepared_for_quantization_aware_training():
    model = _qat_model("qnnpack")
    before = _state(model)
    report = ms.count(model, (1, 3, 8, 8))
    assert not report.freebie
    assert report.layer("conv").mult_bits == (8,)  # 8-bit input (QuantStub) x 8-bit weight
    # weights rounded to zero by the 8-bit grid are seen: each non-zero costs one mult per output position.
    assert report.layer("conv").mults == 36 * report.layer("conv").nonzero_params
    assert next(t for t in report.tensors if t.module == "conv" and t.shape == (4, 3, 3, 3)).bits == 8
    assert _same_state(model, before) and model.training


def test_fake_quantized_weight_of_a_qat_layer_keeps_its_name():
    # Regression: it was labelled 'conv.fake_quant_enabled+max_val+min_val+observer_enabled+scale+weight+...'
    report = ms.count(_qat_model("qnnpack"), (1, 3, 8, 8))
    assert next(t for t in report.tensors if t.module == "conv" and t.shape == (4, 3, 3, 3)).name == "conv.weight"


def test_fresh_qat_model_that_never_ran_is_counted_and_left_unchanged():
    # Regression: per-channel weight observers resize_() their empty min/max buffers on the first forward;
    # putting the 0-element snapshot back raised a bare RuntimeError from the restore step.
    model = _qat_model("x86", calibrated=False)
    before = _state(model)
    report = ms.count(model, (1, 3, 8, 8))
    assert report.layer("conv").mults == 36 * report.layer("conv").nonzero_params
    assert _same_state(model, before)


def test_observer_state_of_a_qat_model_is_not_counted_as_parameters():
    # Regression: observer_enabled/fake_quant_enabled (64-bit flags) and min_val/max_val were booked as stored
    # parameters because the activation fake-quant operator reads them.
    report = ms.count(_qat_model("qnnpack"), (1, 3, 8, 8))
    leaked = [t.name for t in report.tensors
              if any(k in t.name for k in ("observer_enabled", "fake_quant_enabled", "min_val", "max_val"))]
    assert leaked == []


# ----------------------------------------------------------------------------------------------- control flow
class Recursive(nn.Module):
    """Calls itself on its own output: depth nested calls of the same module."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 4)

    def forward(self, x, depth: int = 5):
        x = torch.relu(self.lin(x))
        return self(x, depth - 1) if depth > 1 else x


class Repeated(nn.Module):
    """One block applied to its own output n times."""

    def __init__(self, n: int):
        super().__init__()
        self.n = n
        self.block = nn.Sequential(nn.Conv2d(2, 2, 3, padding=1), nn.ReLU())

    def forward(self, x):
        for _ in range(self.n):
            x = self.block(x)
        return x


class Halving(nn.Module):
    """A loop whose length depends on the data."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 4, bias=False)

    def forward(self, x):
        while x.abs().sum() > 1:
            x = self.lin(x) * 0.5
        return x


def test_module_calling_itself_recursively():
    report = ms.count(Recursive(), (1, 4))
    assert (report.mults, report.adds) == (5 * (16 + 4), 5 * 16)
    assert report.layer("lin").calls == 5 and report.layer("").calls == 5
    assert report.params == 20


@pytest.mark.parametrize("n", [1, 3, 7])
def test_block_applied_to_its_own_output_n_times(n):
    report = ms.count(Repeated(n), (1, 2, 5, 5))
    per_pass = 2 * 25 * 18, 2 * 25 * 18  # conv: 18 mults, 17 adds + 1 bias per output
    assert report.layer("block.0").mults == n * per_pass[0]
    assert report.layer("block.0").adds == n * per_pass[1]
    assert report.layer("block.1").mults == n * 2 * 25
    assert report.layer("block.0").calls == n
    assert report.params == 2 * 18 + 2  # a shared block is stored once


def test_python_loop_of_data_dependent_length():
    torch.manual_seed(0)
    model = Halving()
    x = torch.randn(1, 4) * 10
    iterations, y = 0, x
    with torch.no_grad():
        while y.abs().sum() > 1:
            y = model.lin(y) * 0.5
            iterations += 1
    assert iterations >= 2
    report = ms.count(model, x)
    # each test: |x| 4 mults, sum 3 adds, comparison 1 mult; each pass: 16 mults + 12 adds, x0.5 4 mults.
    tests = iterations + 1
    assert report.mults == tests * 5 + iterations * (16 + 4)
    assert report.adds == tests * 3 + iterations * 12
