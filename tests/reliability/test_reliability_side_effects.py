"""No side effects: after ``count``, ``score`` and every CLI command, a model's parameters, buffers,
requires_grad flags, training modes, hooks and attributes, and torch's global state (RNG, grad mode, dispatch
and function modes, global module hooks) are exactly as they were, on every zoo model, a pruned one and
fake-quantized ones; and global state is cleaned up even when the forward raises."""

from __future__ import annotations

import hashlib
import random
import warnings

import pytest
import torch
import torch.nn.utils.prune as prune
from torch import nn
from torch.nn.modules import module as module_mod

import micronet_score as ms
from micronet_score.cli import main

_HOOK_DICTS = (
    "_forward_hooks", "_forward_hooks_with_kwargs", "_forward_hooks_always_called", "_forward_pre_hooks",
    "_forward_pre_hooks_with_kwargs", "_backward_hooks", "_backward_pre_hooks", "_state_dict_hooks",
    "_state_dict_pre_hooks", "_load_state_dict_pre_hooks", "_load_state_dict_post_hooks",
)
_GLOBAL_HOOKS = (
    "_global_forward_hooks", "_global_forward_hooks_with_kwargs", "_global_forward_hooks_always_called",
    "_global_forward_pre_hooks", "_global_backward_hooks", "_global_backward_pre_hooks",
    "_global_module_registration_hooks", "_global_parameter_registration_hooks",
    "_global_buffer_registration_hooks",
)


def fingerprint(model: nn.Module) -> dict[str, str]:
    """Everything counting must leave alone, one digest per tensor and per module (so a failure names what
    changed). Tensor version counters are left out: putting a written buffer back bumps them, harmlessly."""
    out: dict[str, str] = {}
    tensors = [("param", n, t) for n, t in model.named_parameters(remove_duplicate=False)]
    tensors += [("buffer", n, t) for n, t in model.named_buffers(remove_duplicate=False)]
    for kind, name, t in tensors:
        h = hashlib.sha256(f"{t.dtype}:{tuple(t.shape)}:{t.stride()}:{t.device}:{t.requires_grad}:"
                           f"{type(t).__name__}:{t.grad is None}".encode())
        if t.device.type != "meta" and t.numel():
            h.update(t.detach().cpu().reshape(-1).contiguous().view(torch.uint8).numpy().tobytes())
        out[f"{kind} {name}"] = h.hexdigest()
    for name, m in model.named_modules(remove_duplicate=False):
        h = hashlib.sha256(f"{type(m).__name__}:{m.training}:{sorted(vars(m))}".encode())
        for attr in _HOOK_DICTS:
            hooks = getattr(m, attr, None)
            if hooks is not None:
                h.update(f"{attr}:{list(hooks)}:{[id(v) for v in hooks.values()]}".encode())
        out[f"module {name or '<root>'}"] = h.hexdigest()
    return out


def global_state() -> tuple:
    from torch.utils._python_dispatch import _get_current_dispatch_mode_stack

    return (
        torch.get_rng_state().numpy().tobytes(), random.getstate(), torch.is_grad_enabled(),
        torch.is_inference_mode_enabled(), torch.get_default_dtype(), torch.are_deterministic_algorithms_enabled(),
        len(_get_current_dispatch_mode_stack()), torch._C._len_torch_function_stack(),
        tuple((name, tuple(getattr(module_mod, name, {}).items())) for name in _GLOBAL_HOOKS),
    )


class Guard:
    """Check model and global state against a snapshot after each step, naming the step that changed them."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.before = fingerprint(model)
        self.globals = global_state()

    def check(self, step: str) -> None:
        after = fingerprint(self.model)
        changed = sorted(k for k in self.before.keys() | after.keys() if self.before.get(k) != after.get(k))
        assert not changed, f"{step} changed the model: {changed[:10]}"
        assert global_state() == self.globals, f"{step} changed torch's global state"


def _decorate(model: nn.Module) -> nn.Module:
    """Make the state richer: a frozen parameter, user hooks, a sub-module in eval mode."""
    next(model.parameters()).requires_grad_(False)
    leaves = [m for m in model.modules() if not list(m.children())]
    leaves[0].register_forward_hook(lambda *args: None)
    leaves[-1].register_forward_pre_hook(lambda *args: None)
    leaves[len(leaves) // 2].eval()
    return model


def _rules_for(shape: tuple[int, ...]) -> str:
    return "micronet-2019-imagenet" if shape[-1] >= 224 else "micronet-2019-cifar100"


def _exercise(model: nn.Module, name: str, shape: tuple[int, ...], monkeypatch, capsys, full: bool = True) -> None:
    """count, score and the CLI, checking after each step. ``full=False`` (large models) runs one count and
    one CLI count only, to keep the folder fast."""
    guard = Guard(model)
    rules = _rules_for(shape)
    report = ms.count(model, shape)
    guard.check("count")
    ms.score(report, rules=rules, accuracy=0.9)
    guard.check("score(report)")
    if full:
        ms.score(model, shape, rules=rules, bits={nn.Conv2d: 8})
        guard.check("score(model)")
    monkeypatch.setattr(ms.models, "build", lambda _name, **kwargs: model)
    monkeypatch.setattr(ms.models, "input_size", lambda _name: shape)
    monkeypatch.setattr(ms.models, "names", lambda: {name: "model under test"})
    commands = [["count", name, "--json", "--rules", rules]]
    if full:
        commands += [["count", name, "--depth", "1", "--bits", "8", "--freebie", "off"],
                     ["count", name, "--shapes-only"]]
    for argv in commands:
        assert main(argv) == 0, argv
        guard.check(" ".join(argv))
    monkeypatch.undo()
    if full:
        for argv in (["models"], ["rules"]):
            assert main(argv) == 0
            guard.check(" ".join(argv))
    out, err = capsys.readouterr()
    assert out and err == ""


ZOO = list(ms.models.names(modality="image"))  # the token model: tests/models/test_lstm_lm.py
SMALL = {"resnet18-cifar", "preact-resnet18-cifar", "densenet-seed", "mobilenetv2"}


@pytest.mark.parametrize("name", ZOO)
def test_zoo_model_is_left_untouched(name, monkeypatch, capsys):
    model = _decorate(ms.models.build(name))
    shape = ms.models.input_size(name)
    assert model.training
    # Every model is counted by the API and by the CLI; the small ones also through every other entry point.
    _exercise(model, name, shape, monkeypatch, capsys, full=name in SMALL)


def test_pruned_zoo_model_is_left_untouched(monkeypatch, capsys):
    model = ms.models.build("resnet18-cifar")
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            prune.l1_unstructured(m, "weight", amount=0.6)
    _decorate(model)
    report = ms.count(model, (1, 3, 32, 32))
    assert report.nonzero_params < 0.5 * report.params
    _exercise(model, "resnet18-cifar", (1, 3, 32, 32), monkeypatch, capsys)


def test_fake_quantized_zoo_model_is_left_untouched(monkeypatch, capsys):
    from micronet_score.compress import FakeQuant, calibrate, quantize_

    model = ms.models.build("densenet-seed")
    quantize_(model, FakeQuant(weight_bits=6, act_bits=8))
    model.eval()
    calibrate(model, [torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))])
    model.train()
    _decorate(model)
    report = ms.count(model, (1, 3, 32, 32))
    assert not report.freebie and 6 in report.params_by_bits
    _exercise(model, "densenet-seed", (1, 3, 32, 32), monkeypatch, capsys)


def test_torch_qat_prepared_zoo_model_is_left_untouched(monkeypatch, capsys):
    import torch.ao.quantization as tq

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = ms.models.build("resnet18-cifar").train()
        model.qconfig = tq.get_default_qat_qconfig("qnnpack")
        tq.prepare_qat(model, inplace=True)
        model(torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)))  # observers see data
    _decorate(model)
    report = ms.count(model, (1, 3, 32, 32))
    assert not report.freebie and 8 in report.params_by_bits
    _exercise(model, "resnet18-cifar", (1, 3, 32, 32), monkeypatch, capsys, full=False)


def test_model_on_the_meta_device_is_left_untouched():
    with torch.device("meta"):
        model = ms.models.build("resnet18-cifar")
    guard = Guard(model)
    ms.count(model, (1, 3, 32, 32))
    ms.score(model, (1, 3, 32, 32), rules="micronet-2019-cifar100")
    guard.check("count on meta")


# ----------------------------------------------------------------------------------------------- failures
class Boom(nn.Module):
    def __init__(self, exc: BaseException):
        super().__init__()
        self.exc = exc
        self.conv = nn.Conv2d(3, 3, 1)
        self.bn = nn.BatchNorm2d(3)
        self.register_buffer("seen", torch.zeros(()))

    def forward(self, x):
        self.seen.add_(1)  # written before the failure: must be put back
        x = self.bn(self.conv(x))
        torch.randn(3)  # draws from the RNG before the failure
        raise self.exc


class Interrupt(BaseException):
    """Stands for KeyboardInterrupt without stopping pytest."""


@pytest.mark.parametrize("exc, expected", [(ValueError("boom"), ms.ForwardError),
                                           (Interrupt(), Interrupt)])
def test_global_state_is_cleaned_up_when_the_forward_raises(exc, expected):
    model = _decorate(Boom(exc).train())
    guard = Guard(model)
    with pytest.raises(expected):
        ms.count(model, (1, 3, 4, 4))
    guard.check("a failed count")
    with pytest.raises(expected):
        ms.score(model, (1, 3, 4, 4), rules="micronet-2019-cifar100")
    guard.check("a failed score")
    assert ms.count(nn.Conv2d(3, 3, 1), (1, 3, 4, 4)).mults == 3 * 3 * 16  # the next count is unaffected


def test_global_state_is_cleaned_up_when_strict_mode_raises():
    class Determinant(nn.Module):  # (an FFT here until the spec priced FFTs, section 3)
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(8, 8)

        def forward(self, x):
            return torch.linalg.det(self.lin(x).view(-1, 2, 2, 2)).abs()

    model = Determinant()
    guard = Guard(model)
    with pytest.raises(ms.UnsupportedOpError):
        ms.count(model, (1, 8), strict=True)
    guard.check("a strict count that raised")


def test_cli_failure_leaves_global_state_alone(capsys, tmp_path):
    path = tmp_path / "boom_factory.py"
    path.write_text("import torch\n\nclass M(torch.nn.Module):\n    def forward(self, x):\n"
                    "        raise RuntimeError('no')\n\n\ndef make():\n    return M()\n")
    before = global_state()
    assert main(["count", f"{path}:make", "--input", "1,3"]) == 1
    assert global_state() == before
    capsys.readouterr()
