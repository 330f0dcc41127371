"""Counting an exported program (``torch.export``): the same count as the eager model it came from, per layer
under the original modules' names.

``ms.count(ep, ...)`` counts ``ep.module()``, the unlifted graph module whose parameters and buffers are
attributes again (so they are the model's stored tensors, read once, never input-dependent values). That
module runs all its operators in its own ``forward``, with no submodule calls for the module hooks to see, so
it is run here node by node (:class:`torch.fx.Interpreter`): each ``call_function`` node is charged to the
innermost module of its ``nn_module_stack`` metadata (what ``torch.export`` records for every node: the path
and type of each module the operator ran in, one key per call), and each new call of a module counts as a
call, as the module hooks count them for an eager model. Rows are ordered as the original model's
``named_modules`` (``ep.module_call_graph``) when an ``ExportedProgram`` is given, else in module-tree order.

``torch.cond`` runs the branch its predicate picks for the inputs counted (the eager model's own ``torch.cond``
cannot be followed operator by operator). Batch norms fold as in the eager count: a program exported in eval mode holds ``aten.batch_norm`` (or, after
``run_decompositions()``, ``aten._native_batch_norm_legit_no_training``) reading the norm's stored tensors.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from micronet_score.convention import Convention
from micronet_score.errors import InputError

_ORDER_KEY = "micronet_module_order"  # gm.meta key: the original modules' order, set on modules made here


def is_exported_program(obj: Any) -> bool:
    """True for a ``torch.export.ExportedProgram`` (checked without importing ``torch.export``)."""
    cls = type(obj)
    return cls.__name__ == "ExportedProgram" and cls.__module__.startswith("torch.export")


def as_module(model: Any) -> Any:
    """An ``ExportedProgram`` as the module that runs it (``ep.module()``, the original modules' order kept
    in its ``meta``); anything else unchanged."""
    if not is_exported_program(model):
        return model
    try:
        gm = model.module()
    except Exception as exc:  # noqa: BLE001 - torch's own unlifting failed: say so in one line
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"the exported program cannot be turned into a module to run (ep.module() failed: "
                         f"{type(exc).__name__}: {first}); export the model again with this torch version") from exc
    order = [entry.fqn for entry in getattr(model, "module_call_graph", ()) if isinstance(entry.fqn, str)]
    gm.meta[_ORDER_KEY] = order
    return gm


def is_exported_module(model: Any) -> bool:
    """True for the unlifted module of an exported program (``ep.module()``) whose nodes say which module
    they ran in."""
    if not isinstance(model, torch.fx.GraphModule) or not hasattr(model, "_in_spec"):
        return False
    return any(n.op == "call_function" and n.meta.get("nn_module_stack") for n in model.graph.nodes)


def check_options(model: Any, conv: Convention, bits: Any) -> None:
    """Refuse what an exported program cannot be counted with: a leaf-module convention (the course's counter
    hooks modules, and the exported module calls none) and ``bits=`` keyed by module type (its modules are
    not the original classes)."""
    if not is_exported_module(model):
        return
    if conv.attribution == "leaf-modules":
        raise InputError(f"convention {conv.name!r} counts module by module with hooks, and an exported program "
                         "runs its operators outside any module: count the eager model under this rule set, or "
                         "use an operator-level rule set (micronet-2019-*)")
    if bits and any(isinstance(k, type) for k in bits):
        raise InputError("bits= keyed by module type cannot be matched on an exported program (its modules are "
                         "not the original classes): key the widths by module name, e.g. bits={'layer1': 8}")


def run_forward(model: torch.nn.Module, tracer: Any, args: tuple, kwargs: dict) -> Any:
    """``model(*args, **kwargs)``; the unlifted module of an exported program runs node by node, each
    operator charged to its original module (see the module docstring)."""
    if not is_exported_module(model):
        return model(*args, **kwargs)
    plan = _Plan.of(model)
    tracer.module_types = plan.module_types(tracer.module_types)
    from torch.utils import _pytree as pytree

    flat, given = pytree.tree_flatten((tuple(args), dict(kwargs)))
    if given != model._in_spec:
        raise InputError(f"the exported program takes {model._in_spec.children()[0].num_leaves} positional "
                         f"input(s) and keywords {model._in_spec.children()[1].context or []}, structured as when it "
                         f"was exported; got {len(args)} positional input(s) and keywords {sorted(kwargs)}: pass "
                         "inputs shaped like the example it was exported with")
    out = _Interpreter(model, tracer, plan).run(*flat, enable_io_processing=False)
    return pytree.tree_unflatten(list(out), model._out_spec) if isinstance(out, (tuple, list)) else out


class _Plan:
    """Per ``call_function`` node: the module path it is charged to and the module paths whose call starts
    there (new ``nn_module_stack`` keys); the modules' types and order."""

    def __init__(self) -> None:
        self.where: dict[torch.fx.Node, tuple[str, tuple[str, ...]]] = {}
        self.types: dict[str, str] = {}
        self.order: list[str] = []

    @classmethod
    def of(cls, gm: torch.fx.GraphModule) -> _Plan:
        plan = cls()
        seen: set[str] = set()
        appeared: list[str] = []
        for node in gm.graph.nodes:
            stack = node.meta.get("nn_module_stack") if node.op == "call_function" else None
            if not stack:
                continue
            entered: list[str] = []
            path = ""
            for key, value in stack.items():
                path, kind = _path_type(value)
                if path not in plan.types:
                    plan.types[path] = kind
                    appeared.append(path)
                if key not in seen:
                    seen.add(key)
                    if path:  # the root's one call is the run itself
                        entered.append(path)
            plan.where[node] = (path, tuple(entered))
        given = gm.meta.get(_ORDER_KEY) if isinstance(getattr(gm, "meta", None), dict) else None
        modules = [name for name, _ in gm.named_modules()]
        plan.order = _tree_order([*(given or ()), *modules, *appeared])
        return plan

    def module_types(self, current: dict[str, str]) -> dict[str, str]:
        """The tracer's module -> type table in the original modules' order, original type names first."""
        out = {name: self.types.get(name, current.get(name, "?")) for name in self.order}
        for name, kind in current.items():
            out.setdefault(name, kind)
        return out


class _Interpreter(torch.fx.Interpreter):
    def __init__(self, gm: torch.fx.GraphModule, tracer: Any, plan: _Plan) -> None:
        super().__init__(gm, garbage_collect_values=True)
        self.tracer = tracer
        self.plan = plan

    def run_node(self, n: torch.fx.Node) -> Any:
        where = self.plan.where.get(n)
        if where is None:
            return super().run_node(n)
        if n.target is _cond():
            return self._cond(n, where)
        path, entered = where
        calls = self.tracer.calls
        for name in entered:
            calls[name] += 1
        stack = self.tracer.stack
        stack.append(path)
        out = super().run_node(n)
        stack.pop()  # left on the stack when the node raises: the error names the module, as for an eager model
        return out


    def _cond(self, n: torch.fx.Node, where: tuple[str, tuple[str, ...]]) -> Any:
        """``torch.cond``: the branch the predicate picks, run node by node like the rest (the tracer sees its
        operators, not the higher-order operator). On shapes alone the predicate has no value: the count then
        runs again on real values, as for any forward that needs them."""
        args, _ = self.fetch_args_kwargs_from_env(n)
        pred, on_true, on_false, operands = args[:4]
        branch = on_true if bool(pred) else on_false
        calls = self.tracer.calls
        for name in where[1]:
            calls[name] += 1
        return _Interpreter(branch, self.tracer, _Plan.of(branch)).run(*operands, enable_io_processing=False)


def _cond() -> Any:
    return getattr(getattr(torch.ops, "higher_order", None), "cond", None)


def _path_type(value: Any) -> tuple[str, str]:
    """(module path, type name) of one ``nn_module_stack`` entry (a class, or its qualified name as a string
    once the program was saved and loaded)."""
    path, kind = value if isinstance(value, tuple) and len(value) == 2 else ("", "?")
    name = kind.__name__ if isinstance(kind, type) else str(kind).rpartition(".")[2]
    return str(path), name or "?"


def _tree_order(paths: Iterable[str]) -> list[str]:
    """Every path and its ancestors in depth-first order, children in order of first mention."""
    children: dict[str, list[str]] = {}
    known: set[str] = {""}
    for path in paths:
        parts = path.split(".") if path else []
        for i in range(1, len(parts) + 1):
            name, parent = ".".join(parts[:i]), ".".join(parts[:i - 1])
            if name not in known:
                known.add(name)
                children.setdefault(parent, []).append(name)
    out: list[str] = []
    pending = [""]
    while pending:
        name = pending.pop()
        out.append(name)
        pending.extend(reversed(children.get(name, [])))
    return out
