"""The torch-function shortcut for inference batch norms (counting/shortcuts.py) gives exactly the count of the
normal path, takes the normal path for anything unusual, and leaves torch's errors as they were."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import micronet_score as ms
from micronet_score.counting import shortcuts
from micronet_score.counting.engine import count_with_events
from micronet_score.counting.shortcuts import inference_batch_norm
from micronet_score.counting.tracer import Tracer


def _both(model, inputs, **options):
    """(report, events) with the shortcut, then without it."""
    with_shortcut = count_with_events(model, inputs, **options)
    shortcuts.ENABLED = False
    try:
        without = count_with_events(model, inputs, **options)
    finally:
        shortcuts.ENABLED = True
    return with_shortcut, without


def _seeded(model: nn.Module) -> nn.Module:
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats:
                m.running_mean.normal_(generator=g)
                m.running_var.uniform_(0.5, 2.0, generator=g)
                m.running_var[0] = 0.0  # a zero variance: scale 1/sqrt(eps)
                if m.affine:
                    m.weight.normal_(generator=g)
                    m.weight[1] = 0.0  # a zero scale
    return model.eval()


CASES = {
    "conv-bn folds": (lambda: nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU()), (2, 3, 8, 8)),
    "bn after relu (kept)": (lambda: nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.BatchNorm2d(8)), (1, 3, 8, 8)),
    "input bn, no affine": (lambda: nn.Sequential(nn.BatchNorm2d(3, affine=False), nn.Conv2d(3, 4, 1)),
                            (1, 3, 5, 5)),
    "bn1d on (N, C)": (lambda: nn.Sequential(nn.Linear(6, 5), nn.BatchNorm1d(5)), (4, 6)),
    "bn1d on (N, C, L)": (lambda: nn.Sequential(nn.Conv1d(2, 5, 3), nn.BatchNorm1d(5)), (2, 2, 9)),
    "bn3d": (lambda: nn.Sequential(nn.Conv3d(2, 3, 1), nn.BatchNorm3d(3, eps=1e-3, momentum=None)),
             (1, 2, 3, 4, 4)),
    "no running stats (batch statistics)": (lambda: nn.Sequential(nn.Conv2d(3, 4, 1),
                                                                  nn.BatchNorm2d(4, track_running_stats=False)),
                                            (2, 3, 4, 4)),
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("shapes_only", [None, False])
def test_same_count_with_and_without_the_shortcut(case, shapes_only):
    build, shape = CASES[case]
    model = _seeded(build())
    x = torch.randn(shape, generator=torch.Generator().manual_seed(1))
    (fast, fast_events), (slow, slow_events) = _both(model, x, shapes_only=shapes_only)
    assert fast == slow
    assert [(e.module, e.op, e.mults, e.adds, e.mult_bits) for e in fast_events] == \
        [(e.module, e.op, e.mults, e.adds, e.mult_bits) for e in slow_events]


def test_same_count_on_the_seed_densenet_in_double_precision():
    model = ms.models.build("densenet-seed", seed=0).double().eval()
    (fast, _), (slow, _) = _both(model, torch.randn(1, 3, 32, 32, dtype=torch.float64))
    assert fast == slow and fast.mults > 0


def test_the_shortcut_output_equals_f_batch_norm():
    g = torch.Generator().manual_seed(2)
    x, w, b = torch.randn(2, 5, 3, 3, generator=g), torch.randn(5, generator=g), torch.randn(5, generator=g)
    mean, var = torch.randn(5, generator=g), torch.rand(5, generator=g) + 0.1
    kwargs = {"weight": w, "bias": b, "training": False, "momentum": 0.1, "eps": 1e-5}
    out = inference_batch_norm((x, mean, var), kwargs)
    assert torch.equal(out, nn.functional.batch_norm(x, mean, var, w, b, False, 0.1, 1e-5))


@pytest.mark.parametrize("change", ["training", "no running mean", "wrong channels", "empty input", "1-d input",
                                    "negative eps", "extra keyword", "subclass"])
def test_anything_unusual_takes_the_normal_path(change):
    x, mean, var = torch.randn(2, 4, 3), torch.zeros(4), torch.ones(4)
    kwargs = {"weight": torch.ones(4), "bias": torch.zeros(4), "training": False, "momentum": 0.1, "eps": 1e-5}
    args = (x, mean, var)
    if change == "training":
        kwargs["training"] = True
    elif change == "no running mean":
        args = (x, None, var)
    elif change == "wrong channels":
        kwargs["weight"] = torch.ones(5)
    elif change == "empty input":
        args = (torch.randn(0, 4, 3), mean, var)
    elif change == "1-d input":
        args = (torch.randn(4), mean, var)
    elif change == "negative eps":
        kwargs["eps"] = -1.0
    elif change == "extra keyword":
        kwargs["cudnn_enabled"] = True
    else:
        class Sub(torch.Tensor):
            pass
        args = (x.as_subclass(Sub), mean, var)
    assert inference_batch_norm(args, kwargs) is None


@pytest.mark.parametrize("shapes_only", [None, False])
def test_a_norm_of_the_wrong_width_still_fails_as_before(shapes_only):
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(6)).eval()
    with pytest.raises(ms.ForwardError, match="BatchNorm2d"):
        ms.count(model, (1, 3, 8, 8), shapes_only=shapes_only)


def test_the_inference_norm_reaches_the_tracer_as_its_one_operator(monkeypatch):
    seen: list[str] = []
    dispatch = Tracer.__torch_dispatch__

    def spy(self, func, types, args=(), kwargs=None):
        seen.append(str(func))
        return dispatch(self, func, types, args, kwargs)

    monkeypatch.setattr(Tracer, "__torch_dispatch__", spy)
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8)).eval()
    ms.count(model, (1, 3, 8, 8))
    assert seen == ["aten.convolution.default", "aten.native_batch_norm.default"]
    seen.clear()
    shortcuts.ENABLED = False
    try:
        ms.count(model, (1, 3, 8, 8))
    finally:
        shortcuts.ENABLED = True
    assert seen == ["aten.convolution.default", "aten.empty.memory_format", "aten.native_batch_norm.default"]


def test_an_autocast_region_takes_the_normal_path():
    x, mean, var = torch.randn(2, 4, 3), torch.zeros(4), torch.ones(4)
    kwargs = {"weight": torch.ones(4), "bias": torch.zeros(4), "training": False, "momentum": 0.1, "eps": 1e-5}
    assert inference_batch_norm((x, mean, var), kwargs) is not None
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert inference_batch_norm((x, mean, var), kwargs) is None
