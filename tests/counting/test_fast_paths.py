"""The engine's fast paths give exactly what the plain computations give.

Each shortcut taken for speed (bit-pattern probes of weights, numpy for small tensors, batch norms measured
together, the model index walked by hand, Python broadcasting, the paused garbage collector) is checked here
against torch's own answer on the same values, special values included.
"""

from __future__ import annotations

import gc

import pytest
import torch
from torch import nn

import micronet_score as ms
from micronet_score.counting.batchnorm import BatchNormUse, _measured, scale_shift
from micronet_score.counting.model_index import ModelIndex
from micronet_score.counting.reads import WeightReads
from micronet_score.counting.shapes import broadcast_shape
from micronet_score.counting.storage import CHUNK, count_nonzero, probe
from micronet_score.counting.stored import same_elements
from micronet_score.models import build

SPECIAL = [0.0, -0.0, float("nan"), float("-nan"), float("inf"), float("-inf"), 1e-45, -1e-45, 3.4e38, -3.4e38]


def _truth(t: torch.Tensor) -> tuple[bool, bool]:
    return not bool((t == 0).any()), bool(torch.isfinite(t).all())


@pytest.mark.parametrize("numel", [7, 5_000, 300_000])  # numpy's small path, the bit-pattern path
@pytest.mark.parametrize("value", SPECIAL)
def test_probe_agrees_with_torch_on_special_values(numel, value):
    t = torch.randn(numel, generator=torch.Generator().manual_seed(numel))
    t[numel // 3] = value
    assert probe(t) == _truth(t)
    assert probe(t.reshape(-1, 1) if numel == 7 else t.reshape(-1, 100)) == _truth(t)
    assert probe(nn.Parameter(t)) == _truth(t)


@pytest.mark.parametrize("value", SPECIAL)
@pytest.mark.parametrize("where", [0, CHUNK - 1, CHUNK, 2 * CHUNK + 5, -1])  # slice edges, the last slice
def test_probe_reads_every_slice_of_a_large_weight(value, where):
    t = torch.randn(2 * CHUNK + 6, generator=torch.Generator().manual_seed(5)).abs() + 0.5
    t[where] = value
    assert probe(t) == _truth(t)


@pytest.mark.parametrize("zero_at,bad_at", [(0, -1), (-1, 0), (3, 3 * CHUNK - 1)])
def test_probe_finds_a_late_nan_after_an_early_zero_and_the_reverse(zero_at, bad_at):
    t = torch.ones(3 * CHUNK)
    t[zero_at] = 0.0
    t[bad_at] = float("nan")
    assert probe(t) == (False, False)
    t[bad_at] = 1.0
    assert probe(t) == (False, True)


@pytest.mark.parametrize("value", SPECIAL)
@pytest.mark.parametrize("view", ["t", "permute", "strided"])
def test_probe_of_a_transposed_or_strided_weight(value, view):
    base = torch.randn(300, 200, generator=torch.Generator().manual_seed(6))
    base[7, 150] = value
    t = {"t": base.t(), "permute": base.reshape(30, 10, 200).permute(2, 0, 1), "strided": base[:, ::2]}[view]
    assert probe(t) == _truth(t)


def test_probe_of_huge_finite_values_whose_dot_product_overflows():
    t = torch.full((100_000,), 3e38)  # the dot product overflows to inf: the exact check must say finite
    assert probe(t) == (True, True)


@pytest.mark.parametrize("shape,dim", [((6, 5), 0), ((6, 5), 1), ((4, 3, 2, 2), 0), ((40, 30, 3, 3), 1)])
def test_count_nonzero_per_channel_equals_torch(shape, dim):
    t = torch.randn(shape, generator=torch.Generator().manual_seed(1))
    t[t.abs() < 0.5] = 0
    t.view(-1)[0] = -0.0
    expected = (t != 0).sum(dim=[d for d in range(t.dim()) if d != dim])
    assert torch.equal(count_nonzero(t, dim), expected)
    assert count_nonzero(t) == int((t != 0).sum())


def test_small_tensors_read_together_agree_with_torch():
    g = torch.Generator().manual_seed(2)
    tensors = [torch.randn(n, generator=g) for n in (1, 3, 64, 700, 0, 16_384)]
    tensors[1][1] = 0.0
    tensors[2][5] = float("nan")
    tensors[3][0] = -0.0
    tensors[3][1] = float("-inf")
    reads = WeightReads(tensors)
    for t in tensors:
        assert reads.get(t) == _truth(t), t.numel()
    assert reads.get(torch.randn(3)) is None  # a tensor it was not given
    reads.invalidate()
    assert reads.get(tensors[0]) is None


@pytest.mark.parametrize("threads", [2, 3])
def test_large_weights_read_in_parallel_agree_with_torch(threads, monkeypatch):
    monkeypatch.setattr("micronet_score.counting.reads.PARALLEL_VALUES", 1)
    g = torch.Generator().manual_seed(5)
    tensors = [torch.randn(n, generator=g) for n in (20_000, 300_000, 50_000, 17_000, 40_000)]
    tensors[0][7] = 0.0
    tensors[1][299_999] = float("nan")
    tensors[2][100] = -0.0
    tensors[2][101] = float("inf")
    tensors.append(nn.Parameter(torch.randn(400, 100, generator=g).t()))  # a transposed weight
    tensors.append(torch.randn(30_000, dtype=torch.float64))  # not float32: read when used, as before
    reads = WeightReads(tensors, threads=threads)
    for t in tensors[:-1]:
        assert reads.get(t) == _truth(t), t.numel()
    assert reads.get(tensors[-1]) is None
    assert WeightReads(tensors[:-1], threads=1).get(tensors[1]) is None  # one thread: read when used


def test_a_count_at_two_threads_equals_the_count_at_one(monkeypatch):
    model = build("resnet18-cifar", seed=0).eval()
    x = torch.randn(1, 3, 32, 32)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        dense = ms.count(model, x)
        with torch.no_grad():  # prune a third of one large weight and put a NaN in another
            model.layer4[0].conv1.weight[:, :86] = 0.0
            model.layer3[1].conv2.weight[3, 2, 1, 1] = float("nan")
        one = ms.count(model, x)
        torch.set_num_threads(2)
        monkeypatch.setattr("micronet_score.counting.reads.PARALLEL_VALUES", 1)
        two = ms.count(model, x)
    finally:
        torch.set_num_threads(threads)
    assert one == two
    assert any("NaN" in w for w in two.warnings)
    # layer4.0.conv1: 512 x 86 x 3 x 3 = 396,288 of its 1,179,648 values set to zero
    assert dense.nonzero_params - two.nonzero_params == 396_288


def test_batch_norms_measured_together_equal_one_by_one():
    g = torch.Generator().manual_seed(3)
    norms = []
    for i in range(40):
        n = 1 + i % 7 * 5
        weight = torch.randn(n, generator=g)
        weight[::3] = 0
        bias = torch.randn(n, generator=g) if i % 2 else None
        mean, var = torch.randn(n, generator=g) * 1e3, torch.rand(n, generator=g) * 1e-6
        if i == 7:
            var[0] = float("nan")
        if i == 9:
            mean[0] = float("inf")
        if bias is not None:  # a shift that cancels exactly: counted as a zero both ways
            bias[0] = (mean[0] * torch.rsqrt(var[0] + 1e-3) * weight[0]).item()
        norms.append(BatchNormUse(-1, n, (weight if i % 5 else None, bias, mean, var), (1e-5, 1e-3, 0.1)[i % 3],
                                  32, f"bn{i}"))
    for bn, (pair, known) in zip(norms, _measured(norms)):
        reference = scale_shift(bn)
        for mine, ref in zip(pair, reference):
            assert torch.equal(torch.isnan(mine), torch.isnan(ref))
            assert torch.equal(mine.nan_to_num(0.0), ref.nan_to_num(0.0))
            assert known[id(mine)] == (int((ref != 0).sum()), bool(torch.isfinite(ref).all()))


@pytest.mark.parametrize("a,b", [((3, 1, 5), (4, 5)), ((1,), (2, 3)), ((2, 3), (2, 3)), ((), (4,)), ((0, 1), (1, 7))])
def test_broadcast_shape_equals_torch(a, b):
    assert broadcast_shape(a, b) == tuple(torch.broadcast_shapes(a, b))


def test_broadcast_shape_refuses_like_torch():
    with pytest.raises(RuntimeError):
        torch.broadcast_shapes((3, 2), (4, 2))
    with pytest.raises(RuntimeError, match="cannot be broadcast"):
        broadcast_shape((3, 2), (4, 2))


@pytest.mark.parametrize("name", ["resnet18-cifar", "densenet-seed", "efficientnet-b0"])
def test_model_index_lists_what_named_modules_lists(name):
    model = build(name)
    index = ModelIndex.of(model)
    assert [(n, id(m)) for n, m in index.modules] == [(n, id(m)) for n, m in model.named_modules()]
    assert [(n, id(t)) for n, t in index.parameters] == [(n, id(t)) for n, t in model.named_parameters()]
    assert [(n, id(t)) for n, t in index.buffers] == [(n, id(t)) for n, t in model.named_buffers()]


def test_model_index_of_shared_and_missing_children():
    shared = nn.Linear(2, 2)
    model = nn.Sequential(shared, nn.Sequential(shared, nn.ReLU()), shared)
    model.add_module("gone", None)
    index = ModelIndex.of(model)
    assert [n for n, _ in index.modules] == [n for n, _ in model.named_modules()] == ["", "0", "1", "1.1"]
    assert [n for n, _ in index.parameters] == ["0.weight", "0.bias"]


def test_same_elements_only_for_permutations_of_all_of_a_tensor():
    w = torch.randn(6, 4)
    assert same_elements(w.t(), w)
    assert same_elements(w.reshape(4, 6), w)
    assert not same_elements(w[:3], w)
    assert not same_elements(w[0].expand(6, 4), w)  # as many elements, all from one row


def test_counting_leaves_every_storage_resizable():
    # Tensor.numpy() would mark a weight's storage as not resizable for good: the engine reads through DLPack
    model = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2))
    ms.count(model, (1, 4))
    for p in model.parameters():
        p.data.resize_(p.numel() * 2)  # raises on a storage numpy has pinned


@pytest.mark.parametrize("enabled", [True, False])
def test_garbage_collector_paused_during_a_count_and_left_as_it_was(enabled):
    seen = []

    class Watch(nn.Module):
        def forward(self, x):
            seen.append(gc.isenabled())
            return x * 2

    was = gc.isenabled()
    (gc.enable if enabled else gc.disable)()
    try:
        ms.count(Watch(), (1, 3))
        assert seen == [False]
        assert gc.isenabled() is enabled
        with pytest.raises(ms.MicronetError):
            ms.count(Watch(), torch.zeros(0, 3))  # refused: left as it was as well
        assert gc.isenabled() is enabled
    finally:
        (gc.enable if was else gc.disable)()


class _NeedsValues(nn.Module):
    """A forward with data-dependent control flow: the meta attempt fails and the count runs it on real values."""

    def __init__(self, clamp: bool = False) -> None:
        super().__init__()
        self.clamp = clamp
        self.a = nn.Conv2d(64, 64, 3, bias=False)  # 36,864 values: read one by one (probe)
        self.b = nn.Conv2d(64, 8, 1)  # small: read together with the bias

    def forward(self, x):
        if self.clamp:
            self.a.weight.data.clamp_(min=0)  # a write into a stored tensor before the data-dependent branch
        y = self.b(self.a(x))
        return y * 2 if y.sum() > 0 else y


@pytest.mark.parametrize("clamp", [False, True])
def test_the_fallback_on_real_values_reads_no_weight_twice(monkeypatch, clamp):
    from micronet_score.counting import reads as reads_module
    from micronet_score.counting import stored

    model = _NeedsValues(clamp).eval()
    x = torch.randn(1, 64, 6, 6, generator=torch.Generator().manual_seed(7))
    probes: list[tuple[int, ...]] = []
    made: list[int] = []
    real_probe, real_of_model = stored.probe, reads_module.WeightReads.of_model.__func__
    monkeypatch.setattr(stored, "probe", lambda t: (probes.append(tuple(t.shape)), real_probe(t))[1])
    monkeypatch.setattr(reads_module.WeightReads, "of_model",
                        classmethod(lambda cls, index: (made.append(1), real_of_model(cls, index))[1]))
    auto = ms.count(model, x)  # meta attempt fails on `if y.sum() > 0`, then real values
    assert "did not run on shapes alone" not in " ".join(auto.warnings)
    # after a write into a stored tensor, nothing read before is trusted: the small weight is then probed too,
    # and the second attempt reads everything again
    one_attempt = [(64, 64, 3, 3), (8, 64, 1, 1)] if clamp else [(64, 64, 3, 3)]
    assert probes == one_attempt * (2 if clamp else 1) and len(made) == (2 if clamp else 1)
    probes.clear()
    assert auto == ms.count(model, x, shapes_only=False)  # the same count as running on real values at once
    assert probes == one_attempt
    if clamp:
        assert auto.nonzero_params < auto.params  # the clamped weight's zeros are in the count


def test_a_linear_weight_read_in_parallel_is_not_read_again_through_its_transpose(monkeypatch):
    from micronet_score.counting import reads as reads_module
    from micronet_score.counting import stored

    model = nn.Sequential(nn.Linear(1_500, 1_500), nn.ReLU(), nn.Linear(1_500, 10)).eval()  # 2.25M + 15K values
    with torch.no_grad():
        model[0].weight[:, :500] = 0.0  # a third pruned: 1,500 x 500 = 750,000 zeros
    probes: list[tuple[int, ...]] = []
    for module in (stored, reads_module):
        real = module.probe
        monkeypatch.setattr(module, "probe", lambda t, real=real: (probes.append(tuple(t.shape)), real(t))[1])
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        report = ms.count(model, (1, 1_500))
    finally:
        torch.set_num_threads(threads)
    # the large weight once, before the forward; neither weight again through the w.t() its linear layer
    # multiplies (the 15,000-value one is read with the other small tensors, without a probe)
    assert probes == [(1_500, 1_500)]
    assert report.nonzero_params == report.params - 750_000
