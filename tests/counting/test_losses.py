"""Losses (spec §3): their formula's operations per element, plus the reduction over the n elements (sum n - 1
adds; mean n - 1 adds + 1 mult). Counts are hand arithmetic over the whole batch: 4 examples of 8 values
(n = 32) unless said otherwise."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import micronet_score as ms

X = torch.linspace(-2.0, 2.0, 32).reshape(4, 8)  # 4 examples of 8 values (or 8 classes)
Y = torch.linspace(1.0, -1.0, 32).reshape(4, 8)
T = torch.linspace(0.0, 1.0, 32).reshape(4, 8)  # targets in [0, 1]
LABELS = torch.tensor([1, 0, 7, 3])
CLASS_WEIGHT = torch.tensor([1.0, 2.0, 0.5, 1.0, 1.0, 3.0, 1.0, 1.0])


def totals(fn_module, fn, x: torch.Tensor = X, **kw) -> tuple[float, float]:
    r = ms.count(fn_module(fn), x, strict=True, **kw)
    assert r.unsupported == {}
    return r.mults * r.examples, r.adds * r.examples


@pytest.mark.parametrize("shapes_only", [True, False])
@pytest.mark.parametrize("fn, mults, adds", [
    # mse: (x - y)^2: 32 adds + 32 mults; mean: 31 adds + 1 mult; sum: 31 adds; none: nothing more
    (lambda x: F.mse_loss(x, Y), 33, 63),
    (lambda x: F.mse_loss(x, Y, reduction="sum"), 32, 63),
    (lambda x: F.mse_loss(x, Y, reduction="none"), 32, 32),
    # smooth l1: 4 mults + 2 adds per element: 128 + 1, 64 + 31
    (lambda x: F.smooth_l1_loss(x, Y, beta=0.5), 129, 95),
    # huber: 5 mults + 2 adds per element: 160 + 1, 64 + 31
    (lambda x: F.huber_loss(x, Y, delta=0.5), 161, 95),
    # bce on sigmoid(x): the sigmoid 2 mults + 1 add per element (64, 32); bce 7 mults + 2 adds (224, 64);
    # mean (1, 31): 289 mults, 127 adds
    (lambda x: F.binary_cross_entropy(torch.sigmoid(x), T), 289, 127),
    # an elementwise weight: 32 mults more
    (lambda x: F.binary_cross_entropy(torch.sigmoid(x), T, weight=torch.full((8,), 0.5)), 321, 127),
    # bce with logits: 4 mults + 3 adds per element (128, 96), mean (1, 31)
    (lambda x: F.binary_cross_entropy_with_logits(x, T), 129, 127),
    # with pos_weight: 6 mults + 4 adds per element (192, 128), mean (1, 31)
    (lambda x: F.binary_cross_entropy_with_logits(x, T, pos_weight=torch.full((8,), 2.0)), 193, 159),
    # nll over 4 targets: 4 negations; mean 1 mult + 3 adds
    (lambda x: F.nll_loss(x, LABELS), 5, 3),
    (lambda x: F.nll_loss(x, LABELS, reduction="sum"), 4, 3),
    (lambda x: F.nll_loss(x, LABELS, reduction="none"), 4, 0),
    # class weights: 4 products; the weighted mean divides by the sum of the 4 weights: 3 adds more
    (lambda x: F.nll_loss(x, LABELS, weight=CLASS_WEIGHT), 5, 6),
    # cross entropy = log_softmax over 8 classes per row ((8 + 1) mults, 2 x 8 - 1 adds: 36, 60) + nll (5, 3),
    # counted once each
    (lambda x: F.cross_entropy(x, LABELS), 41, 63),
    # with probabilities as targets: log_softmax (36, 60), the products (32), their sum (31 adds), the negation
    # and the division by the batch (2 mults)
    (lambda x: F.cross_entropy(x, torch.softmax(Y, -1)), 70, 91),
    # l1 and kl_div reach the tracer as their elementwise steps: |x - y| (32 adds, 32 mults), mean (1, 31)
    (lambda x: F.l1_loss(x, Y), 33, 63),
    # kl_div(x, t) = xlogy(t, t) - t * x: with a constant target xlogy(t, t) is load-time work; t * x (32 mults),
    # the difference (32 adds), mean (1, 31)
    (lambda x: F.kl_div(x, T), 33, 63),
])
def test_losses(fn_module, fn, mults, adds, shapes_only):
    assert totals(fn_module, fn, shapes_only=shapes_only) == (mults, adds)


@pytest.mark.parametrize("shapes_only", [True, False])
def test_per_pixel_cross_entropy(fn_module, shapes_only):
    # logits (2, 3, 4, 5), targets (2, 4, 5): 40 rows of 3 classes; log_softmax per row 4 mults and 5 adds
    # (160, 200); nll2d over 40 targets: 40 negations, mean 1 mult + 39 adds: 201 mults, 239 adds
    labels = torch.arange(40).reshape(2, 4, 5) % 3
    x = torch.linspace(-1.0, 1.0, 120).reshape(2, 3, 4, 5)
    assert totals(fn_module, lambda x: F.cross_entropy(x, labels), x, shapes_only=shapes_only) == (201, 239)


def test_kl_div_with_a_target_from_the_input(fn_module):
    # both given as inputs: xlogy(t, t) (a log and a product: 64 mults) - t * x (32 mults, 32 adds); mean (1, 31)
    r = ms.count(fn_module(lambda x, t: F.kl_div(x, t)), (X, T), strict=True)
    assert (r.mults * r.examples, r.adds * r.examples) == (97, 63)
