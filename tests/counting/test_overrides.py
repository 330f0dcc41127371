"""``ms.count(..., costs=...)`` overrides operator costs for one call, never the global registry."""

import threading

import pytest
import torch
from torch import nn

import micronet_score as ms
from micronet_score.counting.registry import Cost, lookup

aten = torch.ops.aten


def model():
    return nn.Sequential(nn.Linear(4, 3), nn.ReLU())


def test_override_applies_in_the_call_and_not_after():
    # Linear: 4 x 3 = 12 mults, 3 x 3 adds + 3 bias adds = 12 adds; ReLU 3 mults (one per element)
    before = ms.count(model(), (1, 4))
    assert (before.mults, before.adds) == (15, 12)
    relu_as_two_adds = ms.count(model(), (1, 4), costs={aten.relu: lambda call: Cost(0, 2 * call.out.numel())})
    assert (relu_as_two_adds.mults, relu_as_two_adds.adds) == (12, 12 + 6)
    after = ms.count(model(), (1, 4))
    assert (after.mults, after.adds) == (15, 12)


def test_override_forms():
    free = ms.count(model(), (1, 4), costs={"aten.relu": "free"})
    assert free.mults == 12
    table = ms.count(model(), (1, 4), costs={"aten.relu.default": {"mults": 2, "adds": 1}})
    assert (table.mults, table.adds) == (12 + 6, 12 + 3)  # 3 elements x (2 mults, 1 add)
    pair = ms.count(model(), (1, 4), costs={aten.relu.default: lambda call: (5, 7)})
    assert (pair.mults, pair.adds) == (17, 19)


def test_an_unsupported_operator_can_be_given_a_cost_for_one_call():
    class Odd(nn.Module):
        def forward(self, x):
            return torch.special.i0(x)  # no cost function in the library

    plain = ms.count(Odd(), (2, 5))
    assert plain.unsupported_total == 1
    assert lookup(aten.i0) is None
    priced = ms.count(Odd(), (2, 5), costs={"aten.i0": {"mults": 3}})
    assert priced.unsupported_total == 0 and priced.mults == 3 * 5  # per example: 5 elements x 3


def test_overrides_are_per_count_across_threads():
    results = {}
    barrier = threading.Barrier(2)

    def run(name, costs):
        barrier.wait()
        for _ in range(3):
            results.setdefault(name, set()).add(ms.count(model(), (1, 4), costs=costs).mults)

    threads = [threading.Thread(target=run, args=("free", {"aten.relu": "free"})),
               threading.Thread(target=run, args=("plain", None))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {"free": {12}, "plain": {15}}


def test_a_convention_cost_override_goes_through_the_same_mechanism(tmp_path):
    path = tmp_path / "relu-free.toml"
    path.write_text(
        '[rules]\nname = "relu-free"\nparam_baseline = 1e6\nops_baseline = 1e6\n'
        '[rules.convention]\nbase = "micronet"\n[rules.convention.costs]\n"aten.relu" = "free"\n'
    )
    rules = ms.rules.load(path)
    report = ms.count(model(), (1, 4), convention=rules.counting)
    assert report.mults == 12
    # the call's own costs win over the convention's
    assert ms.count(model(), (1, 4), convention=rules.counting, costs={"aten.relu": {"mults": 1}}).mults == 15


def test_bad_overrides_are_one_line_errors():
    with pytest.raises(ms.InputError, match="names no operator"):
        ms.count(model(), (1, 4), costs={"aten.no_such_op": "free"})
    with pytest.raises(ms.InputError, match="expected a function"):
        ms.count(model(), (1, 4), costs={"aten.relu": "cheap"})


# Issue 20: a cost function's result is checked before it is priced; a bad one names the operator.
@pytest.mark.parametrize(("returned", "named"), [
    (lambda call: Cost(-5, 0), "mults=-5"),
    (lambda call: Cost(0, -1), "adds=-1"),
    (lambda call: (float("nan"), 0), "mults=nan"),
    (lambda call: (0, float("inf")), "adds=inf"),
    (lambda call: 2.5, "mults=2.5"),
    (lambda call: Cost(3, 0, mult_bits=0), "mult_bits=0"),
    (lambda call: Cost(3, 0, mult_bits=-8), "mult_bits=-8"),
])
def test_a_costs_function_returning_a_negative_count_or_a_bad_width_is_refused(returned, named):
    with pytest.raises(ms.InputError, match="aten.relu") as caught:
        ms.count(model(), (1, 4), costs={"aten.relu": returned})
    assert named in str(caught.value) and "\n" not in str(caught.value)


def test_a_registered_cost_function_returning_a_negative_count_or_a_bad_width_is_refused(monkeypatch):
    from micronet_score.counting import registry

    class Odd(nn.Module):
        def forward(self, x):
            return torch.special.i0(x)  # no cost function in the library: one is registered below

    for bad in (Cost(-5, 0), Cost(0, float("nan")), Cost(float("inf"), 0), Cost(5, 0, mult_bits=0)):
        monkeypatch.setitem(registry._COSTS, aten.i0, registry.CostEntry(lambda call, bad=bad: bad))
        with pytest.raises(ms.InputError, match="operator 'aten.i0'") as caught:
            ms.count(Odd(), (2, 5))
        assert "\n" not in str(caught.value)
    monkeypatch.setitem(registry._COSTS, aten.i0, registry.CostEntry(lambda call: Cost(call.out.numel(), 0)))
    assert ms.count(Odd(), (2, 5)).mults == 5  # the same registration with a sound result: 5 elements per example
