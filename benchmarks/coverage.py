"""Which architectures micronet-score counts, and how its counts compare: writes ``docs/coverage.md``.

    PYTHONPATH=. .venv/bin/python benchmarks/coverage.py [--check] [--only NAME ...] [--no-zoo] [--out PATH]

For every Hugging Face transformers architecture in ``_hf_architectures.py`` (built from a small config, no
weights) and every model of the zoo (``micronet_score.models.names()``), it:

- counts the model (``ms.count``) and lists the operators without a cost (target: none), then counts it again
  with ``strict=True`` (which refuses any such operator);
- compares the multiplications of the conv and matrix-product families with ``torch.utils.flop_counter.
  FlopCounterMode`` (FLOPs / 2) on the same inputs, and the attention unit with its two products computed from
  the shapes of each ``scaled_dot_product_attention`` call (FlopCounterMode has no formula for the CPU kernel);
- compares the parameter count with ``sum(p.numel() for p in model.parameters())`` (tied weights once, as
  ``parameters()`` does) and splits every difference by rule, from what the report says it stored
  (``report.tensors``, ``report.unused``, ``report.warnings``): folded batch norms, parameters the forward never
  reads, persistent buffers, tables stored as the rows the forward reads, constants computed from weights.

``--check`` writes nothing and exits 1 when a model falls short (an error, an unsupported operator, a strict
count refused, a difference left unexplained, or a parameter count departing from spec §3). Without it the
page is (re)written.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import re
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils import _pytree as pytree
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode
from torch.utils.weak import WeakIdKeyDictionary

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

import micronet_score as ms  # noqa: E402
from micronet_score.api import count_with_events  # noqa: E402
from micronet_score.cross_check import _own, family, frozen_parameters  # noqa: E402
from micronet_score.errors import MicronetError  # noqa: E402

OUT = _common.ROOT / "docs" / "coverage.md"
_DENSE = ("conv", "matmul")
# Items where the count departs from spec section 3's stored-tensor rule (what the storage work changes).
SPEC_WHOLE = "≠ spec §3 (tables stored whole): "
SPEC_FREE = "≠ spec §3 (non-persistent buffers are free): "
SPEC_SOURCES = "≠ spec §3 (a constant's sources are stored, whole): "


@dataclass
class Row:
    """What one model's counts came to, and why they differ from the peers."""

    name: str
    source: str  # "transformers" or "zoo"
    seconds: float = 0.0
    error: str = ""
    unsupported: dict[str, int] = field(default_factory=dict)  # operator -> calls
    strict: str = ""  # "yes", or why not
    params: int = 0
    torch_params: int = 0
    param_items: list[tuple[str, int]] = field(default_factory=list)  # (explanation, signed difference)
    ms_dense: float = 0  # conv + matmul mults
    fcm_dense: float | None = None
    ms_attention: float = 0
    attention_products: float = 0  # Q K^T and P V, from the recorded shapes
    attention_extra: float = 0  # q/k scaling and softmax, from the same shapes
    mac_items: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def param_residual(self) -> int:
        return self.params - self.torch_params - sum(v for _, v in self.param_items)

    @property
    def mac_ok(self) -> bool:
        return not any(item.startswith("UNEXPLAINED") for item in self.mac_items)

    @property
    def ok(self) -> bool:
        return (not self.error and not self.unsupported and self.strict == "yes" and self.param_residual == 0
                and self.mac_ok and not any(t.startswith("≠") for t, _ in self.param_items))


# ---------------------------------------------------------------------- the peers
_SDPA = {"_scaled_dot_product_flash_attention_for_cpu", "_scaled_dot_product_flash_attention",
         "_scaled_dot_product_efficient_attention", "_scaled_dot_product_cudnn_attention",
         "_scaled_dot_product_attention_math"}
_SCALED = {"addmm", "baddbmm", "addbmm", "addmv"}


class _Recorder(TorchDispatchMode):
    """Per module (the innermost one running, from global forward hooks): the shapes of every attention kernel
    call, the multiplications a scaled product (``baddbmm(..., alpha=a)``) adds to the product itself, and
    whether any conv/matmul/attention operator of the module read a value that depends on the model's inputs
    (traced here, independently of micronet-score: an operator's outputs depend on the inputs when one of its
    tensor arguments does; an in-place operator passes that on to the tensor it writes)."""

    def __init__(self, names: dict[int, str], inputs: list[torch.Tensor]) -> None:
        super().__init__()
        self.names = names
        self.stack: list[str] = []
        self.attention: dict[str, list[tuple[torch.Size, torch.Size, torch.Size]]] = defaultdict(list)
        self.scaling: dict[str, int] = defaultdict(int)
        self.dependent = WeakIdKeyDictionary()
        for t in inputs:
            self.dependent[t] = True
        self.reads_inputs: set[str] = set()  # modules whose products read an input-dependent value
        self.read: set[int] = set()  # ids of every tensor an operator read

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        name = func._schema.name.split("::")[-1]
        module = self.stack[-1] if self.stack else ""
        tensors = [a for a in pytree.tree_leaves((args, kwargs)) if isinstance(a, torch.Tensor)]
        self.read.update(id(t) for t in tensors)
        dependent = any(t in self.dependent for t in tensors)
        if dependent:
            for t in pytree.tree_leaves(out):
                if isinstance(t, torch.Tensor):
                    self.dependent[t] = True
            if name.endswith("_") or "out" in kwargs:
                for t in tensors:
                    self.dependent[t] = True
            if family(name) in (*_DENSE, "attention"):
                self.reads_inputs.add(module)
        if name in _SDPA:
            self.attention[module].append((args[0].shape, args[1].shape, args[2].shape))
        elif name in _SCALED and isinstance(out, torch.Tensor):
            alpha, beta = kwargs.get("alpha", 1), kwargs.get("beta", 1)
            self.scaling[module] += out.numel() * ((alpha != 1) + (beta not in (0, 1)))
        return out

    @contextlib.contextmanager
    def hooks(self):
        def pre(mod, _args):  # noqa: ANN001
            self.stack.append(self.names.get(id(mod), self.stack[-1] if self.stack else ""))

        def post(mod, _args, _out):  # noqa: ANN001
            if self.stack:
                self.stack.pop()

        handles = [torch.nn.modules.module.register_module_forward_pre_hook(pre),
                   torch.nn.modules.module.register_module_forward_hook(post)]
        try:
            yield
        finally:
            for h in handles:
                h.remove()


def attention_products(shapes: list[tuple[torch.Size, torch.Size, torch.Size]]) -> tuple[int, int]:
    """(Q K^T + P V multiplications, the scaling and softmax multiplications) of attention calls, per query
    head: for queries (.., L, E), keys (.., S, E), values (.., S, Ev): L*S*E + L*S*Ev products; q and k scaled
    by sqrt(scale) ((L + S)*E) and a softmax at 2 mults per score (2*L*S)."""
    products = extra = 0
    for q, k, v in shapes:
        lead = math.prod(q[:-2])
        length, embed, source, embed_v = q[-2], q[-1], k[-2], v[-1]
        products += lead * length * source * (embed + embed_v)
        extra += lead * ((length + source) * embed + 2 * length * source)
    return products, extra


@dataclass
class Peer:
    """FlopCounterMode's conv/matmul MACs per module by itself, and what the recorder saw in the same run."""

    dense: dict[str, float]
    total_dense: float
    recorder: _Recorder
    by_op: dict[str, float] = field(default_factory=dict)  # MACs by operator, whole run


def flop_counter(model: torch.nn.Module, args: tuple, kwargs: dict) -> Peer:
    """FlopCounterMode's MACs (FLOPs / 2) of the conv/matmul families, per module by itself and in all."""
    names = {id(m): n for n, m in model.named_modules()}
    inputs = [t for t in pytree.tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)]
    recorder = _Recorder(names, inputs)
    root = type(model).__name__
    with torch.no_grad(), frozen_parameters(model), recorder.hooks(), FlopCounterMode(display=False) as counter, \
            recorder:
        model(*args, **kwargs)
    inclusive: dict[str, dict[str, float]] = {}
    for name, ops in counter.get_flop_counts().items():
        if name == "Global":
            continue
        key = "" if name == root else name[len(root) + 1:] if name.startswith(root + ".") else name
        inclusive[key] = {str(op): v / 2 for op, v in ops.items() if family(str(op)) in _DENSE}
    own = _own(inclusive)
    total = sum(v for op, v in counter.get_flop_counts().get("Global", {}).items() if family(str(op)) in _DENSE)
    by_op = {str(op): v / 2 for op, v in counter.get_flop_counts().get("Global", {}).items()}
    return Peer({m: sum(ops.values()) for m, ops in own.items()}, total / 2, recorder, by_op)


# ---------------------------------------------------------------------- parameters, explained
def explain_params(model: torch.nn.Module, report: ms.Report, read: set[int] | None = None
                   ) -> tuple[list[tuple[str, int]], set[str]]:
    """The report's parameter count minus ``sum(p.numel())``, split into (explanation, signed count) items
    read from what the report stored; and the parameters not stored as themselves (never read, or read only
    through a constant computed from weights)."""
    alias: dict[str, str] = {}  # any name of a parameter -> its first name
    first: dict[int, str] = {}
    numel: dict[str, int] = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        canonical = first.setdefault(id(p), name)
        alias[name] = canonical
        numel[canonical] = p.numel()
    persistent = set(model.state_dict().keys())
    buffers = {name for name, _ in model.named_buffers(remove_duplicate=False)}
    covered: set[str] = set()
    folded_modules: list[str] = []
    folded_new = 0
    partial: list[tuple[str, int, int]] = []
    stored_buffers: list[tuple[str, int]] = []
    derived: list[tuple[str, int]] = []
    for t in report.tensors:
        base = t.name.split(" (derived")[0]
        if " (folded " in base:
            base, _, norm = base.partition(" (folded ")
            folded_modules.append(norm.rstrip(")"))
            if base in alias:
                covered.add(alias[base])
            else:
                folded_new += t.params
            continue
        if base in alias:
            c = alias[base]
            if c in covered or any(c == p for p, _, _ in partial):
                derived.append((t.name, t.params))  # a second stored form of one parameter
            elif t.params == numel[c]:
                covered.add(c)
            else:
                partial.append((c, t.params, numel[c]))
        elif base in buffers:
            kind = "persistent" if base in persistent else "non-persistent"
            stored_buffers.append((f"{base} ({kind})", t.params))
        else:
            derived.append((t.name, t.params))
    items: list[tuple[str, int]] = []
    partial_names = {c for c, _, _ in partial}
    rest = [c for c in numel if c not in covered and c not in partial_names]
    norm_params = [c for c in rest if c.rpartition(".")[0] in folded_modules]
    if norm_params:
        n = sum(numel[c] for c in norm_params)
        items.append((f"{len(set(folded_modules))} batch norm(s) folded into the conv/linear before them: their "
                      f"weight and bias are not stored ({n:,} values; running statistics are buffers, in neither "
                      "count)", -n))
    if folded_new:
        items.append((f"the folded norms' shifts become biases of producers that had none: +{folded_new:,} values",
                      folded_new))
    rest = [c for c in rest if c not in norm_params]
    unused = set(report.unused)
    never = [c for c in rest if c in unused or any(a in unused for a, b in alias.items() if b == c)]
    params = dict(model.named_parameters())
    touched = [c for c in never if read is not None and id(params[c]) in read]
    untouched = [c for c in never if c not in touched]
    if untouched:
        n = sum(numel[c] for c in untouched)
        items.append((f"{len(untouched)} parameter(s) the forward never reads (in `report.unused`; no operator "
                      f"touched them in the traced run), not stored ({_names(untouched)}): {n:,} values", -n))
    if touched:
        n = sum(numel[c] for c in touched)
        items.append((f"{SPEC_SOURCES}{len(touched)} parameter(s) in `report.unused` that the forward does read, "
                      f"only to compute constants (traced run), not stored ({_names(touched)}): {n:,} values", -n))
    rest = [c for c in rest if c not in never]
    for c, stored, whole in partial:
        items.append((f"{SPEC_WHOLE}`{c}` ({whole:,} values) stored as the values the forward reads from it "
                      f"({stored:,})", stored - whole))
    kept = [(b, v) for b, v in stored_buffers if b.endswith("(persistent)")]
    free = [(b, v) for b, v in stored_buffers if not b.endswith("(persistent)")]
    if kept:
        n = sum(v for _, v in kept)
        items.append((f"persistent buffer(s) the forward reads, stored: {_names([b for b, _ in kept])}: "
                      f"+{n:,} values", n))
    if free:
        n = sum(v for _, v in free)
        items.append((f"{SPEC_FREE}non-persistent buffer(s) stored: {_names([b for b, _ in free])}: "
                      f"+{n:,} values", n))
    parametrized = {c.split(".parametrizations.")[0] + "." + c.split(".parametrizations.")[1].split(".")[0]: c
                    for c in rest if ".parametrizations." in c}
    results = [(n, v) for n, v in derived if n in parametrized]
    if results:
        sources = [c for c in rest if c in parametrized.values() or any(
            c.startswith(n.rsplit(".", 1)[0] + ".parametrizations." + n.rsplit(".", 1)[1] + ".") for n, _ in results)]
        d, r = sum(v for _, v in results), sum(numel[c] for c in sources)
        items.append((f"parametrized weight(s) priced by their result (spec §3: weight norm and the like; its "
                      f"scale costs nothing): {_names([n for n, _ in results])} ({d:,} values) in place of "
                      f"{_names(sources)} ({r:,} values)", d - r))
        derived = [(n, v) for n, v in derived if n not in parametrized]
        rest = [c for c in rest if c not in sources]
    if derived or rest:
        d = sum(v for _, v in derived)
        r = sum(numel[c] for c in rest)
        affine = all(n.endswith((".scale", ".shift")) for n, _ in derived) and d == r
        items.append((("" if affine else SPEC_SOURCES)
                      + f"constant(s) computed from weights stored as their result ({_names([n for n, _ in derived])}: "
                      f"{d:,} values) in place of the parameter(s) read only through them "
                      f"({_names(rest) if rest else 'none'}: {r:,} values)"
                      + (" (unfolded batch norms as scale and shift, 2·C each)" if affine else ""), d - r))
    return items, set(never) | set(rest) | partial_names


def _names(names: list[str], most: int = 4) -> str:
    shown = ", ".join(f"`{n}`" for n in names[:most])
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")


# ---------------------------------------------------------------------- one model
def _split(inputs: Any) -> tuple[tuple, dict]:
    if isinstance(inputs, dict):
        return (), inputs
    if isinstance(inputs, torch.Tensor):
        return (inputs,), {}
    if isinstance(inputs, tuple) and inputs and all(isinstance(d, int) for d in inputs):
        g = torch.Generator().manual_seed(0)
        return (torch.randn(*inputs, generator=g),), {}
    return tuple(inputs), {}


def measure(name: str, source: str, model: torch.nn.Module, inputs: Any) -> Row:
    """Count ``model`` on ``inputs`` (keyword dict, tensor(s) or shape) and compare with the peers."""
    row = Row(name, source)
    row.torch_params = sum(p.numel() for p in model.parameters())
    args, kwargs = _split(inputs)
    given: Any = kwargs if kwargs else (args[0] if len(args) == 1 else args)
    start = time.perf_counter()
    try:
        report, events = count_with_events(model, given)
    except MicronetError as exc:
        row.error = f"{type(exc).__name__}: {_first_line(exc)}"
        row.strict = "no (the count failed)"
        row.seconds = time.perf_counter() - start
        return row
    for ops in report.unsupported.values():
        for op, calls in ops.items():
            row.unsupported[op] = row.unsupported.get(op, 0) + calls
    if row.unsupported:
        row.strict = "no (unsupported operators)"
    else:
        try:
            ms.count(model, given, strict=True)
            row.strict = "yes"
        except MicronetError as exc:
            row.strict = f"no ({type(exc).__name__}: {_first_line(exc)})"
    row.params = report.params
    row.notes = list(report.warnings)
    batch = report.batch_size
    ours_dense: dict[str, float] = defaultdict(float)
    ours_attention: dict[str, float] = defaultdict(float)
    for e in events:
        fam = family(e.op)
        if fam in _DENSE:
            ours_dense[e.module] += e.mults / batch
        elif fam == "attention":
            ours_attention[e.module] += e.mults / batch
    row.ms_dense = sum(ours_dense.values())
    row.ms_attention = sum(ours_attention.values())
    try:
        peer = flop_counter(model, args, kwargs)
    except Exception as exc:  # noqa: BLE001 - the peer failing is a result
        row.mac_items.append(f"FlopCounterMode failed ({type(exc).__name__}: {_first_line(exc)})")
        row.param_items, _ = explain_params(model, report)
    else:
        row.param_items, _ = explain_params(model, report, peer.recorder.read)
        row.fcm_dense = peer.total_dense / batch
        shapes = [s for calls in peer.recorder.attention.values() for s in calls]
        products, extra = attention_products(shapes)
        row.attention_products, row.attention_extra = products / batch, extra / batch
        row.mac_items = explain_macs(row, model, report, ours_dense, ours_attention, peer)
    row.seconds = time.perf_counter() - start
    return row


#: Products that torch's FlopCounterMode has no formula for (it counts them 0).
_NO_PEER_FORMULA = ("aten._grouped_mm",)


def explain_macs(row: Row, model: torch.nn.Module, report: ms.Report, ours_dense: dict[str, float],
                 ours_attention: dict[str, float], peer: Peer) -> list[str]:
    """Module by module, why micronet-score's conv/matmul and attention multiplications differ from
    FlopCounterMode's and from the attention calls' products (plus scaling and softmax)."""
    batch = report.batch_size
    modules = dict(model.named_modules())
    zero_warning = next((w for w in report.warnings if "entirely zero" in w), "")
    constant: list[tuple[str, float]] = []
    scaled: list[tuple[str, float]] = []
    zeros: list[tuple[str, float]] = []
    no_formula: list[tuple[str, float]] = []
    unexplained: list[str] = []
    attention_rows = 0
    for name in sorted(set(ours_dense) | set(peer.dense) | set(ours_attention) | set(peer.recorder.attention)):
        products, extra = attention_products(peer.recorder.attention.get(name, []))
        theirs = peer.dense.get(name, 0) / batch + (products + extra) / batch
        ours = ours_dense.get(name, 0) + ours_attention.get(name, 0)
        scaling = peer.recorder.scaling.get(name, 0) / batch
        if ours == theirs:
            attention_rows += bool(products)
            continue
        module = modules.get(name)
        if ours == 0 and name not in peer.recorder.reads_inputs:
            constant.append((name, theirs))
        elif ours == theirs + scaling:
            scaled.append((name, scaling))
        elif ours < theirs and module is not None and _zero_skip(module, peer.dense.get(name, 0) / batch) == theirs - ours:
            zeros.append((name, theirs - ours))
        elif theirs == 0 and ours > 0:
            no_formula.append((name, ours))
        else:
            unexplained.append(f"`{name or '(root)'}` micronet-score {_f(ours)}, FlopCounterMode and the "
                               f"attention calls {_f(theirs)}")
    items = []
    if constant:
        n = sum(v for _, v in constant)
        items.append(f"-{_f(n)}: {len(constant)} module(s) whose products read no value that depends on the "
                     f"inputs (traced independently: weights and constants alone) "
                     f"({_names([m for m, _ in constant])}): load-time work, free (spec §3)")
    if scaled:
        n = sum(v for _, v in scaled)
        items.append(f"+{_f(n)}: scaled products (`baddbmm`/`addmm` with alpha ≠ 1 or beta ≠ 0, 1) in "
                     f"{_names([m for m, _ in scaled])}: 1 mult per output element for each scale, which "
                     "FlopCounterMode leaves out")
    if zeros:
        n = sum(v for _, v in zeros)
        items.append(f"-{_f(n)}: multiplications by weights that are exactly zero skipped (spec §3: sparsity "
                     f"is read from the tensors) in {_names([m for m, _ in zeros])}: zero weights x the dense "
                     "MACs per weight value (FlopCounterMode counts dense)"
                     + (f"; report warning: {zero_warning}" if zero_warning else ""))
    if no_formula:
        # products FlopCounterMode has no formula for: what micronet-score charged those operators in all
        n = sum(v for _, v in no_formula)
        charged = sum(report.by_operator[op].mults for op in _NO_PEER_FORMULA if op in report.by_operator)
        if n == charged:
            items.append(f"+{_f(n)}: {', '.join(f'`{op}`' for op in _NO_PEER_FORMULA if op in report.by_operator)} "
                         f"in {_names([m for m, _ in no_formula])}, which FlopCounterMode has no formula for "
                         "(it counts 0); micronet-score charges one dot product per output element")
        else:
            unexplained += [f"`{m or '(root)'}` micronet-score {_f(v)}, FlopCounterMode and the attention calls 0"
                            for m, v in no_formula]
    items += [f"UNEXPLAINED {u}" for u in unexplained]
    for op in sorted(row.unsupported):
        if family(op) in _DENSE:
            theirs = peer.by_op.get(op, 0) / batch
            items.append(f"`{op}` has no cost in micronet-score (unsupported), so its multiplications are missing "
                         f"from the count; FlopCounterMode counts {_f(theirs)} for it"
                         + (" (it has no formula either)" if not theirs else ""))
    if row.ms_attention or row.attention_products:
        items.append(f"attention: Q·Kᵀ and P·V products {_f(row.attention_products)} (from the kernel calls' "
                     f"shapes) + q/k scaling and softmax {_f(row.attention_extra)}; FlopCounterMode counts none of "
                     "it (no formula for the CPU attention kernel)")
    return items


def _zero_skip(module: torch.nn.Module, dense: float) -> float:
    """The multiplications a conv/linear module's exact zero weights save: each weight value is used
    dense / weight.numel() times (once per output position), so zeros x that."""
    weights = [p for p in module.parameters(recurse=False) if p.dim() > 1]
    if len(weights) != 1 or not weights[0].numel():
        return -1
    w = weights[0]
    return int((w == 0).sum()) * dense / w.numel()


def _short(error: str) -> str:
    """An error as its class and the operator it names (the whole message is in the model's section)."""
    kind = error.split(":", 1)[0]
    op = re.search(r"operator '([^']+)'", error)
    return f"{kind} at `{op.group(1)}`" if op else error[:120]


def _pct(part: float, whole: float) -> str:
    return f"{100 * part / whole:+.3g} %" if whole else "n/a"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""


def _f(v: float | None) -> str:
    if v is None:
        return "–"
    return f"{v:,.0f}" if float(v).is_integer() else f"{v:,.2f}"


# ---------------------------------------------------------------------- the lists
def hf_rows(only: set[str] | None) -> list[Row]:
    import _hf_architectures as hf

    rows = []
    for label, config, kwargs, kind in hf.ARCHITECTURES:
        if only and label not in only:
            continue
        try:
            model = hf.build(config, kwargs)
            inputs = hf.inputs(kind, model)
        except Exception as exc:  # noqa: BLE001
            rows.append(Row(label, "transformers", error=f"build failed: {type(exc).__name__}: "
                                                         f"{_first_line(exc)}", strict="no"))
            continue
        rows.append(measure(label, "transformers", model, inputs))
        _progress(rows[-1])
    return rows


def zoo_rows(only: set[str] | None) -> list[Row]:
    from micronet_score import models

    rows = []
    for name in models.names():
        if only and name not in only:
            continue
        model = models.build(name, seed=0).eval()
        rows.append(measure(name, "zoo", model, models.example_inputs(name, model)))
        _progress(rows[-1])
    return rows


def _progress(row: Row) -> None:
    state = "ok" if row.ok else "SHORT"
    print(f"{state:5} {row.name:45} {row.seconds:6.1f}s {row.error or ''} "
          f"{', '.join(row.unsupported) if row.unsupported else ''}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------- the page
def summary(rows: list[Row]) -> list[str]:
    hf = [r for r in rows if r.source == "transformers"]
    zoo = [r for r in rows if r.source == "zoo"]
    clean = [r for r in rows if not r.error and not r.unsupported]
    strict = [r for r in rows if r.strict == "yes"]
    lines = [
        f"- **{len(hf)} transformers architectures** and **{len(zoo)} zoo models** counted; "
        f"**{len(clean)} of {len(rows)}** with nothing unsupported, **{len(strict)} of {len(rows)}** passing "
        f"`strict=True`, **{sum(r.ok for r in rows)} of {len(rows)}** meeting every target (counted, nothing "
        "unsupported, strict passes, every MAC and parameter difference explained, nothing departing from spec "
        "§3's stored-tensor rule).",
    ]
    failed = [r for r in rows if r.error]
    if failed:
        lines.append("- Count failed: " + "; ".join(f"{r.name} ({_short(r.error)})" for r in failed) + ".")
    ops: dict[str, list[str]] = defaultdict(list)
    for r in rows:
        for op in r.unsupported:
            ops[op].append(r.name)
    if ops:
        lines.append("- Unsupported operators: " + "; ".join(
            f"`{op}` ({', '.join(names)})" for op, names in sorted(ops.items())) + ".")
    mac = [r for r in rows if r.fcm_dense is not None]
    if mac:
        worst = max(mac, key=lambda r: abs(r.ms_dense - r.fcm_dense) / max(r.fcm_dense, 1))
        gap = worst.ms_dense - worst.fcm_dense
        if gap:
            why = "; ".join(i for i in worst.mac_items if not i.startswith("attention:"))
            lines.append(f"- Largest conv/matmul MAC difference from FlopCounterMode: **{worst.name}**, "
                         f"{_f(gap)} ({_pct(gap, worst.fcm_dense)}): {why}.")
        else:
            lines.append("- Conv and matrix-product MACs equal FlopCounterMode's (FLOPs / 2) on every model.")
        n = sum(1 for r in mac if r.ms_dense == r.fcm_dense)
        lines.append(f"- Conv/matmul MACs equal to FlopCounterMode's on {n} of {len(mac)} models; attention "
                     "equal to its calls' products plus scaling and softmax on "
                     f"{sum(1 for r in mac if r.ms_attention == r.attention_products + r.attention_extra)} "
                     f"of {len(mac)}.")
    counted = [r for r in rows if not r.error]
    if counted:
        worst = max(counted, key=lambda r: abs(r.params - r.torch_params) / max(r.torch_params, 1))
        gap = worst.params - worst.torch_params
        if gap:
            main = max(worst.param_items, key=lambda i: abs(i[1]))[0] if worst.param_items else "unexplained"
            lines.append(f"- Largest parameter difference from `sum(p.numel())`: **{worst.name}**, {gap:+,} "
                         f"({_pct(gap, worst.torch_params)}), mostly: {main}.")
        departs = [r.name for r in counted if any(t.startswith("≠") for t, _ in r.param_items)]
        if departs:
            lines.append(f"- Parameter counts departing from spec §3's stored-tensor rule (items marked ≠ below): "
                         f"{len(departs)} of {len(counted)}: {', '.join(departs)}.")
        loose = [r.name for r in counted if r.param_residual]
        lines.append(f"- Parameter differences explained by rule on {len(counted) - len(loose)} of "
                     f"{len(counted)} counted models" + (f" (unexplained: {', '.join(loose)})" if loose else "")
                     + ".")
    return lines


def page(rows: list[Row], machine: dict[str, Any], seconds: float) -> str:
    import transformers

    out = [
        "# Coverage: which architectures micronet-score counts",
        "",
        "Generated by `python benchmarks/coverage.py` (do not edit by hand; `--check` exits 1 when a model falls",
        "short). Every Hugging Face transformers model below is built from a small config (hidden size 32, 2",
        "layers, 16 tokens or a 32x32 / 64x64 image; no weights downloaded, a fresh initialisation from seed 0) with",
        "`AutoModel.from_config`; the zoo's models are built at their own size. Each is counted once with",
        "`ms.count` and once with `strict=True`, and compared with `torch.utils.flop_counter.FlopCounterMode` on",
        "the same inputs and with `sum(p.numel() for p in model.parameters())`.",
        "",
        "## Summary",
        "",
        *summary(rows),
        "",
        "## Machine",
        "",
        f"- {machine['cpu']}, {machine['cores']} cores; Python {machine['python']}, torch {machine['torch']}, "
        f"transformers {transformers.__version__}; micronet-score at commit {machine['git_commit']}",
        f"- {machine['date']}; the whole page took {seconds:.0f} s",
        "",
        "## Models",
        "",
        "MACs are per example. *conv/matmul*: micronet-score's multiplications in the convolution and",
        "matrix-product operators, against FlopCounterMode's FLOPs / 2 (both dense unless a weight is zero).",
        "*attention*: micronet-score's attention unit, against the Q·Kᵀ and P·V products computed from the shapes",
        "of each attention kernel call (the unit adds the q/k scaling and the softmax). *params*: micronet-score's",
        "stored values against `sum(p.numel())` (tied weights once in both); the difference is split by rule",
        "below the table.",
        "",
        "| model | source | unsupported operators | strict | params (ms / torch) | conv/matmul MACs (ms / FCM) "
        "| attention MACs (ms / products) | s |",
        "|---|---|---|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        unsupported = ", ".join(f"`{op}` ×{n}" for op, n in sorted(r.unsupported.items())) or (
            "(count failed)" if r.error else "none")
        out.append(
            f"| {r.name} | {r.source} | {unsupported} | {r.strict.split(' (')[0] if r.strict else ''} "
            f"| {_f(r.params)} / {_f(r.torch_params)} | {_f(r.ms_dense)} / {_f(r.fcm_dense)} "
            f"| {_f(r.ms_attention)} / {_f(r.attention_products)} | {r.seconds:.1f} |")
    out += ["", "## Differences, explained", ""]
    for r in rows:
        out.append(f"### {r.name}")
        out.append("")
        if r.error:
            out.append(f"- The count failed: {r.error}")
        if r.strict and r.strict != "yes":
            out.append(f"- strict: {r.strict}")
        if not r.error:
            gap = r.params - r.torch_params
            out.append(f"- Parameters: {_f(r.params)} stored vs {_f(r.torch_params)} in torch ({gap:+,})"
                       + (": equal." if not gap and not r.param_items else ":"))
            for text, value in r.param_items:
                out.append(f"  - {value:+,}: {text}")
            if r.param_residual:
                out.append(f"  - {r.param_residual:+,}: UNEXPLAINED")
            if r.fcm_dense is not None:
                gap = r.ms_dense - r.fcm_dense
                out.append(f"- conv/matmul MACs: {_f(r.ms_dense)} vs FlopCounterMode {_f(r.fcm_dense)}"
                           + (": equal." if not gap else f" ({'+' if gap > 0 else ''}{_f(gap)}), by module (conv/matmul and attention together):"))
            for item in r.mac_items:
                out.append(f"  - {item}" if not item.startswith("attention:") else f"- {item}")
            for note in r.notes:
                out.append(f"- Report warning: {note}")
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if a model falls short")
    parser.add_argument("--only", nargs="*", help="only these models (labels as on the page)")
    parser.add_argument("--no-zoo", action="store_true", help="leave out the zoo's models")
    parser.add_argument("--out", type=Path, default=OUT, help=f"the page to write (default {OUT})")
    args = parser.parse_args(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    machine = _common.machine()
    only = set(args.only) if args.only else None
    start = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):
        rows = hf_rows(only) + ([] if args.no_zoo else zoo_rows(only))
    seconds = time.perf_counter() - start
    for line in summary(rows):
        print(line)
    if args.check:
        return 0 if all(r.ok for r in rows) else 1
    args.out.write_text(page(rows, machine, seconds))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
