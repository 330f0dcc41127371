"""A count refuses exactly the operand dtypes the real kernels refuse: on the meta device torch checks shapes but
not dtypes, so a float64 input into float32 weights used to be counted. Truth here is the real CPU kernel,
run in the test on the same dtypes."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import micronet_score as ms

DTYPES = [torch.float64, torch.float32, torch.float16, torch.bfloat16]


class _Op(nn.Module):
    """One operator family with weights of dtype ``wdtype``."""

    def __init__(self, kind: str, wdtype: torch.dtype) -> None:
        super().__init__()
        self.kind = kind
        shapes = {"conv": (6, 4, 3, 3), "conv_bias": (6, 4, 3, 3), "linear": (3, 100), "linear_bias": (3, 100),
                  "bmm": (2, 25, 3), "batch_norm": (4,), "layer_norm": (5,), "group_norm": (4,)}
        self.weight = nn.Parameter(torch.rand(shapes[kind], dtype=wdtype) + 0.5)
        self.bias = nn.Parameter(torch.rand(self.weight.shape[0], dtype=wdtype))
        self.register_buffer("mean", torch.zeros(4, dtype=wdtype))
        self.register_buffer("var", torch.ones(4, dtype=wdtype))

    def forward(self, x):
        k = self.kind
        if k.startswith("conv"):
            return F.conv2d(x, self.weight, self.bias if k == "conv_bias" else None)
        if k.startswith("linear"):
            return F.linear(x.flatten(1), self.weight, self.bias if k == "linear_bias" else None)
        if k == "bmm":
            return torch.bmm(x.flatten(2), self.weight)
        if k == "batch_norm":
            return F.batch_norm(x, self.mean, self.var, self.weight, self.bias)
        if k == "layer_norm":
            return F.layer_norm(x, (5,), self.weight, self.bias)
        return F.group_norm(x, 2, self.weight, self.bias)


def _runs(model: nn.Module, x: torch.Tensor) -> bool:
    try:
        with torch.no_grad():
            model(x)
    except RuntimeError:
        return False
    return True


@pytest.mark.parametrize("kind", ["conv", "conv_bias", "linear", "linear_bias", "bmm", "batch_norm", "layer_norm",
                                  "group_norm"])
def test_counts_refuse_what_the_real_kernels_refuse(kind):
    outcomes = []
    for xdtype, wdtype in itertools.product(DTYPES, DTYPES):
        model = _Op(kind, wdtype).eval()
        x = torch.randn(2, 4, 5, 5, generator=torch.Generator().manual_seed(0)).to(xdtype)
        runs = _runs(model, x)
        for shapes_only in (None, True):  # None: shapes first, as a user's count runs
            try:
                report = ms.count(model, x, shapes_only=shapes_only)
                counted = report.mults > 0
            except ms.ForwardError as exc:
                assert "refuses" in str(exc) or "dtype" in str(exc).lower() or "type" in str(exc).lower()
                counted = False
            outcomes.append((str(xdtype), str(wdtype), shapes_only, runs, counted))
    wrong = [o for o in outcomes if o[3] != o[4]]
    assert not wrong, wrong
    # the truth has both outcomes for every operator: same dtypes run, float64 into float32 does not
    assert {o[3] for o in outcomes} == {True, False}


def test_the_message_says_how_to_fix_it():
    model = nn.Sequential(nn.Conv2d(3, 8, 3, bias=False)).eval()
    x = torch.randn(1, 3, 8, 8, dtype=torch.float64)
    with pytest.raises(ms.ForwardError, match=r"float64.*float32.*\.to\(torch\.float32\)"):
        ms.count(model, x, shapes_only=True)
    with pytest.raises(ms.ForwardError, match="Double"):  # the automatic retry on real values: torch's own words
        ms.count(model, x)
