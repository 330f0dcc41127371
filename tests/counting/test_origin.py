"""Tensors of unknown origin (issue 12, item 1): a forward that takes its input out of torch and brings it
back counts as the plain model; work that cannot be recovered is warned about, and refused under strict."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import micronet_score as ms


class Plain(nn.Module):
    def __init__(self, route=lambda x: x) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 4, 3)
        self.fc = nn.Linear(4 * 6 * 6, 5)
        self.route = route

    def forward(self, x):
        x = self.route(x)
        return self.fc(torch.relu(self.conv(x)).flatten(1))


# conv: 3*3*3 mults per output, 4*6*6 outputs = 3,888; 26 adds per output + 1 bias = 3,888
# relu: 144 (a comparison each, counted as a mult by the cost table); fc: 144*5 = 720 mults, 143*5 + 5 = 720 adds
PLAIN_MULTS = 3888 + 144 + 720
PLAIN_ADDS = 3888 + 720
ROUTES = {
    "from_numpy": lambda x: torch.from_numpy(x.numpy()),
    "tensor_tolist": lambda x: torch.tensor(x.tolist()),
    "asarray": lambda x: torch.as_tensor(np.asarray(x)),
    "detach_numpy_copy": lambda x: torch.from_numpy(x.detach().numpy().copy()),
}


def test_plain_model_reference():
    report = ms.count(Plain(), (2, 3, 8, 8))
    assert (report.mults, report.adds, report.params) == (PLAIN_MULTS, PLAIN_ADDS, 112 + 725)


@pytest.mark.parametrize("route", sorted(ROUTES))
@pytest.mark.parametrize("inputs", ["shape", "tensor"], ids=["shape", "tensor"])
def test_routing_through_python_counts_as_the_plain_model(route, inputs):
    x = (2, 3, 8, 8) if inputs == "shape" else torch.randn(2, 3, 8, 8)
    report = ms.count(Plain(ROUTES[route]), x)
    assert (report.mults, report.adds, report.params) == (PLAIN_MULTS, PLAIN_ADDS, 112 + 725)
    assert report.unsupported == {}
    assert any("out of torch" in w for w in report.warnings)  # what numpy computed would not be counted


def test_layer_rows_match_the_plain_model():
    routed = ms.count(Plain(ROUTES["from_numpy"]), (2, 3, 8, 8))
    plain = ms.count(Plain(), (2, 3, 8, 8))
    assert routed.layers == plain.layers


class NumpyOnly(nn.Module):
    """The input never comes back: everything is computed in numpy with the weights."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 4)

    def forward(self, x):
        w = self.fc.weight.detach().numpy()
        return torch.from_numpy(np.tanh(x.numpy() @ w.T)).sum() * 0


class WeightsOutside(nn.Module):
    """The input comes back, but one layer's weights are used in numpy only."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(8, 8)
        self.b = nn.Linear(8, 4)

    def forward(self, x):
        h = x.numpy() @ self.a.weight.detach().numpy().T
        return self.b(torch.from_numpy(h))


class NeverBack(nn.Module):
    """The forward returns numpy: the input values never come back to a traced operator."""

    def forward(self, x):
        return np.tanh(x.numpy()).sum()


@pytest.mark.parametrize("model, cause", [(NumpyOnly, "fc.bias, fc.weight"), (WeightsOutside, "a.bias"),
                                          (NeverBack, "never came back")])
def test_unrecoverable_work_warns_and_strict_refuses(model, cause):
    report = ms.count(model(), torch.randn(2, 8))
    assert any(cause in w and "not counted" in w for w in report.warnings), report.warnings
    with pytest.raises(ms.UncountedWorkError, match=cause) as info:
        ms.count(model(), torch.randn(2, 8), strict=True)
    assert "\n" not in str(info.value)
    assert isinstance(info.value, ms.MicronetError)


def test_constants_without_an_export_stay_free():
    class Scaled(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(8, 4)
            self.plain = torch.full((4, 8), 0.5)  # a plain attribute, not a buffer

        def forward(self, x):
            w = self.fc.weight * torch.tensor(2.0) * self.plain  # weight-only preprocessing: free
            return nn.functional.linear(x, w, self.fc.bias)

    report = ms.count(Scaled(), (2, 8))
    assert (report.mults, report.adds) == (8 * 4, 7 * 4 + 4)  # the linear only
    assert report.warnings == ()
