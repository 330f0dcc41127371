"""FakeQuant, calibrate and Half."""

from __future__ import annotations

import copy
import io
import math

import pytest
import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from micronet_score.compress import (
    ActivationFakeQuantizer,
    FakeQuant,
    FakeQuantConv2d,
    FakeQuantLinear,
    GlobalUnstructured,
    Half,
    calibrate,
    prune_,
    quantize_,
    sparsity,
)


def convnet() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(1, 8, 3), nn.ReLU(), nn.Conv2d(8, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 4 * 4, 10)
    )


def quantized_weight(layer: nn.Module) -> torch.Tensor:
    return layer.weight_fake_quant(layer.weight).detach()


class RecordOps(TorchDispatchMode):
    """What a dispatch-level tracer (the counting engine) sees."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, list]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.calls.append((str(func.overloadpacket.__name__), [a for a in args if isinstance(a, int)]))
        return func(*args, **(kwargs or {}))


def test_layers_keep_their_object_name_and_parameter_names():
    torch.manual_seed(0)
    model = convnet()
    first = model[0]
    quantize_(model, FakeQuant(weight_bits=8, act_bits=8))
    assert model[0] is first and type(first) is FakeQuantConv2d and isinstance(first, nn.Conv2d)
    assert type(model[5]) is FakeQuantLinear
    assert set(model.state_dict()) == {
        f"{i}.{name}"
        for i in (0, 2, 5)
        for name in ("weight", "bias", "input_fake_quant.min_val", "input_fake_quant.max_val",
                     # the grids are recorded in the state dict (so a saved model reloads at its widths) ...
                     "input_fake_quant.quant_min", "input_fake_quant.quant_max", "weight_fake_quant.quant_min",
                     "weight_fake_quant.quant_max", "weight_fake_quant.per_channel")
    }
    # ... but are not buffers: what is stored (and counted) is unchanged
    assert {name for name, _ in model.named_buffers()} == {
        f"{i}.input_fake_quant.{b}" for i in (0, 2, 5) for b in ("min_val", "max_val")}
    state = model.state_dict()
    assert (int(state["0.weight_fake_quant.quant_min"]), int(state["0.weight_fake_quant.quant_max"])) == (-128, 127)
    assert (int(state["0.input_fake_quant.quant_min"]), int(state["0.input_fake_quant.quant_max"])) == (0, 255)
    assert {name for name, _ in model.named_modules()} >= {"0", "0.weight_fake_quant", "0.input_fake_quant"}


@pytest.mark.parametrize("symmetric", [True, False])
def test_4_bit_per_channel_weights_have_at_most_16_values_per_channel(symmetric):
    torch.manual_seed(0)
    model = quantize_(convnet(), FakeQuant(weight_bits=4, act_bits=None, symmetric=symmetric))
    for layer in (model[0], model[2], model[5]):
        w = quantized_weight(layer)
        float_w = layer.weight.detach()
        for channel in range(w.shape[0]):
            assert len(torch.unique(w[channel])) <= 2**4
            # fake-quant moves each weight by at most half a step of its channel's grid
            step = (float_w[channel].abs().max() / 7) if symmetric else (float_w[channel].clamp(min=0).max() - float_w[channel].clamp(max=0).min()) / 15
            assert (w[channel] - float_w[channel]).abs().max() <= step / 2 + 1e-6


def test_per_tensor_3_bit_weights_share_one_grid():
    torch.manual_seed(0)
    model = quantize_(convnet(), FakeQuant(weight_bits=3, act_bits=None, per_channel=False, symmetric=False))
    assert len(torch.unique(quantized_weight(model[2]))) <= 2**3


def test_engine_sees_torch_fake_quant_ops_with_the_bit_width():
    torch.manual_seed(0)
    model = quantize_(convnet(), {"": FakeQuant(weight_bits=8, act_bits=8), "5": FakeQuant(weight_bits=4, act_bits=6)})
    calibrate(model, [torch.randn(4, 1, 8, 8)])
    with RecordOps() as ops, torch.no_grad():
        model(torch.randn(2, 1, 8, 8))
    per_channel = [ints for name, ints in ops.calls if name == "fake_quantize_per_channel_affine_cachemask"]
    # per tensor, scale and zero point stay tensors (so torch.export can trace them): the tensor-qparams op
    per_tensor = [ints for name, ints in ops.calls
                  if name == "_fake_quantize_per_tensor_affine_cachemask_tensor_qparams"]
    # weights: symmetric signed grids (axis, quant_min, quant_max); activations: unsigned (min, max)
    assert per_channel == [[0, -128, 127], [0, -128, 127], [0, -8, 7]]
    assert [ints[-2:] for ints in per_tensor] == [[0, 255], [0, 255], [0, 63]]

    def bits(lo, hi):
        return math.ceil(math.log2(hi - lo + 1))

    assert [bits(*ints[-2:]) for ints in per_channel] == [8, 8, 4]
    assert [bits(*ints[-2:]) for ints in per_tensor] == [8, 8, 6]


def test_calibration_sets_ranges_to_the_observed_min_max_and_restores_training_mode():
    torch.manual_seed(0)
    model = quantize_(nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)), FakeQuant())
    model.train()
    model[2].eval()  # mixed modes must come back exactly
    batch = torch.tensor([[-2.0, 0.5, 1.0], [0.0, 3.0, -1.0]])
    ranges = calibrate(model, [(batch, torch.zeros(2))])
    hidden = torch.relu(model[0](batch))  # float forward: observers pass inputs through
    assert ranges["0"] == (-2.0, 3.0)
    assert ranges["2"] == (pytest.approx(hidden.min().item()), pytest.approx(hidden.max().item()))
    assert model[0].input_fake_quant.min_val.item() == -2.0 and model[0].input_fake_quant.max_val.item() == 3.0
    assert model.training and model[0].training and not model[2].training
    assert not any(m.observing for m in model.modules() if isinstance(m, ActivationFakeQuantizer))
    # a later calibration starts over; num_batches limits how much is read
    again = calibrate(model, iter([batch * 0.5, batch * 10]), num_batches=1)
    assert again["0"] == (-1.0, 1.5)


def test_calibration_errors():
    with pytest.raises(ValueError, match="no activation fake quantizers"):
        calibrate(nn.Linear(2, 2), [torch.ones(1, 2)])
    model = quantize_(nn.Sequential(nn.Linear(2, 2)), FakeQuant())
    with pytest.raises(RuntimeError, match=r"input of layer '0' has no activation range yet: run .*calibrate"):
        model(torch.ones(1, 2))
    calibrate(model, [torch.tensor([[-1.0, 1.0]])])
    with pytest.raises(ValueError, match="batches was empty"):
        calibrate(model, [])
    assert model[0].input_fake_quant.min_val.item() == -1.0  # a failed calibration keeps the old range
    with pytest.raises(ValueError, match="num_batches must be None or an int >= 1"):
        calibrate(model, [torch.ones(1, 2)], num_batches=0)
    with pytest.raises(TypeError, match="calibrate cannot feed a batch of type str"):
        calibrate(model, ["not a batch"])
    assert model[0].input_fake_quant.max_val.item() == 1.0


def test_activation_fake_quant_rounds_inputs_to_the_calibrated_grid():
    model = quantize_(nn.Sequential(nn.Linear(1, 1, bias=False)), FakeQuant(weight_bits=None, act_bits=2))
    with torch.no_grad():
        model[0].weight.fill_(1.0)
    calibrate(model, [torch.tensor([[0.0], [3.0]])])
    # 2-bit unsigned grid 0..3 over [0, 3]: scale 1, so inputs round to integers and clamp to [0, 3].
    out = model(torch.tensor([[0.4], [1.6], [7.0], [-2.0]]))
    assert out.flatten().tolist() == [0.0, 2.0, 3.0, 0.0]


def test_one_training_step_updates_the_float_weights_through_the_straight_through_estimator():
    torch.manual_seed(0)
    model = quantize_(convnet(), FakeQuant(weight_bits=4, act_bits=4))
    x, y = torch.randn(8, 1, 8, 8), torch.randint(0, 10, (8,))
    calibrate(model, [x])
    before = [p.detach().clone() for p in model.parameters()]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    model.train()
    loss = nn.functional.cross_entropy(model(x), y)
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    optimizer.step()
    assert all(not torch.equal(b, p.detach()) for b, p in zip(before, model.parameters()))


def test_deepcopy_and_state_dict_round_trip_into_a_fresh_model():
    torch.manual_seed(0)
    config = FakeQuant(weight_bits=5, act_bits=7, per_channel=False, act_symmetric=True)
    model = quantize_(convnet(), config)
    calibrate(model, [torch.randn(4, 1, 8, 8)])
    x = torch.randn(3, 1, 8, 8)
    expected = model(x)
    torch.testing.assert_close(copy.deepcopy(model)(x), expected)
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    buffer.seek(0)
    fresh = quantize_(convnet(), config)
    fresh.load_state_dict(torch.load(buffer))
    torch.testing.assert_close(fresh(x), expected)


def test_pruned_layers_stay_sparse_after_fake_quant_and_keep_their_masks():
    torch.manual_seed(0)
    model = prune_(convnet(), GlobalUnstructured(amount=0.5, exclude=()))
    quantize_(model, FakeQuant(weight_bits=4, act_bits=None, symmetric=False))
    assert hasattr(model[2], "weight_mask") and isinstance(model[2], FakeQuantConv2d)
    model(torch.randn(1, 1, 8, 8))  # the pruning hook refreshes .weight = weight_orig * weight_mask
    mask = model[2].weight_mask.bool()
    assert quantized_weight(model[2])[~mask].eq(0).all()  # the affine grid holds 0 exactly
    assert sparsity(model)["2.weight"] == pytest.approx(1 - mask.float().mean().item())


def test_per_layer_mapping_filter_fn_and_errors():
    model = quantize_(
        convnet(),
        {"": FakeQuant(weight_bits=8, act_bits=None), "2": FakeQuant(weight_bits=3, act_bits=None)},
    )
    assert [model[i].weight_fake_quant.bits for i in (0, 2, 5)] == [8, 3, 8]
    model = quantize_(convnet(), FakeQuant(act_bits=None, filter_fn=lambda m, name: isinstance(m, nn.Conv2d)))
    assert type(model[0]) is FakeQuantConv2d and type(model[5]) is nn.Linear
    with pytest.raises(ValueError, match=r"no module named 'classifier'"):
        quantize_(convnet(), {"classifier": FakeQuant()})
    with pytest.raises(ValueError, match="FakeQuant: no layer"):
        quantize_(nn.Sequential(nn.ReLU()), FakeQuant())
    with pytest.raises(TypeError, match="quantize_ expects one of FakeQuant, Half"):
        quantize_(convnet(), 8)  # type: ignore[arg-type]
    # re-quantizing replaces the quantizers
    quantize_(model, FakeQuant(weight_bits=2, act_bits=None))
    assert model[0].weight_fake_quant.bits == 2


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_converts_parameters_and_buffers(dtype):
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 2))
    quantize_(model, Half(dtype))
    assert {p.dtype for p in model.parameters()} == {dtype}
    assert model[1].running_mean.dtype == dtype and model[1].num_batches_tracked.dtype == torch.int64
    model.eval()
    assert model(torch.randn(3, 4, dtype=dtype)).dtype == dtype


def test_half_on_selected_layers_with_cast_io_inside_a_float32_model():
    torch.manual_seed(0)
    model = convnet()
    quantize_(model, {"2": Half(torch.bfloat16, cast_io=True), "5": FakeQuant(act_bits=None)})
    assert model[2].weight.dtype == torch.bfloat16 and model[0].weight.dtype == torch.float32
    out = model(torch.randn(2, 1, 8, 8))
    assert out.dtype == torch.float32 and out.shape == (2, 10)
    torch.testing.assert_close(copy.deepcopy(model)(torch.ones(1, 1, 8, 8)), model(torch.ones(1, 1, 8, 8)))


def test_calibrate_reads_a_data_loader_of_input_target_pairs():
    x = torch.linspace(-3.0, 5.0, 16).reshape(8, 2)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, torch.zeros(8)), batch_size=3)
    model = quantize_(nn.Sequential(nn.Linear(2, 2)), FakeQuant())
    assert calibrate(model, loader) == {"0": (-3.0, 5.0)}
    # the first batch holds x[0:3] = -3.0 .. -3.0 + 5 * 8/15
    assert calibrate(model, loader, num_batches=1)["0"] == (-3.0, pytest.approx(-3.0 + 5 * 8 / 15))


def test_a_saved_grid_must_match_the_quantizer_it_loads_into():
    """A 4-bit state dict loaded into 8-bit quantizers is an error, never re-priced silently; an older state dict
    without the recorded grid still loads into quantizers the caller set up."""
    torch.manual_seed(0)
    four = quantize_(convnet(), FakeQuant(weight_bits=4, act_bits=None))
    eight = quantize_(convnet(), FakeQuant(weight_bits=8, act_bits=None))
    with pytest.raises(RuntimeError, match=r"records \[-8\], this quantizer has -128"):  # 4-bit signed: -8..7
        eight.load_state_dict(four.state_dict())
    old = {k: v for k, v in four.state_dict().items() if "fake_quant" not in k}
    again = quantize_(convnet(), FakeQuant(weight_bits=4, act_bits=None))
    again.load_state_dict(old)
    assert torch.equal(again[0].weight, four[0].weight)
