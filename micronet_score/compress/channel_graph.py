"""Channel dependency analysis for structured pruning, from a ``torch.fx`` trace.

Every output channel of a conv/linear layer is an *atom*. The analysis walks the traced graph and
tracks, for each activation, which atom each position of its channel axis holds (a :class:`Flow`):
channel-wise ops pass atoms through, ``torch.cat`` concatenates them, flattening expands each atom
to ``span`` consecutive features, and element-wise ops between two activations (residual adds)
merge the atoms they align into one *class* (a disjoint-set union). A class is removed everywhere
at once: from every producing layer and from every position of every consumer's input.

Anything the analysis does not understand *freezes* the atoms reaching it (they are never
removed), so unknown code can only make pruning more conservative, never wrong.
"""

from __future__ import annotations

import builtins
import math
import operator
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.fx
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize, prune

from micronet_score.errors import MicronetError

from .fakequant import FAKE_QUANT_CLASSES

FAKE_QUANT_TYPES = tuple(FAKE_QUANT_CLASSES.values())

CONV_TYPES = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
BATCHNORM_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)

_PASSTHROUGH_MODULES = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU, nn.Mish, nn.Sigmoid,
    nn.Tanh, nn.Hardswish, nn.Hardsigmoid, nn.Hardtanh, nn.Softplus, nn.Identity,
    nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout,
    nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d,
    nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d,
    nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d, nn.Upsample,
)  # fmt: skip
_UNARY_FUNCTIONS = {
    F.relu, F.relu6, F.leaky_relu, F.elu, F.selu, F.celu, F.gelu, F.silu, F.mish, F.hardswish,
    F.hardsigmoid, F.hardtanh, F.softplus, F.sigmoid, F.tanh, torch.relu, torch.relu_, torch.sigmoid,
    torch.tanh, torch.clamp, torch.clip, torch.abs, torch.exp, operator.neg,
    F.dropout, F.dropout1d, F.dropout2d, F.dropout3d, F.alpha_dropout,
    F.max_pool1d, F.max_pool2d, F.max_pool3d, F.avg_pool1d, F.avg_pool2d, F.avg_pool3d,
    F.adaptive_avg_pool1d, F.adaptive_avg_pool2d, F.adaptive_avg_pool3d,
    F.adaptive_max_pool1d, F.adaptive_max_pool2d, F.adaptive_max_pool3d, F.interpolate,
}  # fmt: skip
_UNARY_METHODS = {
    "relu", "relu_", "sigmoid", "sigmoid_", "tanh", "tanh_", "clamp", "clamp_", "clip", "contiguous",
    "clone", "detach", "float", "half", "bfloat16", "to", "neg", "abs", "exp", "sqrt", "square",
}  # fmt: skip
_BINARY_FUNCTIONS = {
    operator.add, operator.sub, operator.mul, operator.truediv, operator.iadd, operator.isub,
    operator.imul, operator.itruediv, torch.add, torch.sub, torch.mul, torch.div, torch.maximum,
    torch.minimum,
}  # fmt: skip
_BINARY_METHODS = {"add", "add_", "sub", "sub_", "mul", "mul_", "div", "div_"}
_REDUCE_FUNCTIONS = {torch.mean, torch.sum, torch.amax, torch.amin}
_REDUCE_METHODS = {"mean", "sum", "amax", "amin"}
_CAT_FUNCTIONS = {torch.cat, torch.concat, torch.concatenate}
_SHAPE_METHODS = {"size", "dim"}


class UntraceableModelError(MicronetError, RuntimeError):
    """``torch.fx`` could not trace the model, so structured pruning cannot see its data flow."""


@dataclass(frozen=True)
class Flow:
    """Channel layout of one activation: position ``p`` of dimension ``axis`` holds atom
    ``atoms[p // span]`` (``span > 1`` after flattening ``C x H x W`` into features)."""

    axis: int
    atoms: tuple[int, ...]
    span: int = 1

    @property
    def size(self) -> int:
        return len(self.atoms) * self.span


class DisjointSets:
    """Union-find over atoms; a frozen class is never removed."""

    def __init__(self) -> None:
        self.parent: list[int] = []
        self.frozen: list[bool] = []

    def new(self, frozen: bool = False) -> int:
        self.parent.append(len(self.parent))
        self.frozen.append(frozen)
        return len(self.parent) - 1

    def find(self, atom: int) -> int:
        root = atom
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[atom] != root:
            self.parent[atom], atom = root, self.parent[atom]
        return root

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[rb] = ra
            self.frozen[ra] = self.frozen[ra] or self.frozen[rb]

    def freeze(self, atom: int) -> None:
        self.frozen[self.find(atom)] = True

    def is_frozen(self, atom: int) -> bool:
        return self.frozen[self.find(atom)]


@dataclass
class ChannelGraph:
    """Result of :func:`analyze`."""

    sets: DisjointSets = field(default_factory=DisjointSets)
    #: layer name -> atoms of its output channels (conv/linear, including unselected, frozen ones)
    producers: dict[str, tuple[int, ...]] = field(default_factory=dict)
    #: conv/linear layer name -> layout of its input channels
    consumers: dict[str, Flow] = field(default_factory=dict)
    #: BatchNorm / PReLU / depthwise conv name -> layout of its input (= output) channels
    channelwise: dict[str, Flow] = field(default_factory=dict)
    #: lists of buckets of atoms that must lose equally many classes (grouped convolutions)
    constraints: list[list[tuple[int, ...]]] = field(default_factory=list)
    #: shapes of the model outputs on the example inputs (for a post-surgery check)
    output_shapes: Any = None


class _Tracer(torch.fx.Tracer):
    def __init__(self, leaf_types: tuple[type[nn.Module], ...]) -> None:
        super().__init__()
        self.leaf_types = leaf_types

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        if self.leaf_types and isinstance(m, self.leaf_types):
            return True
        return super().is_leaf_module(m, module_qualified_name)


class _ShapeRecorder(torch.fx.Interpreter):
    def __init__(self, module: torch.fx.GraphModule) -> None:
        super().__init__(module)
        self.shapes: dict[torch.fx.Node, tuple[int, ...]] = {}

    def run_node(self, n: torch.fx.Node) -> Any:
        result = super().run_node(n)
        if isinstance(result, torch.Tensor):
            self.shapes[n] = tuple(result.shape)
        return result


def shape_tree(value: Any) -> Any:
    """Nested shapes of a model output, for comparing before/after surgery."""
    if isinstance(value, torch.Tensor):
        return tuple(value.shape)
    if isinstance(value, (tuple, list)):
        return type(value)(shape_tree(v) for v in value)
    if isinstance(value, dict):
        return {k: shape_tree(v) for k, v in value.items()}
    return None


def as_args(example_inputs: Any) -> tuple[Any, ...]:
    if isinstance(example_inputs, torch.Tensor):
        return (example_inputs,)
    if isinstance(example_inputs, (tuple, list)):
        return tuple(example_inputs)
    raise TypeError(
        "example_inputs must be a tensor or a tuple of positional inputs of the model, "
        f"got {type(example_inputs).__name__}"
    )


def trace(model: nn.Module, leaf_modules: tuple[type[nn.Module], ...] = ()) -> torch.fx.GraphModule:
    """``torch.fx`` trace of ``model`` whose ``call_module`` targets are ``model``'s own names."""
    tracer = _Tracer(tuple(leaf_modules))
    try:
        graph = tracer.trace(model)
    except Exception as err:
        raise UntraceableModelError(
            f"torch.fx could not trace {type(model).__name__} ({type(err).__name__}: {err}). Structured "
            "pruning needs the data flow between layers. Ways out: pass "
            "StructuredFilters(leaf_modules=(TheUntraceableSubmoduleType,)) so fx treats that submodule "
            "as a black box (its channels are then left alone); make the forward free of Python control "
            "flow on tensor values; use StructuredFilters(backend='torch_pruning') with the optional "
            "torch-pruning package; or use unstructured pruning (GlobalUnstructured, LayerUnstructured)."
        ) from err
    return torch.fx.GraphModule(tracer.root, graph)


def _nodes_in(*values: Any) -> list[torch.fx.Node]:
    found: list[torch.fx.Node] = []
    for value in values:
        torch.fx.node.map_arg(value, lambda n: found.append(n) or n)
    return found


def _arg(node: torch.fx.Node, index: int, name: str, default: Any = None) -> Any:
    if len(node.args) > index:
        return node.args[index]
    return node.kwargs.get(name, default)


def _has_user_hooks(module: nn.Module) -> bool:
    hooks = [
        module._forward_hooks, module._forward_pre_hooks, module._backward_hooks,
        getattr(module, "_backward_pre_hooks", {}), getattr(module, "_state_dict_hooks", {}),
    ]  # fmt: skip
    return any(len(h) for h in hooks)


def _check_no_reparametrization(model: nn.Module) -> None:
    for name, module in model.named_modules():
        pruned = [h for h in module._forward_pre_hooks.values() if isinstance(h, prune.BasePruningMethod)]
        if isinstance(module, FAKE_QUANT_TYPES):
            raise ValueError(f"layer {name!r} is fake-quantized; run structured pruning before quantize_")
        if pruned or parametrize.is_parametrized(module):
            raise ValueError(
                f"layer {name!r} still carries a pruning mask or parametrization; call "
                "micronet_score.compress.finalize_(model) before structured pruning"
            )


class _Analyzer:
    def __init__(self, gm: torch.fx.GraphModule, model: nn.Module, shapes: dict, selected: set[str]) -> None:
        self.gm = gm
        self.shapes = shapes
        self.selected = selected
        self.modules = dict(model.named_modules())
        self.result = ChannelGraph()
        self.sets = self.result.sets
        self.flows: dict[torch.fx.Node, Flow | None] = {}
        self.opaque = self._opaque_modules(model)

    # ------------------------------------------------------------------ bookkeeping
    def _opaque_modules(self, model: nn.Module) -> set[str]:
        """Modules that must be treated as black boxes: called twice, sharing parameters, used
        through ``get_attr``, or carrying hooks (a new module would silently drop them)."""
        opaque: set[str] = set()
        calls: dict[str, int] = {}
        for node in self.gm.graph.nodes:
            if node.op == "call_module":
                calls[node.target] = calls.get(node.target, 0) + 1
            elif node.op == "get_attr":
                opaque.add(node.target.rpartition(".")[0])
        opaque.update(name for name, count in calls.items() if count > 1)
        owners: dict[int, list[str]] = {}
        for name, module in model.named_modules(remove_duplicate=False):
            for tensor in list(module.parameters(recurse=False)) + list(module.buffers(recurse=False)):
                owners.setdefault(id(tensor), []).append(name)
            if _has_user_hooks(module):
                opaque.add(name)
        for names in owners.values():
            if len(names) > 1:
                opaque.update(names)
        return opaque

    def flow(self, value: Any) -> Flow | None:
        return self.flows.get(value) if isinstance(value, torch.fx.Node) else None

    def freeze(self, *values: Any) -> None:
        for node in _nodes_in(*values):
            f = self.flows.get(node)
            if f is not None:
                for atom in f.atoms:
                    self.sets.freeze(atom)

    def new_atoms(self, count: int, frozen: bool) -> tuple[int, ...]:
        return tuple(self.sets.new(frozen) for _ in range(count))

    # ------------------------------------------------------------------ main loop
    def run(self) -> ChannelGraph:
        for node in self.gm.graph.nodes:
            self.flows[node] = self.visit(node)
        return self.result

    def visit(self, node: torch.fx.Node) -> Flow | None:
        op, target = node.op, node.target
        if op in ("placeholder", "get_attr"):
            return None
        if op == "output":
            self.freeze(node.args)
            return None
        if op == "call_module":
            return self.visit_module(node, self.modules[target])
        is_fn, is_method = op == "call_function", op == "call_method"
        if (is_fn and target in _UNARY_FUNCTIONS) or (is_method and target in _UNARY_METHODS):
            return self.unary(node)
        if (is_fn and target in _BINARY_FUNCTIONS) or (is_method and target in _BINARY_METHODS):
            return self.binary(node)
        if (is_fn and target in _REDUCE_FUNCTIONS) or (is_method and target in _REDUCE_METHODS):
            return self.reduce(node)
        if (is_fn and target is torch.flatten) or (is_method and target == "flatten"):
            return self.flatten(node, _arg(node, 1, "start_dim", 0), _arg(node, 2, "end_dim", -1))
        if (is_fn and target is torch.reshape) or (is_method and target in ("view", "reshape")):
            return self.view(node)
        if is_fn and target in _CAT_FUNCTIONS:
            return self.cat(node)
        if (is_method and target in _SHAPE_METHODS) or (is_fn and target is builtins.getattr):
            return None  # reading a shape does not depend on which channels exist
        return self.unknown(node)

    def unknown(self, node: torch.fx.Node) -> None:
        self.freeze(node.args, node.kwargs)
        return None

    # ------------------------------------------------------------------ modules
    def visit_module(self, node: torch.fx.Node, module: nn.Module) -> Flow | None:
        name = node.target
        kind = type(module)
        if name in self.opaque or node.kwargs or len(node.args) != 1:
            if kind in CONV_TYPES or kind is nn.Linear:
                self.result.producers[name] = self.new_atoms(self._out_count(module), frozen=True)
            return self.unknown(node)
        if kind in CONV_TYPES:
            return self.conv(node, name, module)
        if kind is nn.Linear:
            return self.linear(node, name, module)
        if kind in BATCHNORM_TYPES or (kind is nn.PReLU and module.num_parameters > 1):
            return self.channelwise(node, name, self._out_count(module))
        if kind in _PASSTHROUGH_MODULES or kind is nn.PReLU:
            return self.unary(node)
        if kind is nn.Flatten:
            return self.flatten(node, module.start_dim, module.end_dim)
        return self.unknown(node)

    @staticmethod
    def _out_count(module: nn.Module) -> int:
        if isinstance(module, CONV_TYPES):
            return module.out_channels
        if isinstance(module, nn.Linear):
            return module.out_features
        if isinstance(module, nn.PReLU):
            return module.num_parameters
        return module.num_features

    def _input(self, node: torch.fx.Node) -> tuple[Flow | None, tuple[int, ...] | None]:
        x = node.args[0]
        return self.flow(x), self.shapes.get(x) if isinstance(x, torch.fx.Node) else None

    def conv(self, node: torch.fx.Node, name: str, conv: nn.Module) -> Flow | None:
        f, shape = self._input(node)
        batched = shape is not None and len(shape) == conv.weight.dim()
        valid = f is not None and batched and f.axis == 1 and f.span == 1 and len(f.atoms) == conv.in_channels
        if f is not None and not valid:
            self.freeze(node.args)
        groups = conv.groups
        if groups > 1 and groups == conv.in_channels == conv.out_channels and valid:
            self.result.channelwise[name] = f  # depthwise: output channel i reads input channel i only
            if name not in self.selected:
                self.freeze(node.args)
            return Flow(1, f.atoms)
        if valid:
            self.result.consumers[name] = f
            if groups > 1:
                size = conv.in_channels // groups
                self.result.constraints.append([f.atoms[g * size : (g + 1) * size] for g in range(groups)])
        atoms = self.new_atoms(conv.out_channels, frozen=name not in self.selected)
        self.result.producers[name] = atoms
        if groups > 1:
            size = conv.out_channels // groups
            self.result.constraints.append([atoms[g * size : (g + 1) * size] for g in range(groups)])
        if not batched:
            for atom in atoms:
                self.sets.freeze(atom)
            return None
        return Flow(1, atoms)

    def linear(self, node: torch.fx.Node, name: str, linear: nn.Linear) -> Flow | None:
        f, shape = self._input(node)
        valid = (
            f is not None and shape is not None and f.axis == len(shape) - 1 and f.size == linear.in_features
        )
        if f is not None and not valid:
            self.freeze(node.args)
        if valid:
            self.result.consumers[name] = f
        atoms = self.new_atoms(linear.out_features, frozen=name not in self.selected)
        self.result.producers[name] = atoms
        out_shape = self.shapes.get(node)
        return Flow(len(out_shape) - 1, atoms) if out_shape else None

    def channelwise(self, node: torch.fx.Node, name: str, channels: int) -> Flow | None:
        f, shape = self._input(node)
        if (
            f is None
            or shape is None
            or len(shape) < 2
            or f.axis != 1
            or f.span != 1
            or len(f.atoms) != channels
        ):
            return self.unknown(node)
        self.result.channelwise[name] = f
        return f

    # ------------------------------------------------------------------ functions
    def unary(self, node: torch.fx.Node) -> Flow | None:
        x = node.args[0] if node.args else None
        f = self.flow(x)
        self.freeze(node.args[1:], node.kwargs)  # other tensor arguments are not understood
        if f is None:
            return None
        before, after = self.shapes.get(x), self.shapes.get(node)
        if after is None or before is None or len(after) != len(before) or after[f.axis] != before[f.axis]:
            self.freeze(x)
            return None
        return f

    def binary(self, node: torch.fx.Node) -> Flow | None:
        operands = [
            a for a in list(node.args[:2]) + [node.kwargs.get("other")] if isinstance(a, torch.fx.Node)
        ]
        self.freeze([a for a in node.args[2:]], {k: v for k, v in node.kwargs.items() if k != "other"})
        out = self.shapes.get(node)
        flows = [(a, self.flows.get(a)) for a in operands if self.flows.get(a) is not None]
        if not flows:
            return None
        if out is None:
            self.freeze(operands)
            return None
        axes = {len(out) - len(self.shapes[a]) + f.axis for a, f in flows}
        if len(axes) != 1:
            self.freeze(operands)
            return None
        axis = axes.pop()
        members: list[Flow] = []
        per_channel_constant = False
        for a in operands:
            shape = self.shapes.get(a)
            if shape is None:
                continue  # a Python number computed in the graph
            dim = axis - (len(out) - len(shape))
            extent = shape[dim] if dim >= 0 else 1
            f = self.flows.get(a)
            if f is not None and extent == out[axis]:
                members.append(f)
            elif f is not None:
                self.freeze(a)  # broadcast along the channel axis
            elif extent > 1:
                per_channel_constant = True  # a per-channel tensor we cannot slice
        if not members:
            return None
        first = members[0]
        if any(f.span != first.span or len(f.atoms) != len(first.atoms) for f in members):
            self.freeze(operands)
            return None
        for f in members[1:]:
            for a, b in zip(first.atoms, f.atoms):
                self.sets.union(a, b)
        if per_channel_constant:
            self.freeze(operands)
        return Flow(axis, first.atoms, first.span)

    def reduce(self, node: torch.fx.Node) -> Flow | None:
        x = node.args[0]
        f, shape = self.flow(x), self.shapes.get(x) if isinstance(x, torch.fx.Node) else None
        dims = _arg(node, 1, "dim")
        keepdim = _arg(node, 2, "keepdim", False)
        self.freeze(node.args[1:], node.kwargs)
        if f is None:
            return None
        if shape is None or dims is None or not isinstance(keepdim, bool):
            self.freeze(x)
            return None
        dims = [dims] if isinstance(dims, int) else list(dims)
        if not all(isinstance(d, int) for d in dims):
            self.freeze(x)
            return None
        dims = [d % len(shape) for d in dims]
        if f.axis in dims:
            self.freeze(x)
            return None
        axis = f.axis if keepdim else f.axis - sum(d < f.axis for d in dims)
        return Flow(axis, f.atoms, f.span)

    def flatten(self, node: torch.fx.Node, start: Any, end: Any) -> Flow | None:
        x = node.args[0]
        f, shape = self.flow(x), self.shapes.get(x) if isinstance(x, torch.fx.Node) else None
        if f is None:
            return None
        if shape is None or not isinstance(start, int) or not isinstance(end, int):
            self.freeze(x)
            return None
        start, end = start % len(shape), end % len(shape)
        if end < f.axis:
            return Flow(f.axis - (end - start), f.atoms, f.span)
        if start > f.axis:
            return f
        if start == f.axis:
            return Flow(f.axis, f.atoms, f.span * math.prod(shape[f.axis + 1 : end + 1]))
        self.freeze(x)
        return None

    def view(self, node: torch.fx.Node) -> Flow | None:
        # Only ``x.view(x.size(0), -1)`` / ``x.reshape(x.shape[0], -1)`` are understood: a literal
        # size would be wrong once channels are gone.
        x = node.args[0]
        sizes = node.args[1:] if node.op == "call_method" else node.args[1:2]
        if len(sizes) == 1 and isinstance(sizes[0], (tuple, list)):
            sizes = tuple(sizes[0])
        if len(sizes) == 2 and sizes[1] == -1 and _is_batch_size(sizes[0], x) and not node.kwargs:
            return self.flatten(node, 1, -1)
        return self.unknown(node)

    def cat(self, node: torch.fx.Node) -> Flow | None:
        tensors = _arg(node, 0, "tensors")
        dim = _arg(node, 1, "dim", 0)
        out = self.shapes.get(node)
        if not isinstance(tensors, (tuple, list)) or not isinstance(dim, int) or out is None:
            return self.unknown(node)
        items = [
            (t, self.flow(t), self.shapes.get(t) if isinstance(t, torch.fx.Node) else None) for t in tensors
        ]
        flows = [f for _, f, _ in items if f is not None]
        if not flows:
            return None
        dim = dim % len(out)
        if any(shape is None or len(shape) != len(out) for _, _, shape in items):
            return self.unknown(node)
        axis, span = flows[0].axis, flows[0].span
        if any(f.axis != axis or f.span != span for f in flows):
            return self.unknown(node)
        if dim == axis:
            atoms: list[int] = []
            for _, f, shape in items:
                if f is not None:
                    atoms.extend(f.atoms)
                elif span == 1:
                    atoms.extend(self.new_atoms(shape[dim], frozen=True))  # channels we do not own
                else:
                    return self.unknown(node)
            return Flow(axis, tuple(atoms), span)
        # Concatenating along another axis aligns channels like an element-wise op.
        if len(flows) != len(items) or any(len(f.atoms) != len(flows[0].atoms) for f in flows):
            return self.unknown(node)
        for f in flows[1:]:
            for a, b in zip(flows[0].atoms, f.atoms):
                self.sets.union(a, b)
        return flows[0]


def _is_batch_size(value: Any, tensor: Any) -> bool:
    if not isinstance(value, torch.fx.Node):
        return False
    if value.op == "call_method" and value.target == "size":
        return value.args[0] is tensor and (value.args[1:] == (0,) or value.kwargs == {"dim": 0})
    if value.op == "call_function" and value.target is operator.getitem and value.args[1] == 0:
        source = value.args[0]
        if isinstance(source, torch.fx.Node) and source.args and source.args[0] is tensor:
            return (source.op == "call_function" and source.args[1:] == ("shape",)) or (
                source.op == "call_method" and source.target == "size" and len(source.args) == 1
            )
    return False


def analyze(
    model: nn.Module,
    example_inputs: Any,
    selected: set[str],
    leaf_modules: Sequence[type[nn.Module]] = (),
) -> ChannelGraph:
    """Trace ``model``, run it once on ``example_inputs`` (eval mode, no grad, training flags
    restored) to learn every activation's shape, and build its :class:`ChannelGraph`. Only layers
    named in ``selected`` may lose output channels."""
    _check_no_reparametrization(model)
    args = as_args(example_inputs)
    gm = trace(model, tuple(leaf_modules))
    recorder = _ShapeRecorder(gm)
    modes = {m: m.training for m in model.modules()}
    try:
        model.eval()
        with torch.no_grad():
            output = recorder.run(*args)
    finally:
        for module, training in modes.items():
            module.training = training
    graph = _Analyzer(gm, model, recorder.shapes, selected).run()
    graph.output_shapes = shape_tree(output)
    return graph
