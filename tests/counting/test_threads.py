"""count from several threads (issue 12, item 4): per-thread attribution, and a model counted by several
threads at once restored exactly once they all finish."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch
from torch import nn

import micronet_score as ms
from micronet_score.models import build, input_size

THREADS = 4


class Meeting(nn.Module):
    """Wraps a model; the first forward of each thread waits until all threads are inside a forward, so the
    counts really overlap (module hooks of every thread are live at once)."""

    def __init__(self, inner: nn.Module, barrier: threading.Barrier) -> None:
        super().__init__()
        self.inner = inner
        self._barrier = barrier
        self._local = threading.local()

    def forward(self, x):
        if not getattr(self._local, "met", False):
            self._local.met = True
            self._barrier.wait(timeout=30)
        return self.inner(x)


def _nets() -> list[tuple[nn.Module, tuple[int, ...]]]:
    torch.manual_seed(0)
    return [
        (nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 6 * 6, 10)), (2, 3, 8, 8)),
        (nn.Sequential(nn.Linear(16, 32), nn.GELU(), nn.Linear(32, 4)), (3, 16)),
        (nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4), nn.AdaptiveAvgPool2d(1)), (1, 3, 5, 5)),
        (build("resnet18-cifar"), input_size("resnet18-cifar")),
    ]


def _parallel(jobs):
    with ThreadPoolExecutor(THREADS) as pool:
        return list(pool.map(lambda job: job(), jobs))


def test_different_models_in_threads_match_serial_reports():
    nets = _nets()
    serial = [ms.count(m, s) for m, s in nets]
    barrier = threading.Barrier(THREADS)
    wrapped = [(Meeting(m, barrier), s) for m, s in nets]
    reports = _parallel([lambda m=m, s=s: ms.count(m, s, shapes_only=False) for m, s in wrapped])
    for got, want in zip(reports, serial):
        assert (got.mults, got.adds, got.params, got.math_ops) == (want.mults, want.adds, want.params, want.math_ops)
        rows = [(r.name.removeprefix("inner").lstrip("."), r.mults, r.adds, r.params) for r in got.layers
                if r.name and (r.mults or r.params)]  # 'inner' is the serial report's root
        assert rows == [(r.name, r.mults, r.adds, r.params) for r in want.layers if r.mults or r.params]


class Clipping(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc = nn.Linear(8, 4)

    def forward(self, x):
        self.fc.weight.data.clamp_(-0.1, 0.1)
        return self.fc(x)


def _together(job):
    """``job`` in THREADS threads that start counting at the same moment (counts of one model take turns)."""
    barrier = threading.Barrier(THREADS)

    def run():
        barrier.wait(timeout=30)
        return job()

    return _parallel([run] * THREADS)


@pytest.mark.parametrize("shapes_only", [False, None])
def test_one_model_in_threads_is_restored_exactly(shapes_only):
    inner = Clipping()
    model = nn.Sequential(inner).train()
    inner.fc.eval()
    weight = inner.fc.weight.detach().clone()
    serial = ms.count(Clipping(), (2, 8))
    reports = _together(lambda: ms.count(model, (2, 8), shapes_only=shapes_only))
    for r in reports:
        assert (r.mults, r.adds, r.params, r.nonzero_params) == (serial.mults, serial.adds, serial.params,
                                                                 serial.nonzero_params)
    assert model.training and inner.training and not inner.fc.training
    assert torch.equal(inner.fc.weight, weight)
    assert not inner.fc._forward_pre_hooks
    assert not torch.nn.modules.module._global_forward_hooks
    assert not torch.nn.modules.module._global_forward_pre_hooks


def test_identical_zoo_model_in_threads_matches_serial():
    model = build("resnet18-cifar").train()
    shape = input_size("resnet18-cifar")
    serial = ms.count(model, shape)
    reports = _together(lambda: ms.count(model, shape))
    assert all(r == serial for r in reports)
    assert all(m.training for m in model.modules())


def test_one_pruned_model_in_threads_matches_serial():
    from torch.nn.utils import prune

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 4), nn.ReLU(), nn.Linear(4, 2))
    prune.l1_unstructured(model[0], "weight", amount=0.5)  # a hook sets model[0].weight at every forward
    serial = ms.count(model, (1, 8))
    assert serial.layer("0").mults == 16  # 32 weights, half pruned: 16 mults per example
    reports = _together(lambda: ms.count(model, (1, 8)))
    assert all(r == serial for r in reports)
