"""The engine's guarantees: inputs, no side effects, meta device, unsupported ops, errors, JSON."""

import copy
import hashlib
import json

import pytest
import torch
from torch import nn

import micronet_score as ms


def _digest(model: nn.Module) -> str:
    h = hashlib.sha256()
    for name, t in list(model.named_parameters()) + list(model.named_buffers()):
        h.update(name.encode())
        h.update(t.detach().cpu().reshape(-1).contiguous().view(torch.uint8).numpy().tobytes())
        h.update(str(t.requires_grad).encode())
    for name, m in model.named_modules():
        h.update(f"{name}:{m.training}:{len(m._forward_hooks)}:{len(m._forward_pre_hooks)}".encode())
    return h.hexdigest()


class WithObserverLikeState(nn.Module):
    """Writes into a buffer during forward (like an observer): counting must undo it."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.bn = nn.BatchNorm2d(4)
        self.register_buffer("seen", torch.zeros(()))
        self.drop = nn.Dropout(0.5)

    def forward(self, x):
        self.seen.add_(x.abs().sum())
        return self.drop(self.bn(self.conv(x)))


def test_counting_changes_nothing():
    model = WithObserverLikeState().train()
    model.conv.register_forward_hook(lambda *a: None)
    before = _digest(model)
    rng = torch.get_rng_state()
    ms.count(model, (2, 3, 8, 8))
    ms.score(model, (2, 3, 8, 8), rules="micronet-2019-cifar100")
    assert _digest(model) == before
    assert torch.equal(torch.get_rng_state(), rng)
    assert model.training and model.bn.training


def test_global_state_cleaned_up_when_forward_raises():
    class Boom(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 1)

        def forward(self, x):
            self.conv(x)
            raise ValueError("boom")

    model = Boom().train()
    with pytest.raises(ms.ForwardError, match="root module .*ValueError: boom"):
        ms.count(model, (1, 3, 4, 4))
    assert model.training
    from torch.nn.modules import module as module_mod
    from torch.utils._python_dispatch import _get_current_dispatch_mode

    assert _get_current_dispatch_mode() is None
    assert not module_mod._global_forward_hooks and not module_mod._global_forward_pre_hooks
    assert ms.count(nn.Conv2d(3, 3, 1), (1, 3, 4, 4)).mults == 3 * 3 * 16


def test_wrong_input_shape_names_module_and_shapes():
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 6 * 6, 10))
    with pytest.raises(ms.ForwardError) as info:
        ms.count(model, (1, 3, 32, 32))
    message = str(info.value)
    assert "module '3' (Linear)" in message and "(1, 3, 32, 32)" in message
    assert info.value.module == "3"


def test_bad_arguments():
    with pytest.raises(ms.InputError, match="torch.nn.Module"):
        ms.count(lambda x: x, (1, 3))
    with pytest.raises(ms.InputError, match="inputs must be"):
        ms.count(nn.Linear(3, 3), "1,3")
    with pytest.raises(ms.InputError, match="positive"):
        ms.count(nn.Linear(3, 3), (0, 3))
    with pytest.raises(ms.InputError, match="does not have"):
        ms.count(nn.Linear(3, 3), (1, 3), bits={"nope": 8})
    with pytest.raises(ms.UnknownRuleSetError, match="micronet-2019-cifar100"):
        ms.score(nn.Linear(3, 3), (1, 3), rules="micronet-2020")
    with pytest.raises(ValueError, match="Precision"):
        ms.count(nn.Linear(3, 3), (1, 3), bits={nn.Linear: 0})


class TwoInputs(nn.Module):
    def forward(self, a, b=None):
        return a @ b if b is not None else a.sum()


def test_inputs_forms():
    model = TwoInputs()
    a, b = torch.randn(2, 3, 4), torch.randn(2, 4, 5)
    r_tuple = ms.count(model, (a, b))
    r_dict = ms.count(model, {"a": a, "b": b})
    assert r_tuple.mults == r_dict.mults == 3 * 5 * 4
    assert ms.count(nn.Linear(4, 2), torch.Size([1, 4])).mults == 8
    assert ms.count(nn.Linear(4, 2), [1, 4]).mults == 8


def test_meta_device_counts_ops_and_says_nonzeros_unknown():
    with torch.device("meta"):
        model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 30 * 30, 10))
    meta = ms.count(model, (1, 3, 32, 32))
    real = ms.count(nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 30 * 30, 10)),
                    (1, 3, 32, 32))
    assert (meta.mults, meta.adds, meta.params) == (real.mults, real.adds, real.params)
    assert meta.nonzero_params is None and not meta.nonzeros_known
    assert "meta" in meta.summary()


def test_inputs_on_another_device_than_the_model():
    with torch.device("meta"):
        model = nn.Linear(3, 3)
    # real inputs for a meta model are moved to meta (shapes are all that matter there)
    assert ms.count(model, torch.randn(1, 3)).mults == 9


def test_unsupported_ops_are_reported_and_strict_raises(fn_module):
    # (this test used torch.fft.fft until the spec priced FFTs, section 3: a determinant has no price)
    model = fn_module(lambda x: torch.linalg.det(x.view(2, 2, 2)))
    r = ms.count(model, (1, 8))
    assert r.unsupported and "aten._linalg_det" in r.unsupported[""]
    assert any("no cost" in w for w in r.warnings)
    with pytest.raises(ms.UnsupportedOpError, match="aten._linalg_det"):
        ms.count(model, (1, 8), strict=True)


def test_unused_parameters_are_listed_not_counted():
    class Unused(nn.Module):
        def __init__(self):
            super().__init__()
            self.used = nn.Linear(2, 2)
            self.spare = nn.Linear(100, 100)

        def forward(self, x):
            return self.used(x)

    r = ms.count(Unused(), (1, 2))
    assert r.params == 6
    assert r.unused == ("spare.bias", "spare.weight")


def test_control_flow_and_functional_calls_are_seen():
    class Loop(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(4, 4)

        def forward(self, x):
            for _ in range(3):
                x = torch.relu(self.lin(x)) if x.sum() > -1e9 else x
            return x

    r = ms.count(Loop(), (1, 4))
    # 3 x (16 mults, 16 adds for the linear; 4 ReLU mults); the condition: a sum (3 adds) and a
    # comparison (1 op, booked as a mult), 3 times.
    assert r.mults == 3 * (16 + 4 + 1)
    assert r.adds == 3 * (16 + 3)


def test_nan_weights_are_counted_and_flagged():
    lin = nn.Linear(2, 2)
    with torch.no_grad():
        lin.weight[0, 0] = float("nan")
    r = ms.count(lin, (1, 2))
    assert r.params == 6
    assert any("NaN" in w for w in r.warnings)


def test_json_round_trip():
    r = ms.count(nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU()), (1, 3, 8, 8))
    text = r.to_json()
    back = ms.Report.from_json(text)
    assert back == r
    assert json.loads(text)["schema_version"] == 1
    with pytest.raises(ValueError, match="schema version"):
        ms.Report.from_dict({**r.to_dict(), "schema_version": 99})


def test_table_lists_layers_and_total():
    r = ms.count(nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()), (1, 3, 8, 8))
    table = r.table()
    assert "Conv2d" in table and "ReLU" in table and table.splitlines()[-1].startswith("total")
    assert "3,888" in table  # 27 * 4 * 36 conv mults


def test_report_is_frozen():
    r = ms.count(nn.Linear(2, 2), (1, 2))
    with pytest.raises(AttributeError):
        r.params = 0  # type: ignore[misc]
    assert copy.deepcopy(r) == r


def test_shapes_only_matches_real_counting_with_real_nonzeros():
    from torch.nn.utils import prune

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                          nn.Flatten(), nn.Linear(8, 4))
    prune.l1_unstructured(model[0], "weight", amount=0.5)
    real = ms.count(model, (4, 3, 16, 16))
    shapes = ms.count(model, (4, 3, 16, 16), shapes_only=True)
    assert shapes.nonzeros_known and shapes.nonzero_params == real.nonzero_params
    assert (shapes.mults, shapes.adds, shapes.param_storage, shapes.math_ops) == \
        (real.mults, real.adds, real.param_storage, real.math_ops)
    assert shapes.tensors == real.tensors


def test_shapes_only_refuses_data_dependent_forward_clearly():
    class DataDependent(nn.Module):
        def forward(self, x):
            return x * 2 if x.sum() > 0 else x

    with pytest.raises(ms.ForwardError, match="shapes_only=False"):
        ms.count(DataDependent(), (1, 3), shapes_only=True)


def test_an_entirely_zero_weight_is_counted_as_removed_and_named_in_a_warning():
    """Issue 22 / spec section 3: a fresh model whose init zeroes a layer (NF-ResNet's gains, a zero-init last
    layer) is counted as if pruned; the report says so, naming the layer, so the count is not mistaken for the
    trained model's."""
    from torch import nn

    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 1), nn.Flatten(), nn.Linear(4 * 30 * 30, 2))
    nn.init.zeros_(model[2].weight)
    r = ms.count(model, (1, 3, 32, 32))
    zero = [w for w in r.warnings if "entirely zero" in w]
    assert len(zero) == 1 and zero[0].endswith(": 2.weight")
    # the zeroed 1x1 conv: 16 weights, none stored, 16 mask bits; 0 mults, 0 adds (its bias adds are the
    # bias alone: a filter with no non-zero costs nothing, spec section 3)
    layer = r.layer("2")
    assert (layer.params, layer.nonzero_params, layer.mask_bits, layer.mults) == (20, 4, 16, 0)
    assert not [w for w in ms.count(nn.Conv2d(3, 4, 3), (1, 3, 8, 8)).warnings if "entirely zero" in w]
