"""Random valid architectures for the reliability tests, with their closed-form counts.

A net is described by a :class:`NetSpec` (plain data: layer shapes, masks, init seed). :func:`build` turns it
into a module; :func:`expected` computes what the MicroNet rules say it costs, from the shapes alone, using
the formulas of the counting-rules spec (sections 1-3). Nothing here calls micronet-score: the tests compare
the library against these independent numbers and against torch's FlopCounterMode and fvcore.

Conventions written down from the spec (per example):

- conv / linear: each output element of a filter with z non-zeros costs z mults and max(z - 1, 0) adds,
  plus 1 add for the bias when z > 0. A batch norm that directly follows a conv/linear (its only consumer)
  folds into it: it costs nothing, and the layer gains a bias (C stored values, +1 add per output when it had
  none). A batch norm anywhere else is a per-channel affine: 2C stored values, 1 mult + 1 add per element.
- activations per element: ReLU 1 mult; ReLU6/hardtanh 2; LeakyReLU/PReLU 2; sigmoid 2 + 1 add;
  SiLU 3 + 1; hardswish 4 + 1; hardsigmoid 3 + 1; tanh 1; GELU (erf) 4 + 1; GELU (tanh) 7 + 2.
- max pool k x k: k^2 - 1 mults per output; average pool k x k: k^2 - 1 adds + 1 mult per output; adaptive
  pools use each output's own window; global average over H.W: C mults + C (H.W - 1) adds.
- residual add: 1 add per element; concatenation, flatten, dropout (eval): free.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.utils.prune as prune
from hypothesis import strategies as st
from torch import nn

import micronet_score as ms

# name -> (factory(channels), mults per element, adds per element, stored values(channels))
ACTIVATIONS: dict[str, tuple] = {
    "relu": (lambda c: nn.ReLU(), 1, 0, lambda c: 0),
    "relu_inplace": (lambda c: nn.ReLU(inplace=True), 1, 0, lambda c: 0),
    "relu6": (lambda c: nn.ReLU6(), 2, 0, lambda c: 0),
    "hardtanh": (lambda c: nn.Hardtanh(-0.5, 0.5), 2, 0, lambda c: 0),
    "leaky_relu": (lambda c: nn.LeakyReLU(0.1), 2, 0, lambda c: 0),
    "prelu": (lambda c: nn.PReLU(1), 2, 0, lambda c: 1),
    "prelu_channels": (lambda c: nn.PReLU(c), 2, 0, lambda c: c),
    "sigmoid": (lambda c: nn.Sigmoid(), 2, 1, lambda c: 0),
    "silu": (lambda c: nn.SiLU(), 3, 1, lambda c: 0),
    "hardswish": (lambda c: nn.Hardswish(), 4, 1, lambda c: 0),
    "hardsigmoid": (lambda c: nn.Hardsigmoid(), 3, 1, lambda c: 0),
    "tanh": (lambda c: nn.Tanh(), 1, 0, lambda c: 0),
    "gelu": (lambda c: nn.GELU(), 4, 1, lambda c: 0),
    "gelu_tanh": (lambda c: nn.GELU(approximate="tanh"), 7, 2, lambda c: 0),
}
WEIGHTED_ACTIVATIONS = {"prelu", "prelu_channels"}


# ----------------------------------------------------------------------------------------------- specs
@dataclass(frozen=True)
class MaskSpec:
    """Random zeros in a weight: each value kept with ``density``, plus ``dead`` whole filters zeroed.
    ``via``: "inplace" writes the zeros into the weight, "prune" uses torch.nn.utils.prune hooks."""

    seed: int
    density: float
    dead: int = 0
    via: str = "inplace"


@dataclass(frozen=True)
class Conv:
    cin: int
    cout: int
    kh: int
    kw: int
    stride: int = 1
    padding: int = 0
    dilation: int = 1
    groups: int = 1
    bias: bool = True
    bn: bool = False  # a BatchNorm2d right after it (folds)
    mask: MaskSpec | None = None


@dataclass(frozen=True)
class Linear:
    fin: int
    fout: int
    bias: bool = True
    bn: bool = False  # a BatchNorm1d right after it (folds)
    mask: MaskSpec | None = None


@dataclass(frozen=True)
class Act:
    name: str
    channels: int


@dataclass(frozen=True)
class Norm:  # a batch norm that does not follow a conv/linear: a per-channel affine
    channels: int
    dims: int = 2  # BatchNorm2d or BatchNorm1d


@dataclass(frozen=True)
class Pool:
    kind: str  # "max" | "avg"
    k: int
    stride: int
    padding: int


@dataclass(frozen=True)
class Adaptive:
    kind: str  # "max" | "avg"
    oh: int
    ow: int


@dataclass(frozen=True)
class Residual:  # x + act(conv_or_linear(x)), shapes preserved
    layer: Conv | Linear
    act: str | None = None


@dataclass(frozen=True)
class Concat:  # cat([x, layer(x)], dim=1)
    layer: Conv | Linear


@dataclass(frozen=True)
class GlobalMean:  # x.mean((2, 3)) (functional) or AdaptiveAvgPool2d(1) + flatten (module)
    module: bool = False


@dataclass(frozen=True)
class Flatten:
    pass


@dataclass(frozen=True)
class Dropout:
    pass


Block = Conv | Linear | Act | Norm | Pool | Adaptive | Residual | Concat | GlobalMean | Flatten | Dropout


@dataclass(frozen=True)
class NetSpec:
    input_shape: tuple[int, ...]  # batch first
    blocks: tuple[Block, ...]
    seed: int = 0

    @property
    def batch(self) -> int:
        return self.input_shape[0]

    def with_batch(self, batch: int) -> NetSpec:
        return NetSpec((batch, *self.input_shape[1:]), self.blocks, self.seed)

    def with_input(self, shape: tuple[int, ...]) -> NetSpec:
        return NetSpec(shape, self.blocks, self.seed)


# ----------------------------------------------------------------------------------------------- building
class SpecNet(nn.Module):
    """Runs ``blocks`` in order; residual and concatenation blocks are wired in forward."""

    def __init__(self, spec: NetSpec) -> None:
        super().__init__()
        self.kinds = [type(b).__name__ for b in spec.blocks]
        self.body = nn.ModuleList(_module(b) for b in spec.blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for kind, m in zip(self.kinds, self.body):
            if kind == "Residual":
                x = x + m(x)
            elif kind == "Concat":
                x = torch.cat([x, m(x)], dim=1)
            elif kind == "Flatten":
                x = torch.flatten(x, 1)
            elif kind == "GlobalMean" and not isinstance(m, nn.Sequential):
                x = x.mean((2, 3))
            else:
                x = m(x)
        return x


def _layer(b: Conv | Linear) -> nn.Module:
    if isinstance(b, Conv):
        conv = nn.Conv2d(b.cin, b.cout, (b.kh, b.kw), stride=b.stride, padding=b.padding,
                         dilation=b.dilation, groups=b.groups, bias=b.bias)
        return nn.Sequential(conv, nn.BatchNorm2d(b.cout)) if b.bn else nn.Sequential(conv)
    lin = nn.Linear(b.fin, b.fout, bias=b.bias)
    return nn.Sequential(lin, nn.BatchNorm1d(b.fout)) if b.bn else nn.Sequential(lin)


def _module(b: Block) -> nn.Module:
    if isinstance(b, (Conv, Linear)):
        return _layer(b)
    if isinstance(b, Act):
        return ACTIVATIONS[b.name][0](b.channels)
    if isinstance(b, Norm):
        return nn.BatchNorm2d(b.channels) if b.dims == 2 else nn.BatchNorm1d(b.channels)
    if isinstance(b, Pool):
        cls = nn.MaxPool2d if b.kind == "max" else nn.AvgPool2d
        return cls(b.k, b.stride, b.padding)
    if isinstance(b, Adaptive):
        cls = nn.AdaptiveMaxPool2d if b.kind == "max" else nn.AdaptiveAvgPool2d
        return cls((b.oh, b.ow))
    if isinstance(b, Residual):
        parts = [*_layer(b.layer)]
        if b.act is not None:
            parts.append(ACTIVATIONS[b.act][0](_out_channels(b.layer)))
        return nn.Sequential(*parts)
    if isinstance(b, Concat):
        return _layer(b.layer)
    if isinstance(b, GlobalMean):
        return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten()) if b.module else nn.Identity()
    if isinstance(b, Dropout):
        return nn.Dropout(0.3)
    return nn.Identity()  # Flatten is done in forward


def _out_channels(b: Conv | Linear) -> int:
    return b.cout if isinstance(b, Conv) else b.fout


def make_mask(shape: tuple[int, ...], spec: MaskSpec) -> torch.Tensor:
    """The 0/1 mask a MaskSpec stands for (deterministic)."""
    g = torch.Generator().manual_seed(spec.seed)
    mask = (torch.rand(shape, generator=g) < spec.density).float()
    if spec.dead:
        dead = torch.randperm(shape[0], generator=g)[: spec.dead]
        mask[dead] = 0
    return mask


def weighted_layers(spec: NetSpec, model: SpecNet) -> list[tuple[Conv | Linear, nn.Module]]:
    """(spec, conv/linear module) for every weighted layer, in order."""
    out = []
    for b, m in zip(spec.blocks, model.body):
        if isinstance(b, (Conv, Linear, Concat)):
            out.append((b.layer if isinstance(b, Concat) else b, m[0]))
        elif isinstance(b, Residual):
            out.append((b.layer, m[0]))
    return out


def build(spec: NetSpec, apply_masks: bool = True) -> SpecNet:
    """The module of ``spec`` in eval mode: deterministic non-zero weights and statistics, masks applied."""
    model = SpecNet(spec)
    g = torch.Generator().manual_seed(spec.seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g))
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
        for p in model.parameters():
            sign = torch.where(torch.rand(p.shape, generator=g) < 0.5, -1.0, 1.0)
            p.copy_((torch.rand(p.shape, generator=g) + 0.1) * sign)  # never exactly zero
    if apply_masks:
        for b, m in weighted_layers(spec, model):
            if b.mask is None:
                continue
            mask = make_mask(tuple(m.weight.shape), b.mask)
            if b.mask.via == "prune":
                prune.custom_from_mask(m, "weight", mask)
            else:
                with torch.no_grad():
                    m.weight.mul_(mask)
    return model.eval()


# ----------------------------------------------------------------------------------------------- closed forms
@dataclass
class Expected:
    """Per-example counts of a spec, from the formulas alone."""

    weighted_mults: int = 0  # mults of operators that read a stored weight (width max(w, a))
    plain_mults: int = 0  # mults of operators on activations only (width a)
    adds: int = 0
    params: int = 0
    nonzero_params: int = 0
    dense_macs: int = 0  # conv + linear multiply-accumulates ignoring masks (what FlopCounterMode counts)
    layer_mults: int = 0  # conv + linear mults with the masks
    sparse_tensors: list[tuple[int, int]] = field(default_factory=list)  # (numel, nnz) of masked weights
    layers: dict[str, tuple[int, int]] = field(default_factory=dict)  # conv/linear module -> (mults, adds)

    @property
    def mults(self) -> int:
        return self.weighted_mults + self.plain_mults

    def widths(self, w: int, a: int | None) -> set[int]:
        """Every width the freebie rule looks at: stored values, multiplies, and the activations when they are
        set (quantized activations: "any part quantized below 16 bits" switches the freebie off)."""
        act = a or 32
        found = {w} if self.params else set()
        if self.weighted_mults:
            found.add(max(w, act))
        if self.plain_mults:
            found.add(act)
        if a is not None:
            found.add(a)
        return found

    def freebie(self, w: int = 32, a: int | None = None) -> bool:
        widths = self.widths(w, a)
        return bool(widths) and min(widths) >= 16

    def math_ops(self, w: int = 32, a: int | None = None) -> float:
        """32-bit-equivalent operations with weights at w bits and activations at a bits (None: not set, 32)
        and adds at the 32-bit accumulator."""
        free = self.freebie(w, a)
        act = a or 32

        def eff(b: int) -> int:
            return min(b, 16) if free else b

        return (self.weighted_mults * eff(max(w, act)) + self.plain_mults * eff(act)) / 32 + self.adds

    def dense_storage(self, w: int = 32, a: int | None = None) -> float:
        b = min(w, 16) if self.freebie(w, a) else w
        return self.params * b / 32

    def storage_bounds(self, w: int = 32, a: int | None = None) -> tuple[float, float]:
        """(lowest, highest) parameter storage the rules allow: a masked weight costs at least its non-zeros
        and at most the cheaper of dense and non-zeros plus a one-bit-per-element mask."""
        b = min(w, 16) if self.freebie(w, a) else w
        sparse_numel = sum(n for n, _ in self.sparse_tensors)
        dense_part = (self.params - sparse_numel) * b
        low = dense_part + sum(z * b for _, z in self.sparse_tensors)
        high = dense_part + sum(min(n * b, z * b + n) for n, z in self.sparse_tensors)
        return low / 32, high / 32


def conv_size(size: int, k: int, stride: int, padding: int, dilation: int = 1) -> int:
    return (size + 2 * padding - dilation * (k - 1) - 1) // stride + 1


def adaptive_windows(size_in: int, size_out: int) -> list[int]:
    """Window length of each output of adaptive pooling: [floor(i*n/m), ceil((i+1)*n/m))."""
    return [math.ceil((i + 1) * size_in / size_out) - math.floor(i * size_in / size_out) for i in range(size_out)]


def _filter_nonzeros(b: Conv | Linear, masked: bool) -> list[int]:
    if isinstance(b, Conv):
        shape = (b.cout, b.cin // b.groups, b.kh, b.kw)
    else:
        shape = (b.fout, b.fin)
    per_filter = math.prod(shape[1:])
    if b.mask is None or not masked:
        return [per_filter] * shape[0]
    mask = make_mask(shape, b.mask)
    return [int(v) for v in mask.reshape(shape[0], -1).sum(1).tolist()]


def _weighted(e: Expected, name: str, b: Conv | Linear, positions: int, masked: bool) -> None:
    """A conv/linear whose every filter is applied at ``positions`` places per example."""
    z = _filter_nonzeros(b, masked)
    out_ch = len(z)
    per_filter = b.cin // b.groups * b.kh * b.kw if isinstance(b, Conv) else b.fin
    has_bias = b.bias or b.bn
    mults = positions * sum(z)
    adds = positions * sum(max(v - 1, 0) for v in z) + (positions * sum(v > 0 for v in z) if has_bias else 0)
    e.layers[name] = (mults, adds)
    e.weighted_mults += mults
    e.adds += adds
    e.params += out_ch * per_filter + (out_ch if has_bias else 0)
    e.nonzero_params += sum(z) + (out_ch if has_bias else 0)
    e.dense_macs += positions * out_ch * per_filter
    e.layer_mults += positions * sum(z)
    if b.mask is not None and masked:
        e.sparse_tensors.append((out_ch * per_filter, sum(z)))


def _activation(e: Expected, name: str, channels: int, elements: int) -> None:
    _, mults, adds, stored = ACTIVATIONS[name]
    if name in WEIGHTED_ACTIVATIONS:
        e.weighted_mults += mults * elements
    else:
        e.plain_mults += mults * elements
    e.adds += adds * elements
    e.params += stored(channels)
    e.nonzero_params += stored(channels)


def expected(spec: NetSpec, masked: bool = True) -> Expected:
    """Closed-form counts of ``spec`` (per example)."""
    e = Expected()
    shape = list(spec.input_shape[1:])  # (C, H, W) or (F,)
    for i, b in enumerate(spec.blocks):
        name = f"body.{i}.0"  # the conv/linear of block i (see SpecNet)
        if isinstance(b, Conv):
            h, w = conv_size(shape[1], b.kh, b.stride, b.padding, b.dilation), \
                conv_size(shape[2], b.kw, b.stride, b.padding, b.dilation)
            _weighted(e, name, b, h * w, masked)
            shape = [b.cout, h, w]
        elif isinstance(b, Linear):
            _weighted(e, name, b, 1, masked)
            shape = [b.fout]
        elif isinstance(b, Act):
            _activation(e, b.name, shape[0], math.prod(shape))
        elif isinstance(b, Norm):
            n = math.prod(shape)
            e.weighted_mults += n
            e.adds += n
            e.params += 2 * b.channels
            e.nonzero_params += 2 * b.channels
        elif isinstance(b, Pool):
            c, h, w = shape
            h, w = conv_size(h, b.k, b.stride, b.padding), conv_size(w, b.k, b.stride, b.padding)
            outputs = c * h * w
            if b.kind == "max":
                e.plain_mults += outputs * (b.k * b.k - 1)
            else:
                e.plain_mults += outputs
                e.adds += outputs * (b.k * b.k - 1)
            shape = [c, h, w]
        elif isinstance(b, Adaptive):
            c, h, w = shape
            window_terms = sum(wh * ww - 1 for wh in adaptive_windows(h, b.oh) for ww in adaptive_windows(w, b.ow))
            if b.kind == "max":
                e.plain_mults += c * window_terms
            else:
                e.plain_mults += c * b.oh * b.ow
                e.adds += c * window_terms
            shape = [c, b.oh, b.ow]
        elif isinstance(b, Residual):
            positions = shape[1] * shape[2] if len(shape) == 3 else 1
            _weighted(e, name, b.layer, positions, masked)
            if b.act is not None:
                _activation(e, b.act, shape[0], math.prod(shape))
            e.adds += math.prod(shape)
        elif isinstance(b, Concat):
            if len(shape) == 3:
                layer = b.layer
                h = conv_size(shape[1], layer.kh, layer.stride, layer.padding, layer.dilation)
                w = conv_size(shape[2], layer.kw, layer.stride, layer.padding, layer.dilation)
                assert (h, w) == (shape[1], shape[2])
                _weighted(e, name, layer, h * w, masked)
                shape = [shape[0] + layer.cout, h, w]
            else:
                _weighted(e, name, b.layer, 1, masked)
                shape = [shape[0] + b.layer.fout]
        elif isinstance(b, GlobalMean):
            c, h, w = shape
            e.plain_mults += c
            e.adds += c * (h * w - 1)
            shape = [c]
        elif isinstance(b, Flatten):
            shape = [math.prod(shape)]
    return e


def output_shape(spec: NetSpec) -> tuple[int, ...]:
    shape = list(spec.input_shape[1:])
    for b in spec.blocks:
        if isinstance(b, Conv):
            shape = [b.cout, conv_size(shape[1], b.kh, b.stride, b.padding, b.dilation),
                     conv_size(shape[2], b.kw, b.stride, b.padding, b.dilation)]
        elif isinstance(b, Linear):
            shape = [b.fout]
        elif isinstance(b, Pool):
            shape = [shape[0], conv_size(shape[1], b.k, b.stride, b.padding),
                     conv_size(shape[2], b.k, b.stride, b.padding)]
        elif isinstance(b, Adaptive):
            shape = [shape[0], b.oh, b.ow]
        elif isinstance(b, Concat):
            shape = [shape[0] + _out_channels(b.layer), *shape[1:]]
        elif isinstance(b, (GlobalMean, Flatten)):
            shape = [math.prod(shape)] if isinstance(b, Flatten) else [shape[0]]
    return (spec.batch, *shape)


# ----------------------------------------------------------------------------------------------- strategies
ACT_NAMES = sorted(ACTIVATIONS)


@st.composite
def mask_specs(draw) -> MaskSpec | None:
    if not draw(st.booleans()):
        return None
    density = draw(st.sampled_from([0.0, 0.1, 0.3, 0.5, 0.8, 0.95, 1.0]))
    return MaskSpec(draw(st.integers(0, 2**16)), density, draw(st.integers(0, 2)),
                    draw(st.sampled_from(["inplace", "prune"])))


@st.composite
def _conv(draw, c: int, h: int, w: int, masks: bool, same: bool = False, channels_out: int | None = None,
          depthwise: bool | None = None) -> Conv:
    dw = draw(st.booleans()) if depthwise is None else depthwise
    if dw:
        groups = c
    else:
        groups = draw(st.sampled_from([g for g in range(1, c + 1) if c % g == 0]))
    if channels_out is not None:
        cout = channels_out
        if cout % groups:
            groups = 1
    else:
        cout = groups * draw(st.integers(1, max(1, 8 // groups)))
    dilation = draw(st.integers(1, 2))
    if same:
        kh = kw = draw(st.sampled_from([1, 3, 5]))  # square: one padding keeps both sizes
        stride, padding = 1, dilation * (kh - 1) // 2
    else:
        padding = draw(st.integers(0, 2))
        kmax_h = min(5, (h + 2 * padding - 1) // dilation + 1)
        kmax_w = min(5, (w + 2 * padding - 1) // dilation + 1)
        kh = draw(st.integers(1, kmax_h))
        kw = draw(st.integers(1, kmax_w))
        stride = draw(st.integers(1, 3))
    return Conv(c, cout, kh, kw, stride, padding, dilation, groups, draw(st.booleans()), draw(st.booleans()),
                draw(mask_specs()) if masks else None)


@st.composite
def _linear(draw, fin: int, masks: bool, fout: int | None = None) -> Linear:
    fout = draw(st.integers(1, 24)) if fout is None else fout
    return Linear(fin, fout, draw(st.booleans()), draw(st.booleans()), draw(mask_specs()) if masks else None)


_CNN_BLOCKS = ["conv", "conv", "act", "norm", "pool", "adaptive", "residual", "concat", "dropout"]
_SAME_BLOCKS = ["conv", "conv", "act", "norm", "residual", "concat"]
_MLP_BLOCKS = ["linear", "linear", "act", "norm", "residual", "concat", "dropout"]


def _act_name(draw, first: bool) -> str:
    name = draw(st.sampled_from(ACT_NAMES))
    return "relu" if first and name == "relu_inplace" else name  # never write into the caller's input


@st.composite
def _mlp_blocks(draw, f: int, masks: bool, n: int, last: str) -> tuple[list[Block], int]:
    blocks: list[Block] = []
    for _ in range(n):
        kind = draw(st.sampled_from(_MLP_BLOCKS))
        if kind == "linear":
            b = draw(_linear(f, masks))
            blocks.append(b)
            f, last = b.fout, "layer"
        elif kind == "act":
            blocks.append(Act(_act_name(draw, not blocks and last == "input"), f))
            last = "other"
        elif kind == "norm" and last != "layer":  # not right after a linear: that would fold
            blocks.append(Norm(f, dims=1))
        elif kind == "residual":
            act = draw(st.sampled_from([None, *ACT_NAMES]))
            blocks.append(Residual(draw(_linear(f, masks, fout=f)), None if act == "relu_inplace" else act))
            last = "other"
        elif kind == "concat":
            b = draw(_linear(f, masks))
            blocks.append(Concat(b))
            f, last = f + b.fout, "other"
        elif kind == "dropout":
            blocks.append(Dropout())
    return blocks, f


@st.composite
def mlp_specs(draw, masks: bool = False, max_blocks: int = 6) -> NetSpec:
    f = draw(st.integers(1, 24))
    blocks, _ = draw(_mlp_blocks(f, masks, draw(st.integers(1, max_blocks)), "input"))
    if not any(isinstance(b, (Linear, Residual, Concat)) for b in blocks):
        blocks.append(draw(_linear(f, masks)))
    return NetSpec((draw(st.integers(1, 3)), f), tuple(blocks), draw(st.integers(0, 2**16)))


@st.composite
def cnn_specs(draw, masks: bool = False, max_blocks: int = 6, same: bool = False, head: bool | None = None,
              max_size: int = 14) -> NetSpec:
    """A random CNN; ``same=True``: only stride-1, size-preserving blocks (no pooling, no head)."""
    c = draw(st.integers(1, 6))
    h, w = draw(st.integers(3, max_size)), draw(st.integers(3, max_size))
    input_shape = (draw(st.integers(1, 3)), c, h, w)
    blocks: list[Block] = []
    last = "input"  # what produced the current tensor: "layer" (conv/linear), "other" or "input"
    for _ in range(draw(st.integers(1, max_blocks))):
        kind = draw(st.sampled_from(_SAME_BLOCKS if same else _CNN_BLOCKS))
        if kind == "conv":
            b = draw(_conv(c, h, w, masks, same=same))
            blocks.append(b)
            c = b.cout
            h, w = conv_size(h, b.kh, b.stride, b.padding, b.dilation), conv_size(w, b.kw, b.stride, b.padding,
                                                                                  b.dilation)
            last = "layer"
        elif kind == "act":
            blocks.append(Act(_act_name(draw, last == "input"), c))
            last = "other"
        elif kind == "norm" and last != "layer":  # right after a conv it would fold
            blocks.append(Norm(c))
        elif kind == "pool":
            k = draw(st.integers(1, min(3, h, w)))
            blocks.append(Pool(draw(st.sampled_from(["max", "avg"])), k, draw(st.integers(1, 3)),
                               draw(st.integers(0, k // 2))))
            h, w = conv_size(h, k, blocks[-1].stride, blocks[-1].padding), \
                conv_size(w, k, blocks[-1].stride, blocks[-1].padding)
            last = "other"
        elif kind == "adaptive":
            oh, ow = draw(st.integers(1, h)), draw(st.integers(1, w))
            blocks.append(Adaptive(draw(st.sampled_from(["max", "avg"])), oh, ow))
            h, w, last = oh, ow, "other"
        elif kind == "residual":
            act = draw(st.sampled_from([None, *ACT_NAMES]))
            layer = draw(_conv(c, h, w, masks, same=True, channels_out=c))
            blocks.append(Residual(layer, None if act == "relu_inplace" else act))
            last = "other"
        elif kind == "concat":
            layer = draw(_conv(c, h, w, masks, same=True))
            blocks.append(Concat(layer))
            c, last = c + layer.cout, "other"
        elif kind == "dropout":
            blocks.append(Dropout())
    if not any(isinstance(b, (Conv, Residual, Concat)) for b in blocks):
        b = draw(_conv(c, h, w, masks, same=True))
        blocks.append(b)
        c, last = b.cout, "layer"  # a norm right after it (through a flatten) folds
    if head is None:
        head = not same and draw(st.booleans())
    if head:
        if c * h * w <= 256 and draw(st.booleans()):
            blocks.append(Flatten())  # a view: a batch norm right after it would still follow the conv
            f = c * h * w
        else:
            blocks.append(GlobalMean(module=draw(st.booleans())))
            f, last = c, "other"
        more, _ = draw(_mlp_blocks(f, masks, draw(st.integers(1, 3)), last))
        blocks += more
    return NetSpec(input_shape, tuple(blocks), draw(st.integers(0, 2**16)))


def net_specs(masks: bool = False) -> st.SearchStrategy[NetSpec]:
    """CNNs (with or without a classifier head) and MLPs."""
    return st.one_of(cnn_specs(masks=masks), cnn_specs(masks=masks, head=True), mlp_specs(masks=masks))


@st.composite
def precisions(draw):
    """A uniform bit-width setting: (bits= value, weight width, activation width or None when not set).
    None (fp32), an int, or a Precision whose None fields keep the fp32 width."""
    kind = draw(st.sampled_from(["none", "int", "precision"]))
    if kind == "none":
        return None, 32, None
    if kind == "int":
        b = draw(st.integers(1, 32))
        return b, b, b
    w = draw(st.one_of(st.none(), st.integers(1, 32)))
    a = draw(st.one_of(st.none(), st.integers(1, 32)))
    return ms.Precision(weight=w, activation=a), w or 32, a


def bits_option(model: nn.Module, value, by_name: bool):
    """``bits=`` covering the whole model: by the root's name or by the type nn.Module."""
    if value is None:
        return None
    return {"": value} if by_name else {nn.Module: value}


def assert_closed_forms(report, e) -> None:
    """A report's mults, adds, params and non-zeros, whole net and per conv/linear layer, equal the closed forms
    ``e = expected(spec)``."""
    assert (report.mults, report.adds) == (e.mults, e.adds)
    assert (report.params, report.nonzero_params) == (e.params, e.nonzero_params)
    for name, (mults, adds) in e.layers.items():
        row = report.layer(name)
        assert (row.mults, row.adds) == (mults, adds), name


def assert_clean(report, e) -> None:
    """Nothing unsupported, and no warning but the one a random masked net may earn: a weight masked entirely to
    zero is named (spec section 3) exactly when the closed forms hold one."""
    zero = tuple(w for w in report.warnings if "entirely zero" in w)
    assert report.unsupported == {} and report.warnings == zero
    assert bool(zero) == any(nnz == 0 for _, nnz in e.sparse_tensors)
