"""Issue 20: a fake-quant checkpoint that cannot be loaded is refused before the model is touched.

``quantize_`` gives every fake-quantized layer scalar ``input_fake_quant.min_val``/``max_val`` buffers; a
checkpoint that stores them with another shape used to install the quantizers, then fail inside
``load_state_dict`` with a raw ``RuntimeError``, leaving the model changed.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from micronet_score.errors import CheckpointError
from micronet_score.io import load_weights


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4, 2))


def _fingerprint(model: nn.Module) -> dict:
    """Everything a load could change: module names and classes, parameters, buffers, hooks, attributes."""
    out = {}
    for name, module in model.named_modules():
        out[name] = (
            type(module),
            sorted(module._modules),
            {k: (v.shape, v.dtype, v.detach().clone()) for k, v in module._parameters.items() if v is not None},
            {k: (v.shape, v.dtype, v.detach().clone()) for k, v in module._buffers.items() if v is not None},
            tuple(len(getattr(module, h)) for h in ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks",
                                                     "_state_dict_hooks", "_load_state_dict_pre_hooks")),
            sorted(k for k in module.__dict__ if not k.startswith("_")),
        )
    return out


def _same(a: dict, b: dict) -> bool:
    if a.keys() != b.keys():
        return False
    for key in a:
        cls, subs, params, bufs, hooks, attrs = a[key]
        cls2, subs2, params2, bufs2, hooks2, attrs2 = b[key]
        if (cls, subs, hooks, attrs) != (cls2, subs2, hooks2, attrs2) or params.keys() != params2.keys() \
                or bufs.keys() != bufs2.keys():
            return False
        for mine, theirs in ((params, params2), (bufs, bufs2)):
            for k in mine:
                if mine[k][:2] != theirs[k][:2] or not torch.equal(mine[k][2], theirs[k][2]):
                    return False
    return True


def _fake_quant_state() -> dict[str, torch.Tensor]:
    from micronet_score.compress import FakeQuant, calibrate, quantize_

    model = quantize_(_model(), FakeQuant(weight_bits=8, act_bits=8))
    calibrate(model, [torch.randn(2, 3, 3, 3)])
    return model.state_dict()


@pytest.mark.parametrize("shape", [(3,), (1,), (2, 2)])
def test_wrong_shaped_fake_quant_buffer_is_refused_and_the_model_is_untouched(tmp_path, shape):
    state = _fake_quant_state()
    state["3.input_fake_quant.min_val"] = torch.zeros(shape)  # quantize_ makes a scalar (shape ())
    torch.save(state, tmp_path / "bad.pt")
    model = _model()
    before = _fingerprint(model)
    with pytest.raises(CheckpointError) as caught:
        load_weights(model, tmp_path / "bad.pt")
    message = str(caught.value)
    assert "\n" not in message and "3.input_fake_quant.min_val" in message and "nothing was loaded" in message
    assert _same(before, _fingerprint(model))
    assert type(model[3]) is nn.Linear and "input_fake_quant" not in model[3]._modules


def test_fake_quant_checkpoint_with_act_bits_none_is_refused_and_the_model_is_untouched(tmp_path):
    from micronet_score.compress import FakeQuant

    torch.save(_fake_quant_state(), tmp_path / "fq.pt")
    model = _model()
    before = _fingerprint(model)
    # The file has activation ranges, but the stated config has no activation quantizer to hold them.
    with pytest.raises(CheckpointError, match="act_bits=None") as caught:
        load_weights(model, tmp_path / "fq.pt", fake_quant=FakeQuant(weight_bits=8, act_bits=None))
    assert "\n" not in str(caught.value)
    assert _same(before, _fingerprint(model))


def test_a_good_fake_quant_checkpoint_still_loads(tmp_path):
    state = _fake_quant_state()
    torch.save(state, tmp_path / "fq.pt")
    with pytest.warns(UserWarning, match="fake-quantized 2 layer"):
        model = load_weights(_model(), tmp_path / "fq.pt")
    assert type(model[3]).__name__ != "Linear" and "input_fake_quant" in model[3]._modules
    for key, value in state.items():
        assert torch.equal(model.state_dict()[key], value)


def test_a_failure_after_validation_still_puts_the_quantizers_back(tmp_path, monkeypatch):
    torch.save(_fake_quant_state(), tmp_path / "fq.pt")
    model = _model()

    def broken(*args, **kwargs):
        raise RuntimeError("disk vanished\nsecond line")

    monkeypatch.setattr(model, "load_state_dict", broken)
    before = _fingerprint(model)
    with pytest.raises(CheckpointError, match="RuntimeError: disk vanished") as caught:
        load_weights(model, tmp_path / "fq.pt")
    assert "\n" not in str(caught.value)
    assert _same(before, _fingerprint(model))
    from micronet_score.compress import applied

    assert applied(model) == ()


def test_fake_quant_buffers_on_a_layer_quantize_would_not_take_are_refused_before_anything(tmp_path):
    class Attention(nn.Module):
        def __init__(self):
            super().__init__()
            self.att = nn.MultiheadAttention(4, 1)  # out_proj: NonDynamicallyQuantizableLinear, a Linear subclass
            self.fc = nn.Linear(4, 4)

    state = Attention().state_dict()
    for layer in ("att.out_proj", "fc"):
        state[f"{layer}.input_fake_quant.min_val"] = torch.tensor(0.0)
        state[f"{layer}.input_fake_quant.max_val"] = torch.tensor(1.0)
    torch.save(state, tmp_path / "mha.pt")
    model = Attention()
    before = _fingerprint(model)
    # the widths stated (a file without them is refused earlier, for that reason)
    with pytest.raises(CheckpointError, match="'att.out_proj' \\(NonDynamicallyQuantizableLinear\\).*nothing was "
                                              "loaded") as caught:
        from micronet_score.compress import FakeQuant

        load_weights(model, tmp_path / "mha.pt", fake_quant=FakeQuant(weight_bits=8, act_bits=8))
    assert "\n" not in str(caught.value)
    assert _same(before, _fingerprint(model))
