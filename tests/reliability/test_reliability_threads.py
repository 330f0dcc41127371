"""The random-architecture cross-checks under 4 threads: each thread counts its own random net (and all four
count one shared net) and every report equals the closed form written from the spec and the serial report;
the shared net is left exactly as it was."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch
from _reliability_archs import (
    Concat,
    Linear,
    MaskSpec,
    NetSpec,
    assert_clean,
    assert_closed_forms,
    build,
    expected,
    net_specs,
)
from _reliability_profiles import budget
from hypothesis import example, given
from hypothesis import strategies as st

import micronet_score as ms

THREADS = 4


def _in_threads(jobs):
    """Run the jobs at once: each waits for the others before counting, so the counts overlap."""
    barrier = threading.Barrier(len(jobs))

    def run(job):
        barrier.wait(timeout=60)
        return job()

    with ThreadPoolExecutor(len(jobs)) as pool:
        return list(pool.map(run, jobs))


def _check(report: ms.Report, spec) -> None:
    e = expected(spec)
    assert_closed_forms(report, e)
    assert_clean(report, e)


@budget(6, long=150)
@given(specs=st.lists(net_specs(masks=True), min_size=THREADS, max_size=THREADS),
       shapes_only=st.sampled_from([None, False]))
def test_different_random_nets_in_threads_match_closed_forms(specs, shapes_only):
    models = [build(spec) for spec in specs]
    reports = _in_threads([lambda m=m, s=s: ms.count(m, s.input_shape, shapes_only=shapes_only)
                           for m, s in zip(models, specs)])
    for report, spec, model in zip(reports, specs, models):
        _check(report, spec)
        assert report == ms.count(model, spec.input_shape, shapes_only=shapes_only)


# Found by the long run: a prune hook sets module.weight at every forward, and with overlapping counts of one
# model a thread's linear read the weight another thread's hook had set (1 mult instead of 0): counts of one
# model now take turns.
PRUNED = NetSpec(input_shape=(2, 1), blocks=(Concat(layer=Linear(fin=1, fout=1, bias=False, bn=False, mask=MaskSpec(
    seed=1, density=0.5, dead=1, via="prune"))),), seed=4)


@budget(6, long=150)
@given(spec=net_specs(masks=True), training=st.booleans())
@example(spec=PRUNED, training=False)
def test_one_random_net_in_threads_is_restored(spec, training):
    model = build(spec).train(training)
    before = [(n, t.detach().clone(), t.requires_grad) for n, t in model.state_dict(keep_vars=True).items()]
    modes = [m.training for m in model.modules()]
    reports = _in_threads([lambda: ms.count(model, spec.input_shape)] * THREADS)
    for report in reports:
        _check(report, spec)
    after = list(model.state_dict(keep_vars=True).items())
    assert [n for n, _ in after] == [n for n, _, _ in before]
    assert all(torch.equal(t, b) and t.requires_grad == g for (_, t), (_, b, g) in zip(after, before))
    assert [m.training for m in model.modules()] == modes


@pytest.mark.parametrize("repeat", range(2))
def test_threads_leave_no_global_hooks(repeat):
    from torch.nn.modules import module

    model = torch.nn.Sequential(torch.nn.Linear(4, 4))
    _in_threads([lambda: ms.count(model, (1, 4))] * THREADS)
    assert not module._global_forward_hooks and not module._global_forward_pre_hooks
