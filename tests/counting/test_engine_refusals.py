"""What count refuses, each with one clear line of the library's own error type (issue 12, item 9)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import micronet_score as ms


def _one_line(exc: BaseException) -> str:
    text = str(exc)
    assert text.strip() and "\n" not in text and "\x1b" not in text, repr(text)
    return text


@pytest.mark.parametrize("x", [torch.zeros(0, 8), torch.zeros(0, 3, 8)])
def test_a_batch_of_zero_examples(x):
    with pytest.raises(ms.InputError, match="batch of 0 examples") as info:
        ms.count(nn.Linear(8, 4), x)
    _one_line(info.value)


@pytest.mark.parametrize("kind", ["script", "freeze", "trace"])
def test_torchscript_modules_are_refused(kind):
    model = nn.Sequential(nn.Linear(8, 4), nn.ReLU()).eval()
    if kind == "script":
        scripted = torch.jit.script(model)
    elif kind == "freeze":
        scripted = torch.jit.freeze(torch.jit.script(model))
    else:
        scripted = torch.jit.trace(model, torch.randn(1, 8))
    with pytest.raises(ms.InputError, match="TorchScript.*eager model") as info:
        ms.count(scripted, (1, 8))
    _one_line(info.value)


@pytest.mark.parametrize("shapes_only", [None, False])
def test_a_count_inside_autocast_is_refused_and_the_model_counts_outside(shapes_only):
    # autocast casts the weights on their way into each operator, where the tracer cannot follow them to the
    # stored tensors: counted inside it, the convolutions' weights went missing (params 16 instead of 276)
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.BatchNorm2d(8), nn.Conv2d(8, 4, 1)).eval()
    with torch.autocast("cpu", dtype=torch.bfloat16), pytest.raises(ms.InputError, match="autocast.*bits=") as info:
        ms.count(model, (1, 3, 8, 8), shapes_only=shapes_only)
    _one_line(info.value)
    report = ms.count(model, (1, 3, 8, 8), bits={"": 16}, shapes_only=shapes_only)
    # 3*8*3*3 + 8 + 8*4 + 4 = 260 stored conv values; the kept norm stores its scale and shift (8 + 8)
    assert report.params == 260 + 16 and "0.weight" not in report.unused
    assert report.params_by_bits == {16: 276} and set(report.mults_by_bits) == {16}


class ComplexNet(nn.Module):
    def __init__(self, where: str) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 8)
        self.where = where

    def forward(self, x):
        spectrum = torch.fft.fft(self.fc(x))  # priced (spec section 3, tests/counting/test_complex.py)
        if self.where == "sqrt":
            return torch.view_as_real(spectrum.sqrt())  # a complex square root: no price
        return torch.view_as_real(torch.softmax(spectrum.abs(), -1) * spectrum.log())  # a complex log: no price


@pytest.mark.parametrize("shapes_only", [False, True])
@pytest.mark.parametrize("case", ["sqrt", "log"])
def test_complex_operators_without_a_price_are_refused(case, shapes_only):
    # complex arithmetic is priced (add, mul, div, |z|, exp, matrix products, sums, FFTs); other operators on
    # complex values are refused by name, strict or not, rather than priced as if they were real
    with pytest.raises(ms.ComplexTensorError, match=f"'aten.{case}' in the root module computes on complex "
                       "tensors.*no complex price") as info:
        ms.count(ComplexNet(case), (2, 8), shapes_only=shapes_only)
    _one_line(info.value)
    assert isinstance(info.value, ms.ForwardError)


def test_complex_views_that_end_real_are_counted():
    class RealParts(nn.Module):
        def forward(self, x):
            return torch.view_as_real(torch.complex(x, x)).relu()  # free view, then a real ReLU

    report = ms.count(RealParts(), (1, 4))
    assert report.mults == 8  # one comparison per real element: 4 values * (re, im)


def test_ansi_escape_codes_never_reach_the_message():
    class Colourful(nn.Module):
        def forward(self, x):
            raise RuntimeError("\x1b[31mshape mismatch\x1b[0m in \x1b[1mlayer\x1b[0m\nsecond line")

    with pytest.raises(ms.ForwardError, match="shape mismatch in layer") as info:
        ms.count(Colourful(), (1, 4))
    _one_line(info.value)
