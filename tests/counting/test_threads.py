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


class _CountsTheOther(nn.Module):
    """A model whose forward counts another model (once per thread: the nested count's own forward does not)."""

    def __init__(self, barrier: threading.Barrier, nested: threading.local) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.other: list[nn.Module] = []  # in a list: not a submodule, the two models stay separate trees
        self._barrier = barrier
        self._nested = nested

    def forward(self, x):
        if not getattr(self._nested, "inside", False):
            self._nested.inside = True
            try:
                self._barrier.wait(timeout=30)  # both threads hold their own model's turn before the nested count
                ms.count(self.other[0], (1, 4))
            finally:
                self._nested.inside = False
        return self.fc(x)


def test_two_threads_counting_each_others_model_from_a_forward_do_not_deadlock():
    # Thread 1 counts A, whose forward counts B; thread 2 counts B, whose forward counts A. Each holds its
    # model's turn and waits for the other's: before, both waited forever. Now the second to wait is refused.
    barrier, nested = threading.Barrier(2), threading.local()
    a, b = _CountsTheOther(barrier, nested), _CountsTheOther(barrier, nested)
    a.other.append(b)
    b.other.append(a)
    outcomes: dict[str, object] = {}

    def run(name, model):
        try:
            outcomes[name] = ms.count(model, (1, 4)).mults
        except Exception as exc:  # noqa: BLE001 - recorded for the asserts below
            outcomes[name] = exc

    threads = [threading.Thread(target=run, args=(n, m), daemon=True) for n, m in (("a", a), ("b", b))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "the two counts deadlocked"
    errors = [o for o in outcomes.values() if isinstance(o, Exception)]
    assert len(errors) == 1, outcomes  # one count refused, the other went on once it could
    assert isinstance(errors[0], ms.MicronetError) and "\n" not in str(errors[0])
    assert "from inside a model's forward" in str(errors[0]) and "wait for each other" in str(errors[0])
    # the count that went on: its own Linear, 4 x 4 = 16 mults per example (the nested count is a separate report)
    assert sorted(o for o in outcomes.values() if not isinstance(o, Exception)) == [16]
    for model in (a, b):  # both models as they were
        assert type(model.fc) is nn.Linear and not model.fc._forward_hooks and model.training


def test_a_nested_count_in_one_thread_still_works():
    barrier, nested = threading.Barrier(1), threading.local()
    a, b = _CountsTheOther(barrier, nested), _CountsTheOther(barrier, nested)
    a.other.append(b)
    b.other.append(a)
    assert ms.count(a, (1, 4)).mults == 16  # A's Linear; B is counted inside, and B's forward counts no further
