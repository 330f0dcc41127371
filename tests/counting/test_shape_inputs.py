"""Inputs given as shapes are counted on the meta device (issue 12, item 7): no real tensor of the input's
size is made unless the forward needs values, and then a clear error above the size limit."""

from __future__ import annotations

import resource

import pytest
import torch
from torch import nn

import micronet_score as ms


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, stride=4), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(4, 2))


class NeedsValues(nn.Module):
    """Data-dependent control flow: cannot run on shapes alone."""

    def __init__(self) -> None:
        super().__init__()
        self.net = _net()

    def forward(self, x):
        if x.sum() > 0:
            return self.net(x)
        return self.net(-x)


@pytest.fixture
def randn_calls(monkeypatch):
    calls: list[tuple[int, ...]] = []
    real = torch.randn

    def spy(*args, **kwargs):
        out = real(*args, **kwargs)
        calls.append(tuple(out.shape))
        return out

    monkeypatch.setattr(torch, "randn", spy)
    return calls


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


@pytest.mark.parametrize("batch", [4096, 65536])
def test_a_huge_shape_is_counted_without_real_data(batch, randn_calls):
    peak = _peak_rss_mib()
    report = ms.count(_net(), (batch, 3, 224, 224))
    assert randn_calls == []  # no random input drawn at all
    assert _peak_rss_mib() - peak < 512  # (4096, 3, 224, 224) in float32 would be 2,352 MiB
    # (224 - 3) // 4 + 1 = 56 output rows and columns; 3*3*3 mults per output, 4*56*56 outputs = 338,688
    assert report.layer("0").mults == 338_688
    assert report.batch_size == batch and report.input_shapes == ((batch, 3, 224, 224),)


def test_a_forward_that_needs_values_gets_them_for_a_small_shape(randn_calls):
    report = ms.count(NeedsValues(), (2, 3, 32, 32))
    assert randn_calls == [(2, 3, 32, 32)]
    # (32 - 3) // 4 + 1 = 8; 27 * 4 * 8 * 8 = 6,912 conv mults per example
    assert report.layer("net.0").mults == 6912
    assert report == ms.count(NeedsValues(), torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)))


@pytest.mark.parametrize("shapes_only", [None, False])
def test_a_forward_that_needs_values_on_a_huge_shape_is_refused_clearly(shapes_only, randn_calls):
    with pytest.raises(ms.InputError, match=r"2\.30 GiB.*\(1, 3, 224, 224\)") as info:
        ms.count(NeedsValues(), (4096, 3, 224, 224), shapes_only=shapes_only)
    assert "\n" not in str(info.value)
    assert randn_calls == []


def test_shapes_only_true_never_draws(randn_calls):
    with pytest.raises(ms.ForwardError):
        ms.count(NeedsValues(), (2, 3, 32, 32), shapes_only=True)
    assert randn_calls == []
