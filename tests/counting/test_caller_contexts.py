"""A count is the same whatever torch context the caller runs it in (inference mode, grad mode, default dtype,
default device, another dispatch mode around it); an autocast region is refused (tests/counting/
test_engine_refusals.py)."""

from __future__ import annotations

import contextlib

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import micronet_score as ms


class _Mixed(nn.Module):
    """Composite operators that decompose only outside inference mode: linear, conv1d/conv3d, layer norm,
    attention, a recurrent layer and an embedding."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(50, 16)
        self.conv1d = nn.Conv1d(16, 16, 3, padding=1)
        self.norm = nn.LayerNorm(16)
        self.attn = nn.MultiheadAttention(16, 2, batch_first=True)
        self.gru = nn.GRU(16, 8, batch_first=True)
        self.conv3d = nn.Conv3d(1, 2, 3, padding=1)
        self.head = nn.Linear(8, 4)

    def forward(self, tokens):
        x = self.embed(tokens)
        x = self.conv1d(x.transpose(1, 2)).transpose(1, 2)
        x = self.norm(x)
        x, _ = self.attn(x, x, x, need_weights=False)
        x, _ = self.gru(x)
        v = self.conv3d(x[:, None, :, :, None].expand(-1, 1, -1, -1, 3)).mean()
        return self.head(x[:, -1]) + v


def _models():
    torch.manual_seed(0)
    cnn = ms.models.build("resnet18-cifar", seed=0).eval()
    mixed = _Mixed().eval()
    return {"resnet18-cifar": (cnn, torch.randn(2, 3, 32, 32)),
            "mixed": (mixed, torch.randint(0, 50, (2, 7), generator=torch.Generator().manual_seed(1)))}


CONTEXTS = {
    "inference_mode": torch.inference_mode,
    "enable_grad": torch.enable_grad,
    "no_grad": torch.no_grad,
    "FlopCounterMode around it": lambda: FlopCounterMode(display=False),
    "default device meta": lambda: torch.device("meta"),
}


@pytest.mark.parametrize("context", sorted(CONTEXTS))
@pytest.mark.parametrize("name", ["resnet18-cifar", "mixed"])
@pytest.mark.parametrize("shapes_only", [None, False])
def test_the_same_count_in_any_caller_context(name, context, shapes_only):
    model, x = _models()[name]
    plain = ms.count(model, x, shapes_only=shapes_only)
    assert not any("no cost" in w for w in plain.warnings)
    with CONTEXTS[context]():
        inside = ms.count(model, x, shapes_only=shapes_only)
    assert inside == plain


def test_inference_mode_used_to_leave_convolutions_uncounted():
    # inside torch.inference_mode() conv2d reached the tracer undecomposed, as an operator without a cost:
    # 1,177,088 mults instead of resnet18-cifar's 555,980,288
    model, x = _models()["resnet18-cifar"]
    with torch.inference_mode():
        report = ms.count(model, x[:1])
    assert report.mults == 555_980_288 and not report.warnings


def test_a_model_built_in_inference_mode_counts_like_one_built_outside():
    with torch.inference_mode():  # its parameters are inference tensors
        torch.manual_seed(3)
        inside = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(),
                               nn.Linear(8 * 6 * 6, 5)).eval()
    torch.manual_seed(3)
    outside = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(),
                            nn.Linear(8 * 6 * 6, 5)).eval()
    x = torch.randn(1, 3, 8, 8)
    for context in (contextlib.nullcontext, torch.inference_mode):
        with context():
            assert ms.count(inside, x) == ms.count(outside, x)


def test_a_float64_default_dtype_does_not_change_a_float32_model():
    model, x = _models()["resnet18-cifar"]
    plain = ms.count(model, x)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        assert ms.count(model, x) == plain
    finally:
        torch.set_default_dtype(previous)


@pytest.mark.parametrize("shapes_only", [None, False])
def test_a_model_and_inputs_made_in_inference_mode(shapes_only):
    with torch.inference_mode():  # every tensor an inference tensor: no operator would decompose
        torch.manual_seed(4)
        model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 6 * 6, 5)).eval()
        x = torch.randn(1, 3, 8, 8)
        inside = ms.count(model, x, shapes_only=shapes_only)
    # 3*8*3*3 * 6*6 = 7,776 conv mults; 288*5 = 1,440 linear mults; 288 ReLU comparisons priced as mults
    assert inside.mults == 7_776 + 1_440 + 288 and not inside.warnings
    assert inside == ms.count(model, x, shapes_only=shapes_only)


def _compiled_case(backend: str, where: str):
    torch.manual_seed(5)
    plain = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 6 * 6, 5)).eval()
    x = torch.randn(1, 3, 8, 8)
    if where == "whole":
        model = torch.compile(plain, backend=backend)
        prefix = "_orig_mod."
    else:  # one compiled submodule
        model = nn.Sequential(plain[0], torch.compile(plain[1], backend=backend), plain[2], plain[3]).eval()
        prefix = None
    model(x)  # compiled once before the count, as a user's model would be
    return plain, model, x, prefix


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("backend", ["eager", "aot_eager"])
@pytest.mark.parametrize("where", ["whole", "submodule"])
def test_a_compiled_model_is_counted_as_the_modules_it_wraps(backend, where):
    plain, model, x, prefix = _compiled_case(backend, where)
    expected = ms.count(plain, x)
    report = ms.count(model, x)
    # 3*8*3*3 * 6*6 = 7,776 conv mults; 288 ReLU; 288*5 = 1,440 linear mults
    assert report.mults == expected.mults == 7_776 + 288 + 1_440
    assert (report.params, report.nonzero_params, report.param_storage, report.math_ops) == \
        (expected.params, expected.nonzero_params, expected.param_storage, expected.math_ops)
    assert not report.warnings and not report.unsupported
    if prefix:
        assert [r.name for r in report.layers if r.mults] == [prefix + r.name for r in expected.layers if r.mults]
    assert ms.count(model, x) == report  # and again, once dynamo has seen the count's modes
