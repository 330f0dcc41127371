"""The torch-function shortcuts (counting/shortcuts.py) give exactly the count of the normal path: each lowering
produces the operator and arguments the dispatcher really produces (recorded here on many forms of each call),
anything unusual takes the normal path, and torch's errors stay as they were."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

import micronet_score as ms
from micronet_score.counting import shortcuts
from micronet_score.counting.engine import count_with_events
from micronet_score.counting.tracer import Tracer
from micronet_score.models import build, example_inputs


def _inference_batch_norm(args, kwargs):
    """The output of the batch-norm lowering's operator, run through the dispatcher (None: not lowered)."""
    lowered = shortcuts.LOWERINGS[nn.functional.batch_norm](args, kwargs)
    return None if lowered is None else lowered.op(*lowered.args)[lowered.pick]


def _both(model, inputs, **options):
    """(report, events) with the shortcut, then without it."""
    with_shortcut = count_with_events(model, inputs, **options)
    shortcuts.ENABLED = False
    try:
        without = count_with_events(model, inputs, **options)
    finally:
        shortcuts.ENABLED = True
    return with_shortcut, without


def _seeded(model: nn.Module) -> nn.Module:
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats:
                m.running_mean.normal_(generator=g)
                m.running_var.uniform_(0.5, 2.0, generator=g)
                m.running_var[0] = 0.0  # a zero variance: scale 1/sqrt(eps)
                if m.affine:
                    m.weight.normal_(generator=g)
                    m.weight[1] = 0.0  # a zero scale
    return model.eval()


CASES = {
    "conv-bn folds": (lambda: nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU()), (2, 3, 8, 8)),
    "bn after relu (kept)": (lambda: nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.BatchNorm2d(8)), (1, 3, 8, 8)),
    "input bn, no affine": (lambda: nn.Sequential(nn.BatchNorm2d(3, affine=False), nn.Conv2d(3, 4, 1)),
                            (1, 3, 5, 5)),
    "bn1d on (N, C)": (lambda: nn.Sequential(nn.Linear(6, 5), nn.BatchNorm1d(5)), (4, 6)),
    "bn1d on (N, C, L)": (lambda: nn.Sequential(nn.Conv1d(2, 5, 3), nn.BatchNorm1d(5)), (2, 2, 9)),
    "bn3d": (lambda: nn.Sequential(nn.Conv3d(2, 3, 1), nn.BatchNorm3d(3, eps=1e-3, momentum=None)),
             (1, 2, 3, 4, 4)),
    "no running stats (batch statistics)": (lambda: nn.Sequential(nn.Conv2d(3, 4, 1),
                                                                  nn.BatchNorm2d(4, track_running_stats=False)),
                                            (2, 3, 4, 4)),
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("shapes_only", [None, False])
def test_same_count_with_and_without_the_shortcut(case, shapes_only):
    build, shape = CASES[case]
    model = _seeded(build())
    x = torch.randn(shape, generator=torch.Generator().manual_seed(1))
    (fast, fast_events), (slow, slow_events) = _both(model, x, shapes_only=shapes_only)
    assert fast == slow
    assert [(e.module, e.op, e.mults, e.adds, e.mult_bits) for e in fast_events] == \
        [(e.module, e.op, e.mults, e.adds, e.mult_bits) for e in slow_events]


def test_same_count_on_the_seed_densenet_in_double_precision():
    model = ms.models.build("densenet-seed", seed=0).double().eval()
    (fast, _), (slow, _) = _both(model, torch.randn(1, 3, 32, 32, dtype=torch.float64))
    assert fast == slow and fast.mults > 0


def test_the_shortcut_output_equals_f_batch_norm():
    g = torch.Generator().manual_seed(2)
    x, w, b = torch.randn(2, 5, 3, 3, generator=g), torch.randn(5, generator=g), torch.randn(5, generator=g)
    mean, var = torch.randn(5, generator=g), torch.rand(5, generator=g) + 0.1
    kwargs = {"weight": w, "bias": b, "training": False, "momentum": 0.1, "eps": 1e-5}
    out = _inference_batch_norm((x, mean, var), kwargs)
    assert torch.equal(out, nn.functional.batch_norm(x, mean, var, w, b, False, 0.1, 1e-5))


@pytest.mark.parametrize("change", ["training", "no running mean", "wrong channels", "empty input", "1-d input",
                                    "negative eps", "extra keyword", "subclass"])
def test_anything_unusual_takes_the_normal_path(change):
    x, mean, var = torch.randn(2, 4, 3), torch.zeros(4), torch.ones(4)
    kwargs = {"weight": torch.ones(4), "bias": torch.zeros(4), "training": False, "momentum": 0.1, "eps": 1e-5}
    args = (x, mean, var)
    if change == "training":
        kwargs["training"] = True
    elif change == "no running mean":
        args = (x, None, var)
    elif change == "wrong channels":
        kwargs["weight"] = torch.ones(5)
    elif change == "empty input":
        args = (torch.randn(0, 4, 3), mean, var)
    elif change == "1-d input":
        args = (torch.randn(4), mean, var)
    elif change == "negative eps":
        kwargs["eps"] = -1.0
    elif change == "extra keyword":
        kwargs["cudnn_enabled"] = True
    else:
        class Sub(torch.Tensor):
            pass
        args = (x.as_subclass(Sub), mean, var)
    assert _inference_batch_norm(args, kwargs) is None


@pytest.mark.parametrize("shapes_only", [None, False])
def test_a_norm_of_the_wrong_width_still_fails_as_before(shapes_only):
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(6)).eval()
    with pytest.raises(ms.ForwardError, match="BatchNorm2d"):
        ms.count(model, (1, 3, 8, 8), shapes_only=shapes_only)


def test_the_inference_norm_reaches_the_tracer_as_its_one_operator(monkeypatch):
    seen: list[str] = []
    dispatch = Tracer.__torch_dispatch__

    def spy(self, func, types, args=(), kwargs=None):
        seen.append(str(func))
        return dispatch(self, func, types, args, kwargs)

    monkeypatch.setattr(Tracer, "__torch_dispatch__", spy)
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8)).eval()
    ms.count(model, (1, 3, 8, 8))
    assert seen == ["aten.convolution.default", "aten.native_batch_norm.default"]
    seen.clear()
    shortcuts.ENABLED = False
    try:
        ms.count(model, (1, 3, 8, 8))
    finally:
        shortcuts.ENABLED = True
    assert seen == ["aten.convolution.default", "aten.empty.memory_format", "aten.native_batch_norm.default"]


def test_an_autocast_region_takes_the_normal_path(monkeypatch):
    class Autocast(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv, self.bn = nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)

        def forward(self, x):
            with torch.autocast("cpu", dtype=torch.bfloat16):
                return self.bn(self.conv(x))

    taken: list[str] = []
    direct = shortcuts.direct
    monkeypatch.setattr("micronet_score.counting.sdpa.direct",
                        lambda tracer, lowered: taken.append(str(lowered.op)) or direct(tracer, lowered))
    ms.count(Autocast().eval(), (1, 3, 8, 8))
    assert taken == []  # autocast decides its casts per operator: neither call is lowered


# ---------------------------------------------------------------- every lowering against the dispatcher


class _Record(TorchDispatchMode):
    """The aten calls the dispatcher makes, with their arguments as the dispatcher passes them."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.calls.append((func, args, kwargs or {}))
        return func(*args, **(kwargs or {}))


def _same_arg(a, b) -> bool:
    """Tensors by identity; everything else by type and value (a list is not a tuple to a cost function)."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return a is b
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(_same_arg(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def _dispatched(func, args, kwargs):
    """The one aten call ``func(*args, **kwargs)`` makes under no_grad, or None when it makes another number.
    The batch norm's empty "reserve" tensor, which no one reads, is left out (its lowering skips it)."""
    with torch.no_grad(), _Record() as record:
        func(*args, **(kwargs or {}))
    calls = record.calls
    if func is nn.functional.batch_norm:
        calls = [c for c in calls if c[0] is not torch.ops.aten.empty.memory_format]
    return calls[0] if len(calls) == 1 else None


def _lowering_cases():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 4, 6, 6, generator=g)
    w = nn.Parameter(torch.randn(6, 4, 3, 3, generator=g))
    wg = torch.randn(4, 2, 3, 3, generator=g)
    b = torch.randn(6, generator=g)
    F = nn.functional
    cases = [
        (torch.conv2d, (x, w), None), (torch.conv2d, (x, w, b), None), (torch.conv2d, (x, w, None, 2), None),
        (torch.conv2d, (x, w, b, (1, 2), 1), None), (torch.conv2d, (x, w, b, [2, 1], (0, 1), 2), None),
        (torch.conv2d, (x, w, b, 1, 1, 1, 1), None), (torch.conv2d, (x, wg, None, 1, 0, (1, 2), 2), None),
        (torch.conv2d, (x, w, b, 1, "same"), None), (torch.conv2d, (x, w), {"stride": 2}),
        (torch.conv2d, (x[0], w), None), (torch.conv2d, (x.double(), w.double(), b.double(), 1, 1), None),
        (torch.conv2d, (x.to(memory_format=torch.channels_last), w, b), None),
        (torch.relu, (x,), None), (torch.Tensor.relu, (x,), None), (F.relu, (x,), {"inplace": False}),
        (F.relu, (x,), None), (F.relu, (x.clone(),), {"inplace": True}), (torch.sigmoid, (x,), None),
        (torch.Tensor.sigmoid, (x,), None), (F.silu, (x,), {"inplace": False}), (F.silu, (x.transpose(2, 3),), None),
        (torch.add, (x, x), None), (torch.Tensor.add, (x, b[:1]), None), (torch.Tensor.add, (x, 2.0), None),
        (torch.add, (x, x), {"alpha": 2}), (torch.mul, (x, x[:, :1]), None), (torch.Tensor.mul, (x, x), None),
        (torch.Tensor.mul, (x, 3), None), (torch.cat, ([x, x],), None), (torch.cat, ((x, x), 1), None),
        (torch.cat, ([x, x[:, :1]], -3), None), (torch.cat, ((x, x),), {"dim": 2}), (torch.cat, ([x],), {"dim": 0}),
        (F.adaptive_avg_pool2d, (x, 1), None), (F.adaptive_avg_pool2d, (x, (1, 1)), None),
        (F.adaptive_avg_pool2d, (x, [1, 1]), None), (F.adaptive_avg_pool2d, (x, (2, 3)), None),
        (F.adaptive_avg_pool2d, (x.to(memory_format=torch.channels_last), 1), None),
        (F.adaptive_avg_pool2d, (torch.randn(2, 4, 1, 1), 1), None),
        (F.adaptive_avg_pool2d, (torch.randn(2, 1, 5, 5), 1), None),
        (F.adaptive_avg_pool2d, (torch.randn(2, 3, 1, 5), 1), None),
        (F.adaptive_avg_pool2d, (torch.randn(4, 5, 5), 1), None),
    ]
    mean, var = torch.randn(4, generator=g), torch.rand(4, generator=g) + 0.5
    for weight, bias in ((None, None), (torch.randn(4, generator=g), torch.randn(4, generator=g))):
        cases.append((F.batch_norm, (x, mean, var),
                      {"weight": weight, "bias": bias, "training": False, "momentum": 0.1, "eps": 1e-5}))
    return cases


@pytest.mark.parametrize("case", range(len(_lowering_cases())))
def test_each_lowering_is_the_call_the_dispatcher_makes(case):
    func, args, kwargs = _lowering_cases()[case]
    captured: list = []

    class _Mode(TorchFunctionMode):  # the form the count's torch-function mode receives
        def __torch_function__(self, f, types, a=(), k=None):
            if f is func:
                captured.append((a, k))
            return f(*a, **(k or {}))

    with torch.no_grad(), _Mode():
        func(*args, **(kwargs or {}))
    received = captured[0] if captured else (args, kwargs)
    lowered = shortcuts.LOWERINGS[func](*received)
    if lowered is None:
        return  # the normal path
    op, dispatched_args, dispatched_kwargs = _dispatched(func, args, kwargs)
    assert lowered.op is op and not dispatched_kwargs
    assert _same_arg(list(lowered.args), list(dispatched_args)), (lowered.args, dispatched_args)


def test_the_plain_forms_are_lowered_and_the_others_are_not():
    lowered = {i for i, (func, args, kwargs) in enumerate(_lowering_cases())
               if shortcuts.LOWERINGS[func](args, kwargs) is not None}
    cases = _lowering_cases()
    names = {i: getattr(cases[i][0], "__name__", "?") for i in range(len(cases))}
    refused = sorted(names[i] + str(i) for i in set(range(len(cases))) - lowered)
    # the string padding, the keyword stride, the unbatched input; in-place relu; a Python scalar operand
    # (twice) and alpha; a 2 x 3 output, a channels-last input, and layouts torch could take for channels-last
    # (1 x 1 spatial, one channel); the unbatched adaptive pool
    assert refused == sorted(["conv2d7", "conv2d8", "conv2d9", "relu16", "add23", "add24", "mul27",
                              "adaptive_avg_pool2d36", "adaptive_avg_pool2d37", "adaptive_avg_pool2d38",
                              "adaptive_avg_pool2d39", "adaptive_avg_pool2d41"])


@pytest.mark.parametrize("name", ["densenet-seed", "resnet18-cifar", "efficientnet-b0", "mobilenetv2", "wrn",
                                  "preact-resnet18-cifar", "densenet-bc-100-k12-cifar", "lstm-lm-wikitext103"])
@pytest.mark.parametrize("shapes_only", [None, False])
def test_zoo_models_count_the_same_with_and_without_the_shortcuts(name, shapes_only):
    model = build(name, seed=0).eval()
    inputs = example_inputs(name, model)
    (fast, fast_events), (slow, slow_events) = _both(model, inputs, shapes_only=shapes_only)
    assert fast == slow
    assert [(e.module, e.op, e.mults, e.adds, e.mult_bits) for e in fast_events] == \
        [(e.module, e.op, e.mults, e.adds, e.mult_bits) for e in slow_events]


class _Contexts(nn.Module):
    """Plain calls made where the dispatcher would do something else: the normal path must take them."""

    def __init__(self, where: str) -> None:
        super().__init__()
        self.where = where
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x):
        if self.where == "grad":
            with torch.enable_grad():
                return torch.relu(self.conv(x))
        if self.where == "vmap":
            return torch.vmap(lambda t: torch.relu(torch.conv2d(t, self.conv.weight)))(x.unsqueeze(1))
        if self.where == "autocast":
            with torch.autocast("cpu", dtype=torch.bfloat16):
                return torch.relu(self.conv(x))
        return torch.cat([torch.relu(self.conv(x)), self.conv(x)], 1)


@pytest.mark.parametrize("where", ["grad", "vmap", "autocast", "plain"])
def test_contexts_that_change_the_dispatch_take_the_normal_path(where, monkeypatch):
    model = _Contexts(where).eval()
    taken: list = []
    direct = shortcuts.direct
    monkeypatch.setattr("micronet_score.counting.sdpa.direct",
                        lambda tracer, lowered: taken.append(str(lowered.op)) or direct(tracer, lowered))
    x = torch.randn(2, 3, 8, 8)
    (fast, fast_events), (slow, slow_events) = _both(model, x, shapes_only=False)
    assert fast == slow and fast.mults > 0
    if where == "plain":
        assert taken == ["aten.convolution.default", "aten.relu.default", "aten.convolution.default",
                         "aten.cat.default"]
    else:
        assert "aten.relu.default" not in taken


def test_inside_another_dispatch_mode_the_shortcuts_step_aside():
    from torch.utils.flop_counter import FlopCounterMode

    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU()).eval()
    x = torch.randn(1, 3, 8, 8)
    plain = ms.count(model, x)
    with FlopCounterMode(display=False) as outer:
        inside = ms.count(model, x, shapes_only=False)
    assert inside == plain
    assert outer.get_total_flops() == 2 * 4 * 3 * 9 * 36  # the real convolution the count ran: 2 x 7,776 MACs


class _Program(nn.Module):
    """A random chain of the lowered calls (and a few the normal path takes), on parameters of the module."""

    def __init__(self, seed: int) -> None:
        super().__init__()
        rng = torch.Generator().manual_seed(seed)
        self.steps: list[tuple] = []
        channels = 4
        params = nn.ParameterList()
        for _ in range(6):
            kind = int(torch.randint(0, 8, (1,), generator=rng))
            pick = lambda n: int(torch.randint(0, n, (1,), generator=rng))  # noqa: E731
            if kind == 0:  # a convolution, now and then with arguments the real kernel refuses
                groups = (1, 2)[pick(2)] if channels % 2 == 0 else 1
                out = (4, 6, 8)[pick(3)]
                in_ch = channels // groups if pick(8) else channels + 1  # 1 in 8: a channel mismatch
                params.append(nn.Parameter(torch.randn(out, in_ch, 3, 3, generator=rng)))
                bias = None
                if pick(2):
                    params.append(nn.Parameter(torch.randn(out, generator=rng)))
                    bias = len(params) - 1
                stride, padding, dilation = (1, 2, (1, 2))[pick(3)], (0, 1, (1, 0))[pick(3)], (1, 2)[pick(2)]
                self.steps.append(("conv", len(params) - 1 - (bias is not None), bias, stride, padding, dilation,
                                   groups))
                channels = out
            elif kind == 1:
                self.steps.append(("act", (torch.relu, torch.sigmoid, nn.functional.silu, nn.functional.relu,
                                           torch.Tensor.relu)[pick(5)]))
            elif kind == 2:  # add or mul with a parameter of a broadcastable (or not) shape
                shape = ((1, channels, 1, 1), (channels, 1, 1), (1,), (1, channels + 1, 1, 1))[pick(4)]
                params.append(nn.Parameter(torch.randn(shape, generator=rng)))
                self.steps.append(("binary", (torch.add, torch.mul, torch.Tensor.add, torch.Tensor.mul)[pick(4)],
                                   len(params) - 1))
            elif kind == 3:
                self.steps.append(("cat", (1, -3, 0)[pick(3)]))
                channels = channels * 2 if self.steps[-1][1] == 1 else channels
            elif kind == 4:
                params.append(nn.Parameter(torch.rand(channels, generator=rng) + 0.5))
                self.steps.append(("bn", len(params) - 1))
            elif kind == 5:
                self.steps.append(("pool",))
            elif kind == 6:
                self.steps.append(("self", (torch.add, torch.mul)[pick(2)]))
            else:
                self.steps.append(("act", torch.relu))
        self.params = params

    def forward(self, x):
        F = nn.functional
        for step in self.steps:
            kind = step[0]
            if kind == "conv":
                _, w, b, stride, padding, dilation, groups = step
                x = F.conv2d(x, self.params[w], None if b is None else self.params[b], stride, padding, dilation,
                             groups)
            elif kind == "act":
                x = step[1](x)
            elif kind == "binary":
                x = step[1](x, self.params[step[2]])
            elif kind == "cat":
                x = torch.cat([x, x], step[1])
            elif kind == "bn":
                p = self.params[step[1]]
                x = F.batch_norm(x, p.detach() * 0.1, p.detach(), p, p, False, 0.1, 1e-5)
            elif kind == "pool":
                x = F.adaptive_avg_pool2d(x, 1) if x.shape[-1] > 1 else x
            else:
                x = step[1](x, x)
        return x


def _outcome(model, x, **options):
    try:
        report, events = count_with_events(model, x, **options)
    except Exception as exc:  # noqa: BLE001 - the two paths must fail alike
        return type(exc).__name__, str(exc)
    return report, [(e.module, e.op, e.mults, e.adds, e.mult_bits) for e in events]


@pytest.mark.parametrize("seed", range(40))
def test_random_programs_count_or_fail_the_same_with_and_without_the_shortcuts(seed):
    model = _Program(seed).eval()
    x = torch.randn(2, 4, 9, 9, generator=torch.Generator().manual_seed(seed))
    for shapes_only in (None, False):
        fast = _outcome(model, x, shapes_only=shapes_only)
        shortcuts.ENABLED = False
        try:
            slow = _outcome(model, x, shapes_only=shapes_only)
        finally:
            shortcuts.ENABLED = True
        assert fast == slow
