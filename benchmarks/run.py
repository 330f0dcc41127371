"""micronet-score's ``count`` timed side by side with a plain forward pass and the peer counters.

    .venv/bin/python benchmarks/run.py [--repeats N] [--models NAME ...] [--quick] [--threads 1] [--no-save]

For each model, in one process: a plain forward pass (eval, no_grad), ``micronet_score.count``, torch's
``FlopCounterMode``, fvcore's ``FlopCountAnalysis(...).total()``, thop's ``profile`` and ptflops'
``get_model_complexity_info`` (pytorch and aten backends); thop and ptflops get a fresh deepcopy each time
(they add buffers, hooks and attributes), made outside the timed region. Each repeat runs every tool once in
turn (so the machine's load drifts over all of them alike); the table gives medians and the ratio to the
forward's median. Peak memory is measured once per tool in a fresh subprocess (see ``_memory``). The same
tools are then run once more, untimed, to collect what each counted (the MAC columns and their breakdowns).
``count`` is also timed on the meta device (model built under ``with torch.device("meta")``, counted from the
input shape). Results: benchmarks/results/benchmark.{md,json}.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import gc
import io
import json
import logging
import subprocess
import sys
import time
import tracemalloc
import warnings
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import resnet50_imagenet  # noqa: E402
from _common import (  # noqa: E402
    RESULTS,
    fmt_count,
    fmt_seconds,
    machine,
    machine_markdown,
    median,
    proc_status_kib,
    reset_peak_rss,
    run_on_snapshot,
    write_json,
)

import micronet_score as ms  # noqa: E402

MODELS: dict[str, tuple[int, ...]] = {
    "resnet18-cifar": (1, 3, 32, 32),
    "densenet-seed": (1, 3, 32, 32),
    "efficientnet-b0": (1, 3, 224, 224),
    "wrn-28-10": (1, 3, 32, 32),
    "resnet50-imagenet": (1, 3, 224, 224),
}
QUICK_MODELS = ["resnet18-cifar", "efficientnet-b0", "resnet50-imagenet"]


def build_model(name: str, device: str | None = None) -> torch.nn.Module:
    with torch.device(device) if device else contextlib.nullcontext():
        if name == "resnet50-imagenet":
            model = resnet50_imagenet.ResNet50() if device == "meta" else resnet50_imagenet.build(seed=0)
        else:
            model = ms.models.build(name, seed=None if device == "meta" else 0)
    return model.eval()


# ---------------------------------------------------------------------- the tools
@dataclass
class Tool:
    name: str
    run: Callable[[torch.nn.Module, torch.Tensor, Any], Any]
    prepare: Callable[[torch.nn.Module], Any] = lambda model: model
    note: str = ""
    available: bool = True
    error: str | None = None


@contextlib.contextmanager
def _quiet():
    """Peers print and log; keep the timings free of terminal output."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
            contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        logging.disable(logging.WARNING)
        try:
            yield
        finally:
            logging.disable(logging.NOTSET)


def _forward(model, x, ctx):
    with torch.no_grad():
        return model(x)


def _count(model, x, ctx):
    return ms.count(model, x)


def _flop_counter(model, x, ctx):
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    return counter


def _fvcore(model, x, ctx):
    from fvcore.nn import FlopCountAnalysis

    with _quiet():
        analysis = FlopCountAnalysis(model, x).unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        total = analysis.total()
    return analysis, total


def _thop(model, x, ctx):
    import thop

    with _quiet():
        return thop.profile(ctx, (x,), verbose=False, ret_layer_info=True)


def _ptflops(backend: str):
    def run(model, x, ctx):
        import ptflops

        with _quiet():
            return ptflops.get_model_complexity_info(ctx, tuple(x.shape[1:]), as_strings=False,
                                                     print_per_layer_stat=False, verbose=False, backend=backend)

    return run


def _deepcopy(model):
    return copy.deepcopy(model)


def tools() -> list[Tool]:
    found = [
        Tool("forward", _forward, note="model(x) in eval mode under no_grad"),
        Tool("micronet-score", _count, note="micronet_score.count(model, x)"),
        Tool("FlopCounterMode", _flop_counter, note="torch.utils.flop_counter.FlopCounterMode around model(x)"),
        Tool("fvcore", _fvcore, note="FlopCountAnalysis(model, x).total() (jit trace)"),
        Tool("thop", _thop, _deepcopy, note="thop.profile on a deepcopy"),
        Tool("ptflops", _ptflops("pytorch"), _deepcopy, note="get_model_complexity_info, pytorch backend, deepcopy"),
        Tool("ptflops-aten", _ptflops("aten"), _deepcopy, note="get_model_complexity_info, aten backend, deepcopy"),
    ]
    for tool, module in (("fvcore", "fvcore"), ("thop", "thop"), ("ptflops", "ptflops"), ("ptflops-aten", "ptflops")):
        try:
            __import__(module)
        except ImportError as exc:
            for t in found:
                if t.name == tool:
                    t.available, t.error = False, f"not installed ({exc})"
    return found


# ---------------------------------------------------------------------- what each tool counted
def macs_of(tool: str, model: torch.nn.Module, x: torch.Tensor, shape: tuple[int, ...]) -> dict[str, Any]:
    """Run ``tool`` once (untimed) and return its MACs and a breakdown by operator or module type."""
    if tool == "micronet-score":
        report = ms.count(model, x)
        by_type: Counter[str] = Counter()
        for row in report.layers:
            by_type[row.type] += row.mults
        conv_linear = sum(v for k, v in by_type.items() if "Conv" in k or "Linear" in k)
        return {"macs": conv_linear, "all_mults": report.mults, "all_adds": report.adds, "params": report.params,
                "breakdown": {k: v for k, v in by_type.most_common() if v}, "unit": "module type (all mults)"}
    if tool == "FlopCounterMode":
        counter = _flop_counter(model, x, None)
        per_op = {str(k): v // 2 for k, v in counter.get_flop_counts()["Global"].items()}
        return {"macs": counter.get_total_flops() / 2, "breakdown": per_op, "unit": "aten op (FLOPs / 2)"}
    if tool == "fvcore":
        analysis, total = _fvcore(model, x, None)
        return {"macs": total, "breakdown": dict(analysis.by_operator()), "unit": "operator",
                "skipped": dict(analysis.unsupported_ops())}
    if tool == "thop":
        ctx = _deepcopy(model)
        types = {name: type(m).__name__ for name, m in ctx.named_modules()}
        macs, params, info = _thop(model, x, ctx)
        by_type: Counter[str] = Counter()

        def walk(prefix: str, tree: dict) -> None:
            for name, (ops, _params, children) in tree.items():
                path = f"{prefix}.{name}" if prefix else name
                if children:
                    walk(path, children)
                elif ops:
                    by_type[types.get(path, "?")] += ops

        walk("", info)
        missing = macs - sum(by_type.values())
        if abs(missing) > 0.5:
            by_type["(own ops of container modules)"] += missing
        return {"macs": macs, "params": params, "breakdown": dict(by_type.most_common()), "unit": "module type"}
    if tool == "ptflops":
        macs, params = _ptflops("pytorch")(model, x, _deepcopy(model))
        return {"macs": macs, "params": params, "breakdown": _ptflops_breakdown(model, x), "unit": "module type"}
    if tool == "ptflops-aten":
        macs, params = _ptflops("aten")(model, x, _deepcopy(model))
        return {"macs": macs, "params": params, "breakdown": _ptflops_aten_breakdown(model, x), "unit": "aten op"}
    return {}


def _ptflops_breakdown(model, x) -> dict[str, float]:
    """Per module type, plus patched functional and tensor calls (ptflops internals; empty if they moved)."""
    try:
        from ptflops import pytorch_engine as pe
        from ptflops.pytorch_ops import MODULES_MAPPING
    except ImportError:
        return {}
    net = pe.add_flops_counting_methods(_deepcopy(model))
    net.eval()
    functional: list[float] = []
    tensor_ops: list[float] = []
    by_type: Counter[str] = Counter()
    with _quiet():
        try:
            net.start_flops_count(ost=io.StringIO(), verbose=False, ignore_list=[])
            pe.patch_functional(functional)
            pe.patch_tensor_ops(tensor_ops)
            with torch.no_grad():
                net(torch.ones(()).new_empty((1, *x.shape[1:])))
            for m in net.modules():
                if type(m) in MODULES_MAPPING and hasattr(m, "__flops__"):
                    by_type[type(m).__name__] += m.__flops__
        except Exception:  # noqa: BLE001 - internals of a peer: a missing breakdown is not fatal
            return {}
        finally:
            pe.unpatch_functional()
            pe.unpatch_tensor_ops()
            net.stop_flops_count()
    if sum(functional):
        by_type["functional calls (F.*)"] += sum(functional)
    if sum(tensor_ops):
        by_type["tensor ops (torch.add/mul/matmul)"] += sum(tensor_ops)
    return {k: v for k, v in by_type.most_common() if v}


def _ptflops_aten_breakdown(model, x) -> dict[str, float]:
    try:
        from ptflops.aten_engine import FlopCounterMode as AtenCounter
    except ImportError:
        return {}
    params = {"serialize_params": {"units": None, "precision": 2}, "print_params": {"file": io.StringIO()}}
    try:
        with _quiet():
            counter = AtenCounter(_deepcopy(model), False, False, params)
            with counter, torch.no_grad():
                model(torch.ones(()).new_empty((1, *x.shape[1:])))
        return {str(k): v for k, v in counter.flop_counts["Global"].items()}
    except Exception:  # noqa: BLE001
        return {}


# ---------------------------------------------------------------------- memory (one subprocess per tool)
def _memory(model_name: str, tool_name: str) -> dict[str, Any]:
    """In this (fresh) process: build, run the tool once to warm up, then measure one call twice over:
    peak RSS above the RSS just before the call (freed heap returned with malloc_trim, VmHWM reset through
    /proc/self/clear_refs), and the peak of Python-heap allocations (tracemalloc; tensors live outside it, in
    torch's allocator)."""
    tool = next(t for t in tools() if t.name == tool_name)
    model = build_model(model_name)
    x = torch.randn(MODELS[model_name], generator=torch.Generator().manual_seed(0))
    tool.run(model, x, tool.prepare(model))
    ctx = tool.prepare(model)
    gc.collect()
    _malloc_trim()  # hand the warm-up's freed heap back, so that the call's own peak shows
    before = proc_status_kib("VmRSS")
    reset = reset_peak_rss()
    tool.run(model, x, ctx)
    peak = proc_status_kib("VmHWM")
    ctx = tool.prepare(model)
    gc.collect()
    tracemalloc.start()
    tool.run(model, x, ctx)
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {"rss_peak_delta_mib": (peak - before) / 1024 if (reset and peak and before) else None,
            "rss_before_mib": before / 1024 if before else None,
            "tracemalloc_peak_mib": traced_peak / 2**20}


def _malloc_trim() -> None:
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def memory_in_subprocess(model_name: str, tool_name: str, threads: int) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child-memory", model_name, tool_name, "--threads", str(threads)]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        return {"error": (out.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(out.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------- the benchmark
@dataclass
class ModelResult:
    name: str
    shape: tuple[int, ...]
    params: int = 0
    times: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    macs: dict[str, dict[str, Any]] = field(default_factory=dict)
    memory: dict[str, dict[str, Any]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    reference: int | None = None  # dense conv + linear multiplications (micronet-score on the meta device)
    zero_weights: int = 0  # exact zeros in the initialised conv/linear weights


def bench_model(name: str, shape: tuple[int, ...], repeats: int, toolset: list[Tool], threads: int,
                measure_memory: bool) -> ModelResult:
    result = ModelResult(name, shape)
    model = build_model(name)
    result.params = sum(p.numel() for p in model.parameters())
    x = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    active = [t for t in toolset if t.available]
    for t in toolset:
        if not t.available:
            result.errors[t.name] = t.error or "unavailable"
    for t in list(active):  # warm-up: lazy imports, kernels, jit caches
        try:
            t.run(model, x, t.prepare(model))
        except Exception as exc:  # noqa: BLE001 - a peer failing on a model is a result, not a crash
            result.errors[t.name] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            active.remove(t)
    for _ in range(repeats):
        for t in active:
            ctx = t.prepare(model)
            gc.collect()
            start = time.perf_counter()
            t.run(model, x, ctx)
            result.times[t.name].append(time.perf_counter() - start)
            del ctx
    for t in active:
        if t.name != "forward":
            try:
                result.macs[t.name] = macs_of(t.name, model, x, shape)
            except Exception as exc:  # noqa: BLE001
                result.errors[t.name] = f"breakdown failed: {type(exc).__name__}: {exc}"
    # the meta device: build without weights, count from the shape
    meta_times, build_times, fcm_meta = [], [], []
    meta_report = None
    for _ in range(repeats):
        start = time.perf_counter()
        meta_model = build_model(name, "meta")
        build_times.append(time.perf_counter() - start)
        gc.collect()
        start = time.perf_counter()
        meta_report = ms.count(meta_model, shape)
        meta_times.append(time.perf_counter() - start)
        from torch.utils.flop_counter import FlopCounterMode

        start = time.perf_counter()
        with torch.no_grad(), FlopCounterMode(display=False):
            meta_model(torch.empty(shape, device="meta"))
        fcm_meta.append(time.perf_counter() - start)
    real = result.macs.get("micronet-score", {})
    result.zero_weights = sum(int((p == 0).sum()) for p in model.parameters() if p.dim() > 1)
    if meta_report is not None:
        result.reference = sum(row.mults for row in meta_report.layers if "Conv" in row.type or "Linear" in row.type)
    result.meta = {"count_s": median(meta_times), "count_all_s": meta_times, "build_s": median(build_times),
                   "flop_counter_s": median(fcm_meta),
                   "mults": meta_report.mults if meta_report else None,
                   "adds": meta_report.adds if meta_report else None,
                   "dense_conv_linear_mults": result.reference,
                   "real_minus_meta_mults": (real.get("all_mults", 0) - meta_report.mults) if meta_report else None,
                   "real_minus_meta_adds": (real.get("all_adds", 0) - meta_report.adds) if meta_report else None,
                   "same_as_real": bool(meta_report and real and meta_report.mults == real.get("all_mults")
                                        and meta_report.adds == real.get("all_adds"))}
    if measure_memory:
        for t in active:
            result.memory[t.name] = memory_in_subprocess(name, t.name, threads)
    return result


# ---------------------------------------------------------------------- why the MAC counts differ
def _fmt_part(label: str, value: float) -> str:
    return f"{label} {fmt_count(value)}"


def disagreement(tool: str, info: dict[str, Any], reference: int, ms_info: dict[str, Any]) -> str:
    """One sentence per tool: how far from micronet-score's conv+linear multiplications, and what makes it."""
    macs = info.get("macs")
    if macs is None:
        return "no count"
    delta = macs - reference
    breakdown = info.get("breakdown", {})
    if tool == "FlopCounterMode":
        extra = {k: v for k, v in breakdown.items() if "convolution" not in k and "mm" not in k}
        base = "conv/linear only (mm, addmm, convolution, bmm, SDPA); elementwise, norms, pooling and activations "\
               "are not counted"
        return ("agrees: " if delta == 0 else f"{delta:+,.0f}: ") + base + (
            "; also " + ", ".join(_fmt_part(k, v) for k, v in extra.items()) if extra else "")
    if tool == "fvcore":
        core = sum(v for k, v in breakdown.items() if k in ("conv", "linear", "matmul", "addmm", "bmm", "einsum"))
        extra = {k: v for k, v in breakdown.items() if k not in ("conv", "linear", "matmul", "addmm", "bmm",
                                                                   "einsum")}
        skipped = info.get("skipped", {})
        parts = [f"conv/linear {'agree' if core == reference else f'{core - reference:+,}'}"]
        if extra:
            parts.append("adds " + ", ".join(_fmt_part(k, v) for k, v in extra.items())
                         + " (batch norm at 1 per element, folded or not; micronet-score folds a batch norm that "
                           "only a conv feeds and prices the others at 1 mult + 1 add per element)"
                         * ("batch_norm" in extra))
        if skipped:
            parts.append("skips " + ", ".join(f"{k.replace('aten::', '')} x{v}" for k, v in sorted(skipped.items())))
        return "; ".join(parts)
    if tool in ("thop", "ptflops"):
        conv = sum(v for k, v in breakdown.items() if "Conv" in k or "Linear" in k)
        extra = {k: v for k, v in breakdown.items() if not ("Conv" in k or "Linear" in k)}
        parts = [f"Conv/Linear modules {'agree' if abs(conv - reference) < 0.5 else f'{conv - reference:+,.0f}'}"]
        if conv - reference > 0.5:
            parts.append("(conv and linear biases counted as MACs)" if tool == "ptflops"
                         else "(bias adds counted)")
        if extra:
            parts.append("adds " + ", ".join(_fmt_part(k, v) for k, v in extra.items()))
        if tool == "thop":
            parts.append("BatchNorm at 2 per element (normalise + affine); modules only: functional calls "
                         "(F.relu, F.avg_pool2d, residual +, torch.cat, x * s) are not seen; nn.ReLU and max-pool "
                         "cost 0; nn.SiLU/Sigmoid/Hardswish have no rule (0)")
        else:
            parts.append("modules plus patched F.* and torch.add/mul/matmul calls; Python operators "
                         "(x + y, x * s) are not seen")
            if any(k in breakdown for k in ("ReLU", "MaxPool2d", "SiLU")) and "functional calls (F.*)" in breakdown:
                parts.append("nn.ReLU/nn.MaxPool2d/nn.SiLU are counted twice, by the module hook and again by the "
                             "patched F.relu/F.max_pool2d/F.silu their forward calls (checked on "
                             "Sequential(Conv2d, ReLU, MaxPool2d): 1,792 = 768 conv + 2 x 256 ReLU + 2 x 256 pool)")
        return "; ".join(parts)
    if tool == "ptflops-aten":
        conv = sum(v for k, v in breakdown.items() if "convolution" in k or "mm" in k)
        return (f"{'agrees' if abs(conv - reference) < 0.5 else f'{conv - reference:+,.0f}'}: "
                "aten backend counts only mm, matmul, addmm, bmm and convolution"
                + (" (linear/conv bias additions counted as MACs)" if conv - reference > 0.5 else ""))
    if tool == "micronet-score":
        others = {k: v for k, v in breakdown.items() if not ("Conv" in k or "Linear" in k)}
        total = info.get("all_mults", reference)
        zeros = info.get("zero_weights", 0)
        text = "" if delta == 0 else (
            f"{delta:+,}: the initialised weights hold {zeros} exact zero(s); micronet-score reads sparsity from the "
            "weights and skips those multiplications (the meta-device count, which cannot see values, is the "
            "dense reference); ")
        return (text + f"all mults {fmt_count(total)} = conv/linear + "
                + ", ".join(_fmt_part(k, v) for k, v in others.items())
                + " (rows named after a container: functional calls in its forward); a batch norm fed by a conv "
                "alone folds into it (0 mults), the others cost 1 mult + 1 add per element; additions are counted "
                f"separately ({fmt_count(info.get('all_adds'))})")
    return ""


# ---------------------------------------------------------------------- output
def markdown(results: list[ModelResult], info: dict[str, Any], toolset: list[Tool], args) -> str:
    names = [t.name for t in toolset]
    out = ["# micronet-score against the peer counters", "",
           "Generated by `benchmarks/run.py` "
           f"(`--repeats {args.repeats}`{' --quick' if args.quick else ''}, `--threads {args.threads}`).", "",
           machine_markdown(info).rstrip("\n"),
           f"- Each cell: median of {args.repeats} runs, one run of every tool per round; "
           "ratio = median / median of the plain forward pass of the same model in the same process."]
    if any(r.memory for r in results):
        out.append("- Peak memory, measured once per tool in a fresh process after a warm-up call: **RSS** = VmHWM "
                   "minus VmRSS just before the call (freed heap handed back with malloc_trim, VmHWM reset via "
                   "/proc/self/clear_refs; everything the call makes resident, tensors included); **py** = "
                   "tracemalloc peak (Python-heap objects only: tensors live in torch's allocator and are not in "
                   "it).")
    else:
        out.append("- Peak memory not measured in this run (`--no-memory` or `--quick`).")
    out += ["- thop and ptflops run on a deepcopy made outside the timed region.", ""]
    out += ["## Time (median) and ratio to the forward pass", "",
            "| model | input | params | " + " | ".join(names) + " |",
            "|---|---|---:|" + "---:|" * len(names)]
    for r in results:
        fwd = median(r.times.get("forward", []))
        cells = []
        for n in names:
            if n in r.times:
                t = median(r.times[n])
                cells.append(fmt_seconds(t) if n == "forward" else f"{fmt_seconds(t)} ({t / fwd:.1f}x)")
            else:
                cells.append("n/a")
        out.append(f"| {r.name} | {'x'.join(map(str, r.shape))} | {r.params / 1e6:.2f}M | " + " | ".join(cells)
                   + " |")
    out += ["", "## micronet-score on the meta device", "",
            "Model built under `with torch.device(\"meta\")` (no weights), counted from the input shape "
            "(`ms.count(model, shape)`); FlopCounterMode around a meta forward for comparison. A meta model has no "
            "values, so its count is dense; the count with real weights skips the multiplications by exact-zero "
            "weights (the last columns: real minus meta, and the zeros found in the initialised conv/linear "
            "weights).", "",
            "| model | count, real weights | count, meta | meta build | FlopCounterMode, meta | mults real − meta "
            "| adds real − meta | zero weights |",
            "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        real = median(r.times.get("micronet-score", []))
        m = r.meta
        out.append(f"| {r.name} | {fmt_seconds(real)} | {fmt_seconds(m['count_s'])} | {fmt_seconds(m['build_s'])} "
                   f"| {fmt_seconds(m['flop_counter_s'])} | {m['real_minus_meta_mults']:+,} | "
                   f"{m['real_minus_meta_adds']:+,} | {r.zero_weights} |")
    if any(r.memory for r in results):
        out += ["", "## Peak memory of one call (RSS / py, MiB)", "",
                "| model | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
        for r in results:
            cells = []
            for n in names:
                mem = r.memory.get(n)
                if not mem or "error" in mem:
                    cells.append("n/a")
                else:
                    rss = mem.get("rss_peak_delta_mib")
                    cells.append(f"{rss:.0f} / {mem['tracemalloc_peak_mib']:.1f}" if rss is not None
                                 else f"? / {mem['tracemalloc_peak_mib']:.1f}")
            out.append(f"| {r.name} | " + " | ".join(cells) + " |")
    counters = [n for n in names if n != "forward"]
    out += ["", "## MACs reported", "",
            "Reference: dense conv + linear multiplications (one per MAC), from micronet-score's count on the meta "
            "device. micronet-score's column: its conv + linear multiplications with the real weights (exact zeros "
            "skipped), then all its multiplications in brackets. Peers report MACs (FlopCounterMode: FLOPs / 2).",
            "", "| model | reference | " + " | ".join(counters) + " |", "|---|---:|" + "---:|" * len(counters)]
    for r in results:
        cells = [fmt_count(r.reference)]
        for n in counters:
            info_n = r.macs.get(n)
            if not info_n:
                cells.append("n/a")
            elif n == "micronet-score":
                cells.append(f"{fmt_count(info_n['macs'])} ({fmt_count(info_n['all_mults'])})")
            else:
                cells.append(fmt_count(info_n.get("macs")))
        out.append(f"| {r.name} | " + " | ".join(cells) + " |")
    out += ["", "## Where they disagree, and why", "",
            "Differences against the dense conv + linear reference, explained from each tool's own breakdown "
            "(by operator or module type). ptflops and fvcore also run the forward with autograd on (no "
            "`torch.no_grad`), which is most of their extra memory on the 224x224 models.", "",
            "| model | tool | MACs − reference | why |", "|---|---|---:|---|"]
    for r in results:
        ref = r.reference
        if ref is None or "micronet-score" not in r.macs:
            continue
        r.macs["micronet-score"]["zero_weights"] = r.zero_weights
        for n in counters:
            info_n = r.macs.get(n)
            if not info_n:
                out.append(f"| {r.name} | {n} | n/a | {r.errors.get(n, 'not run')} |")
                continue
            delta = (info_n.get("macs") or 0) - ref
            out.append(f"| {r.name} | {n} | {delta:+,.0f} | {disagreement(n, info_n, ref, r.macs['micronet-score'])} |")
    errors = [(r.name, k, v) for r in results for k, v in r.errors.items()]
    if errors:
        out += ["", "## Errors", ""] + [f"- {m} / {t}: {e}" for m, t, e in errors]
    return "\n".join(out) + "\n"


def to_json(results: list[ModelResult], info: dict[str, Any], toolset: list[Tool], args) -> dict[str, Any]:
    return {
        "machine": info,
        "settings": {"repeats": args.repeats, "quick": args.quick, "threads": args.threads,
                     "tools": {t.name: t.note for t in toolset}},
        "models": [{
            "name": r.name, "input": list(r.shape), "params": r.params,
            "time_median_s": {k: median(v) for k, v in r.times.items()},
            "time_all_s": {k: [round(t, 6) for t in v] for k, v in r.times.items()},
            "ratio_to_forward": {k: median(v) / median(r.times["forward"]) for k, v in r.times.items()
                                 if "forward" in r.times},
            "meta": r.meta, "memory": r.memory, "macs": r.macs, "errors": r.errors,
            "dense_conv_linear_reference": r.reference, "zero_weights": r.zero_weights,
        } for r in results],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=None, help="timed runs per tool (default 7, quick 3)")
    parser.add_argument("--models", nargs="+", default=None, choices=list(MODELS), metavar="NAME",
                        help=f"models to run (default all: {', '.join(MODELS)})")
    parser.add_argument("--quick", action="store_true",
                        help=f"3 repeats, models {', '.join(QUICK_MODELS)}, no memory subprocesses")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads (default 1: steadier on a shared machine)")
    parser.add_argument("--no-memory", action="store_true", help="skip the per-tool memory subprocesses")
    parser.add_argument("--no-save", action="store_true", help="print only; do not write benchmarks/results/")
    parser.add_argument("--child-memory", nargs=2, metavar=("MODEL", "TOOL"), help=argparse.SUPPRESS)
    parser.add_argument("--engine-ref", default=None, metavar="REF",
                        help="measure a clean snapshot of micronet_score at this commit (e.g. HEAD) instead of "
                             "the working tree")
    args = parser.parse_args()
    run_on_snapshot(args.engine_ref)
    torch.set_num_threads(args.threads)
    if args.child_memory:
        print(json.dumps(_memory(*args.child_memory)))
        return
    if args.repeats is None:
        args.repeats = 3 if args.quick else 7
    names = args.models or (QUICK_MODELS if args.quick else list(MODELS))
    info = machine()
    toolset = tools()
    results = []
    for name in names:
        start = time.perf_counter()
        results.append(bench_model(name, MODELS[name], args.repeats, toolset, args.threads,
                                   measure_memory=not (args.quick or args.no_memory)))
        print(f"{name}: {time.perf_counter() - start:.0f} s", file=sys.stderr)
    md = markdown(results, info, toolset, args)
    print(md)
    if not args.no_save:
        stem = "benchmark" if args.threads == 1 else f"benchmark_threads{args.threads}"
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / f"{stem}.md").write_text(md)
        write_json(RESULTS / f"{stem}.json", to_json(results, info, toolset, args))
        print(f"wrote {RESULTS / stem}.md and {stem}.json", file=sys.stderr)


if __name__ == "__main__":
    main()
