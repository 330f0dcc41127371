"""micronet-score's per-module MACs beside fvcore's ``FlopCountAnalysis`` and torch's ``FlopCounterMode``,
each difference explained.

A MAC here is one multiplication (micronet-score's ``mults``; fvcore's unit; ``FlopCounterMode``'s FLOPs
halved, since it counts a multiply-add as 2). Every count is per module *by itself* (children have their own
rows) and per example. fvcore is a dependency of the package; where it is missing its column is empty and a note says why.
"""

from __future__ import annotations

import contextlib
import logging
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from micronet_score.counting.engine import count_with_events
from micronet_score.counting.inputs import InputsLike, prepare_inputs
from micronet_score.counting.model_index import ModelIndex
from micronet_score.errors import InputError
from micronet_score.report import Report

# Operator families, by substring of the operator's name (first match wins).
_FAMILIES = (
    ("attention", ("attention",)),
    ("upsample", ("upsample", "interpolate", "grid_sampler")),  # before matmul: upsample_bilinear2d
    ("conv", ("conv",)),
    ("matmul", ("addmm", "bmm", "matmul", "linear", "einsum", "mm")),
    ("norm", ("norm",)),
    ("pool", ("pool",)),
    ("activation", ("relu", "gelu", "silu", "sigmoid", "tanh", "hardswish", "elu", "softmax", "clamp",
                    "swish", "mish", "softplus", "prelu")),
)
_FCM_FAMILIES = ("conv", "matmul", "attention")  # all FlopCounterMode prices


def family(op: str) -> str:
    """The family of an operator name (``aten.convolution``, ``aten::batch_norm``, fvcore's ``conv``)."""
    name = op.replace("aten::", "").replace("aten.", "").lower()
    for fam, keys in _FAMILIES:
        if any(k in name for k in keys):
            return fam
    return name


@dataclass(frozen=True)
class CrossCheckRow:
    """One module: MACs per example by itself in each tool (None: the tool did not run) and why they differ."""

    module: str
    type: str
    micronet: float
    fvcore: float | None
    flop_counter: float | None
    why: str


@dataclass(frozen=True)
class CrossCheck:
    """The result of :func:`cross_check`: rows for every module any tool charges, totals, and notes."""

    rows: tuple[CrossCheckRow, ...]
    micronet: float
    fvcore: float | None
    flop_counter: float | None
    batch_size: int
    notes: tuple[str, ...] = field(default=())

    def table(self, tablefmt: str = "simple") -> str:
        """The rows as a text table with a total row (see :mod:`micronet_score.render.cross_check`)."""
        from micronet_score.render.cross_check import cross_check_table

        return cross_check_table(self, tablefmt=tablefmt)

    def __str__(self) -> str:
        return self.table()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ---------------------------------------------------------------------- the three counts
def _micronet(model: torch.nn.Module, args: tuple, kwargs: dict, options: dict[str, Any]
              ) -> tuple[Report, dict[str, dict[str, float]], dict[str, set[str]]]:
    """The report, each module's own multiplications by operator, and the operator families each module was
    charged for at all (multiplications or additions)."""
    inputs: Any = kwargs if kwargs and not args else args
    report, events = count_with_events(model, inputs, **options)
    own: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    seen: dict[str, set[str]] = defaultdict(set)
    for e in events:
        seen[e.module].add(family(e.op))
        if e.mults:
            own[e.module][e.op] += e.mults / report.batch_size
    return report, own, seen


def _own(inclusive: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """Per-module counts by themselves from counts that include the descendants (what both peers report). Each
    module's count is taken from its nearest ancestor *that the peer reports*: a ModuleList iterated rather
    than called never enters FlopCounterMode, so its children come off the module above it."""
    own = {name: dict(ops) for name, ops in inclusive.items()}
    for name, ops in inclusive.items():
        if not name:
            continue
        parent = name.rpartition(".")[0]
        while parent and parent not in inclusive:
            parent = parent.rpartition(".")[0]
        if parent not in own:
            continue
        mine = own[parent]
        for op, v in ops.items():
            mine[op] = mine.get(op, 0) - v
    return {name: {op: v for op, v in ops.items() if v} for name, ops in own.items()}


def _fvcore(model: torch.nn.Module, args: tuple, kwargs: dict, batch: int, names: list[str]
            ) -> tuple[dict[str, dict[str, float]] | None, dict[str, set[str]], float | None, str]:
    """fvcore's per-module, per-operator MACs (None and the reason when it cannot run), its skipped ops and its
    own total per example."""
    try:
        from fvcore.nn import FlopCountAnalysis
    except ImportError:
        return None, {}, None, "fvcore is not installed (pip install fvcore): its column is empty"
    if kwargs:
        return None, {}, None, "fvcore traces positional inputs only: its column is empty for keyword inputs"
    try:
        analysis = FlopCountAnalysis(model, args if len(args) != 1 else args[0])
        analysis.unsupported_ops_warnings(False)
        analysis.uncalled_modules_warnings(False)
        with _quiet():
            table = analysis.by_module_and_operator()
            total = analysis.total() / batch
            inclusive_skips = {name: dict(analysis.unsupported_ops(name)) for name in names}
    except Exception as exc:  # noqa: BLE001 - a peer failing on a model is a result, not our error
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return None, {}, None, f"fvcore could not trace the model ({type(exc).__name__}: {first})"
    inclusive = {name: {op: v / batch for op, v in ops.items()} for name, ops in table.items()}
    skipped = {name: set(ops) for name, ops in _own(inclusive_skips).items()}
    return _own(inclusive), skipped, total, ""


def _flop_counter(model: torch.nn.Module, args: tuple, kwargs: dict, batch: int
                  ) -> tuple[dict[str, dict[str, float]] | None, float | None, str]:
    """FlopCounterMode's per-module, per-operator MACs (FLOPs / 2) and its own total per example."""
    from torch.utils.flop_counter import FlopCounterMode

    root = type(model).__name__
    try:
        with FlopCounterMode(display=False) as counter:
            model(*args, **kwargs)
        counts = counter.get_flop_counts()
        total = counter.get_total_flops() / 2 / batch
    except Exception as exc:  # noqa: BLE001
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return None, None, f"FlopCounterMode failed ({type(exc).__name__}: {first})"
    inclusive: dict[str, dict[str, float]] = {}
    for name, ops in counts.items():
        if name == "Global":
            continue
        key = "" if name == root else name[len(root) + 1:] if name.startswith(root + ".") else name
        inclusive[key] = {str(op): v / 2 / batch for op, v in ops.items()}
    return _own(inclusive), total, ""


@contextlib.contextmanager
def _quiet():
    logger = logging.getLogger("fvcore")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


@contextlib.contextmanager
def frozen_parameters(model: torch.nn.Module):
    """Parameters that do not require grad while a peer runs, put back after. FlopCounterMode's module tracker
    registers a gradient hook on every module input that requires grad, and fails on a parameter passed as an
    input (Hugging Face hub-kernel layers do that: "Expected gradient function to be set")."""
    flags = [(p, p.requires_grad) for p in model.parameters()]
    try:
        for p, _ in flags:
            p.requires_grad_(False)
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


@contextlib.contextmanager
def _inference(model: torch.nn.Module):
    """Eval mode, no grad, frozen parameters and a forked RNG for the peers; every module's training flag and
    parameter's requires_grad put back afterwards."""
    modes = [(m, m.training) for m in model.modules()]
    devices = [p.device.index or 0 for p in model.parameters() if p.device.type == "cuda"][:1]
    try:
        model.eval()
        with torch.random.fork_rng(devices=devices), torch.no_grad(), frozen_parameters(model):
            yield
    finally:
        for m, training in modes:
            m.training = training


# ---------------------------------------------------------------------- why they differ
def _by_family(ops: dict[str, float] | None) -> dict[str, float]:
    out: dict[str, float] = defaultdict(float)
    for op, v in (ops or {}).items():
        out[family(op)] += v
    return dict(out)


def _fmt(v: float) -> str:
    return f"{v:,.0f}" if float(v).is_integer() else f"{v:,.2f}"


def _why(name: str, report: Report, ms_ops: dict[str, float], fv_ops: dict[str, float] | None,
         fc_ops: dict[str, float] | None, skipped: set[str], zeros: int, charged: set[str]) -> str:
    """One sentence per difference between micronet-score and each peer, by operator family."""
    ms_f, fv_f, fc_f = _by_family(ms_ops), _by_family(fv_ops), _by_family(fc_ops)
    reasons: list[str] = []
    explained: set[str] = set()  # fvcore-skipped families already named
    folded = any(t.module != name and f"(folded {name})" in t.name for t in report.tensors)
    fcm_noted = False
    for fam in sorted(set(ms_f) | set(fv_f) | set(fc_f)):
        m = ms_f.get(fam, 0)
        if fv_ops is not None and fv_f.get(fam, 0) != m:
            v = fv_f.get(fam, 0)
            if fam == "norm" and m == 0 and folded:
                reasons.append(f"batch norm folded into the conv/linear before it (0 MACs; its shift becomes that "
                               f"layer's bias); fvcore counts {_fmt(v)} (normalise and affine at 1 per element each)")
            elif fam == "norm" and m:
                reasons.append(f"unfolded batch norm: micronet-score prices its per-channel affine at 1 mult (+1 add) "
                               f"per element ({_fmt(m)}), fvcore counts {_fmt(v)} (normalise and affine at 1 per "
                               "element each)")
            elif fam in ("conv", "matmul") and m < v and zeros:
                reasons.append(f"{name or 'the model'} holds {zeros:,} zero weight(s): micronet-score skips their "
                               f"multiplications ({_fmt(m)}), fvcore counts dense ({_fmt(v)})")
            elif v == 0:
                ops = ", ".join(sorted({op for op in ms_ops if family(op) == fam})) or fam
                if any(family(s) == fam for s in skipped):
                    explained.add(fam)
                    reasons.append(f"fvcore skips {ops} (no handle: listed in its unsupported operators); "
                                   f"micronet-score counts {_fmt(m)} by the rules' prices")
                else:
                    reasons.append(f"fvcore ignores {ops} (free in its tables); micronet-score counts {_fmt(m)} by "
                                   "the rules' prices")
            elif fam == "pool":
                reasons.append(f"pooling: micronet-score counts 1 mult per output (the average's division: "
                               f"{_fmt(m)}; the sums are additions), fvcore 1 per input element ({_fmt(v)})")
            elif m == 0 and fam in charged:
                reasons.append(f"{fam}: fvcore counts {_fmt(v)} (1 per element); micronet-score prices it with "
                               "additions only, no multiplication")
            elif m == 0:
                reasons.append(f"{fam}: fvcore counts {_fmt(v)}; micronet-score charges nothing here: the "
                               "operator reads weights alone (load-time work, free by the rules) or is free in "
                               "its tables")
            else:
                reasons.append(f"{fam}: micronet-score {_fmt(m)} mults (the rules' price) vs fvcore {_fmt(v)} (its "
                               "per-element rule)")
        if fc_ops is not None and fc_f.get(fam, 0) != m:
            c = fc_f.get(fam, 0)
            if fam not in _FCM_FAMILIES:
                if not fcm_noted:
                    fcm_noted = True
                    reasons.append("FlopCounterMode counts only convolutions, matrix products and attention")
            elif fam in ("conv", "matmul") and m < c and zeros:
                reasons.append(f"FlopCounterMode counts dense ({_fmt(c)} MACs = FLOPs/2), not the zero weights")
            else:
                reasons.append(f"{fam}: FlopCounterMode {_fmt(c)} MACs (FLOPs/2) vs micronet-score {_fmt(m)}")
    rest = sorted(s for s in skipped if family(s) not in explained)
    if rest and fv_ops is not None:
        reasons.append("fvcore also skips " + ", ".join(rest) + " (no multiplication in micronet-score's count "
                       "either: additions, in its adds column, or free)")
    return "; ".join(reasons) if reasons else "agree"


def cross_check(model: torch.nn.Module, inputs: InputsLike, **count_options: Any) -> CrossCheck:
    """Count ``model`` on ``inputs`` with micronet-score, fvcore and ``FlopCounterMode``; one row per module.

    ``inputs`` as for :func:`micronet_score.count` (a shape is materialised once as random values, shared by
    the three tools); ``count_options`` go to ``count``. The model is left as it was.

    >>> import torch, micronet_score as ms
    >>> model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU())
    >>> check = ms.cross_check(model, (1, 3, 10, 10))
    >>> check.rows[0].micronet, check.rows[0].flop_counter  # 3*3*3 * 8*8*8
    (13824, 13824)
    """
    if not isinstance(model, torch.nn.Module):
        raise InputError(f"cross_check() needs a torch.nn.Module, got {type(model).__name__}")
    index = ModelIndex.of(model)
    args, kwargs = prepare_inputs(index, inputs)
    if any(isinstance(t, torch.Tensor) and t.is_meta for t in (*args, *kwargs.values())):
        raise InputError("cross_check() runs the peers on real values: pass a shape or real tensors, not meta")
    report, ms_own, charged = _micronet(model, args, kwargs, count_options)
    batch = report.batch_size
    names = [n for n, _ in index.modules]
    notes: list[str] = []
    with _inference(model):
        fv_own, skipped, fv_total, fv_note = _fvcore(model, args, kwargs, batch, names)
        fc_own, fc_total, fc_note = _flop_counter(model, args, kwargs, batch)
    notes += [n for n in (fv_note, fc_note) if n]
    types = {n: type(m).__name__ for n, m in index.modules}
    modules = dict(index.modules)
    rows = []
    for name in names:
        ms_ops = ms_own.get(name, {})
        fv_ops = fv_own.get(name, {}) if fv_own is not None else None
        fc_ops = fc_own.get(name, {}) if fc_own is not None else None
        values = [sum(ms_ops.values()), sum((fv_ops or {}).values()), sum((fc_ops or {}).values())]
        if not any(values):
            continue
        zeros = sum(int((p == 0).sum()) for p in modules[name].parameters(recurse=False) if p.dim() > 1)
        rows.append(CrossCheckRow(
            module=name, type=types[name], micronet=_number(values[0]),
            fvcore=_number(values[1]) if fv_ops is not None else None,
            flop_counter=_number(values[2]) if fc_ops is not None else None,
            why=_why(name, report, ms_ops, fv_ops, fc_ops, skipped.get(name, set()), zeros,
                     charged.get(name, set()))))
    notes.append("MACs per example: micronet-score's multiplications, fvcore's count, FlopCounterMode's FLOPs / 2")
    return CrossCheck(
        rows=tuple(rows), micronet=report.mults,
        fvcore=_number(fv_total) if fv_total is not None else None,  # each peer's own total
        flop_counter=_number(fc_total) if fc_total is not None else None,
        batch_size=batch, notes=tuple(notes))


def _number(v: float) -> float:
    return int(v) if float(v).is_integer() else v
