"""Configs as data (to_dict / from_dict), the handler registry behind prune_/quantize_, and applied()/replay_."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass

import pytest
import torch
from torch import nn

from micronet_score.compress import (
    BlockSparse,
    CompressionConfig,
    ConfigError,
    ConfigTypeError,
    FakeQuant,
    Finalize,
    GlobalUnstructured,
    Half,
    LayerUnstructured,
    MixedPrecision,
    NMSparse,
    StructuredFilters,
    applied,
    calibrate,
    config_from_dict,
    finalize_,
    prune_,
    quantize_,
    register_pruner,
    replay_,
    shrink_,
)
from micronet_score.errors import MicronetError

X = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(0))


def net(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(4, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1, groups=2), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4),
    )  # fmt: skip


CONFIGS = [
    GlobalUnstructured(amount=0.3),
    GlobalUnstructured(amount=0.5, include_bias=True, exclude=("0", nn.Linear)),
    LayerUnstructured(amount={"0": 0.25, "7": 0.5}),
    LayerUnstructured(amount=0.2, layer_types=(nn.Conv2d,)),
    BlockSparse(block=(2, 4), amount=0.5, norm="l2", on_incompatible="skip"),
    NMSparse(n=1, m=4, exclude=("3",)),
    FakeQuant(weight_bits=4, act_bits=None, per_channel=False),
    FakeQuant(weight_bits=8, act_bits=6, act_symmetric=True),
    Half(dtype=torch.bfloat16, cast_io=True, layer_types=(nn.Linear,)),
    MixedPrecision({"": FakeQuant(weight_bits=8, act_bits=8), "7": FakeQuant(weight_bits=4, act_bits=8)}),
    StructuredFilters(amount=0.25, norm="l2", leaf_modules=(nn.BatchNorm2d,)),
]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: type(c).__name__)
def test_to_dict_is_plain_json_and_from_dict_gives_an_equal_config(config):
    data = config.to_dict()
    assert data["type"] == type(config).__name__
    text = json.dumps(data)  # plain data only
    again = config_from_dict(json.loads(text))
    assert again == config and type(again) is type(config)
    assert type(config).from_dict(json.loads(text)) == config


def test_to_dict_spells_types_and_dtypes_readably():
    assert GlobalUnstructured(exclude=(nn.Linear,)).to_dict() == {
        "type": "GlobalUnstructured",
        "amount": 0.5,
        "layer_types": [{"class": "torch.nn.Conv1d"}, {"class": "torch.nn.Conv2d"}, {"class": "torch.nn.Conv3d"},
                        {"class": "torch.nn.Linear"}],
        "include_bias": False,
        "exclude": [{"class": "torch.nn.Linear"}],
    }
    assert Half().to_dict()["dtype"] == {"dtype": "float16"}


def test_a_filter_fn_cannot_be_written_down():
    with pytest.raises(ConfigError, match=r"GlobalUnstructured\.filter_fn is a function .* exclude="):
        GlobalUnstructured(filter_fn=lambda m, n: True).to_dict()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"type": "Nope"}, r"unknown config type 'Nope'; known types: .*GlobalUnstructured"),
        ({"type": "NMSparse", "k": 3}, r"NMSparse has no field\(s\) k; its fields: "),
        ({"type": "NMSparse", "n": 5, "m": 4}, r"NMSparse\.n must be an int in \[1, 4\], got 5"),
        ({"type": "Half", "dtype": {"dtype": "int8"}}, r"Half\.dtype must be torch\.float16 or torch\.bfloat16"),
        ({"type": "Half", "dtype": {"dtype": "nonsense"}}, r"'nonsense' is not a torch dtype"),
        ({"type": "FakeQuant", "layer_types": [{"class": "nowhere.Conv"}]}, r"no class 'nowhere\.Conv'"),
    ],
)
def test_from_dict_errors_name_the_problem(data, message):
    with pytest.raises(ConfigError, match=message) as info:
        config_from_dict(data)
    assert isinstance(info.value, MicronetError)


def test_from_dict_on_a_subclass_refuses_another_type():
    with pytest.raises(ConfigError, match=r"NMSparse\.from_dict got a dict of type 'Half'"):
        NMSparse.from_dict(Half().to_dict())


def test_wrong_config_types_raise_micronet_errors_naming_the_accepted_types():
    with pytest.raises(ConfigTypeError, match=r"prune_ expects one of .*BlockSparse, .*GlobalUnstructured.*, got str"):
        prune_(net(), "half")  # type: ignore[arg-type]
    with pytest.raises(ConfigTypeError, match=r"got FakeQuant \(a quantize config: use quantize_\)"):
        prune_(net(), FakeQuant())
    with pytest.raises(ConfigTypeError, match=r"quantize_ expects one of FakeQuant, Half, MixedPrecision, got NMSparse"):
        quantize_(net(), NMSparse())
    with pytest.raises(ConfigTypeError) as info:
        shrink_(net(), NMSparse(), X)
    assert isinstance(info.value, (MicronetError, TypeError))


def test_a_new_config_is_one_class_and_one_handler():
    @dataclass(frozen=True)
    class ZeroBiases(CompressionConfig):
        value: float = 0.0

    @register_pruner(ZeroBiases)
    def _zero(model, config):
        for module in model.modules():
            if getattr(module, "bias", None) is not None:
                module.bias.data.fill_(config.value)

    model = prune_(net(), ZeroBiases())
    assert float(model[0].bias.detach().abs().sum()) == 0.0
    assert applied(model) == (ZeroBiases(),)
    assert config_from_dict({"type": "ZeroBiases", "value": 0.0}) == ZeroBiases()


def test_applied_is_in_order_stays_out_of_state_dict_and_survives_deepcopy():
    model = net()
    assert applied(model) == ()
    prune_(model, LayerUnstructured(amount=0.5))
    finalize_(model)
    quantize_(model, {"": FakeQuant(act_bits=None), "7": Half(cast_io=True)})
    steps = applied(model)
    assert [type(c) for c in steps] == [LayerUnstructured, Finalize, MixedPrecision]
    assert steps[2].configs["7"] == Half(cast_io=True)
    assert not any("micronet" in key for key in model.state_dict())
    assert applied(copy.deepcopy(model)) == steps
    finalize_(model)  # nothing left to bake in: not recorded again
    assert len(applied(model)) == 3


def _compress(config, model):
    if isinstance(config, StructuredFilters):
        return prune_(model, config, example_inputs=X)
    if isinstance(config, (FakeQuant, Half, MixedPrecision)):
        return quantize_(model, config)
    return prune_(model, config)


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: type(c).__name__)
def test_replaying_the_record_on_a_fresh_build_loads_the_state_dict_exactly(config):
    model = _compress(config, net(seed=0))
    if any(isinstance(c, FakeQuant) and c.act_bits for c in getattr(config, "configs", {"": config}).values()):
        calibrate(model, [X])
    recipe = json.loads(json.dumps([c.to_dict() for c in applied(model)]))
    fresh = replay_(net(seed=1), recipe, example_inputs=X)
    fresh.load_state_dict(model.state_dict())  # strict: same parameters, buffers and shapes
    assert {k: (v.shape, v.dtype) for k, v in fresh.state_dict().items()} == {
        k: (v.shape, v.dtype) for k, v in model.state_dict().items()
    }
    assert [type(m) for m in fresh.modules()] == [type(m) for m in model.modules()]
    inputs = X.to(torch.bfloat16) if isinstance(config, Half) and not config.cast_io else X
    model.eval(), fresh.eval()
    with torch.no_grad():
        assert torch.equal(fresh(inputs), model(inputs))
    assert applied(fresh) == applied(model)


def test_replay_of_prune_then_finalize_then_quantize():
    model = net()
    finalize_(prune_(model, GlobalUnstructured(amount=0.5)))
    quantize_(model, FakeQuant(weight_bits=8, act_bits=8))
    calibrate(model, [X])
    fresh = replay_(net(seed=3), [c.to_dict() for c in applied(model)])
    fresh.load_state_dict(model.state_dict())
    model.eval(), fresh.eval()
    with torch.no_grad():
        assert torch.equal(fresh(X), model(X))


def test_replaying_structured_pruning_needs_example_inputs():
    model = prune_(net(), StructuredFilters(amount=0.25), example_inputs=X)
    with pytest.raises(MicronetError, match=r"StructuredFilters needs example_inputs"):
        replay_(net(), applied(model))


def test_a_model_pruned_with_a_lambda_filter_still_saves_and_says_what_was_lost():
    import io

    from micronet_score.compress import CompressionError

    model = prune_(net(), LayerUnstructured(amount=0.5, filter_fn=lambda m, name: name != "7"))
    quantize_(model, FakeQuant(act_bits=None))
    buffer = io.BytesIO()
    torch.save(model, buffer)  # the lambda does not travel, the model does
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=False)
    with pytest.raises(CompressionError, match="after a LayerUnstructured config whose filter_fn could not be pickled"):
        applied(loaded)
    assert applied(model)[1] == FakeQuant(act_bits=None)  # the live model keeps its full record
    with torch.no_grad():
        model(X)  # torch's pruning hook leaves a graph-carrying weight until a no-grad forward (see the docs)
    assert applied(copy.deepcopy(model)) == applied(model)  # and so does a deep copy
