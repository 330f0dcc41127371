"""The top-level API module: ``count`` and ``score`` live there, old import paths keep working, every error is a
``MicronetError``."""

import pytest
import torch
from torch import nn

import micronet_score as ms
from micronet_score import api
from micronet_score.errors import InputError, MicronetError, RegistryError


def test_count_and_score_come_from_the_api_module():
    assert ms.count is api.count
    assert ms.score is api.score
    assert ms.cross_check is api.cross_check
    from micronet_score.counting import count

    assert count is api.count


def test_the_cross_check_module_does_not_shadow_the_function():
    import importlib

    module = importlib.import_module("micronet_score.cross_check")
    assert callable(ms.cross_check) and ms.cross_check is module.cross_check


def test_score_a_model_and_its_report_alike():
    model = nn.Linear(100, 10)
    by_model = ms.score(model, (1, 100), rules="micronet-2019-imagenet")
    by_report = ms.score(ms.count(model, (1, 100)), rules="micronet-2019-imagenet")
    # 1010 params at 16 bits = 505; 1000 mults at 16 bits + 1000 adds at 32 bits = 500 + 1000
    assert by_model.param_storage == by_report.param_storage == 505
    assert by_model.math_ops == by_report.math_ops == 1500
    assert by_model.value == by_report.value


def test_count_with_events_returns_what_the_report_sums():
    report, events = api.count_with_events(nn.Conv2d(3, 8, 3), (2, 3, 10, 10))
    conv = [e for e in events if e.op == "aten.convolution"]
    assert len(conv) == 1
    assert conv[0].mults == 2 * 3 * 3 * 3 * 8 * 8 * 8  # whole batch of 2: 27,648
    assert report.mults == 13_824  # per example


@pytest.mark.parametrize("call, message", [
    (lambda: ms.count(nn.Linear(2, 2), (1, 2), freebie="yes"), "freebie"),
    (lambda: ms.count(nn.Linear(2, 2), (1, 2), accumulator_bits=0), "accumulator_bits"),
    (lambda: ms.count(nn.Linear(2, 2), (1, 2), bits={nn.Linear: 0}), "bits"),
    (lambda: ms.count(nn.Linear(2, 2), (1, 2), bits={nn.Linear: "8"}), "bit width"),
    (lambda: ms.models.build("no-such-model"), "unknown model"),
    (lambda: ms.count(nn.Linear(2, 2), (1, 2), convention="no-such-convention"), "convention"),
])
def test_bad_arguments_raise_micronet_errors(call, message):
    with pytest.raises(MicronetError, match=message) as info:
        call()
    assert "\n" not in str(info.value)


def test_freebie_error_is_still_a_value_error():
    with pytest.raises(ValueError):
        ms.count(nn.Linear(2, 2), (1, 2), freebie="yes")
    with pytest.raises(InputError):
        ms.count(nn.Linear(2, 2), (1, 2), freebie="yes")


def test_registering_an_operator_twice_is_a_registry_error():
    from micronet_score.counting.registry import Cost, register

    with pytest.raises(RegistryError, match="already has a cost") as info:
        register(torch.ops.aten.convolution)(lambda call: Cost())
    assert isinstance(info.value, ValueError) and isinstance(info.value, MicronetError)


def test_unknown_model_error_keeps_its_old_bases():
    from micronet_score.models.registry import UnknownModelError

    assert issubclass(UnknownModelError, MicronetError)
    assert issubclass(UnknownModelError, KeyError) and issubclass(UnknownModelError, ValueError)
