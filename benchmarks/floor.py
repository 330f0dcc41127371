"""What any counter built like micronet-score pays before it counts anything: the floor under ``count``.

    .venv/bin/python benchmarks/floor.py [--models NAME ...] [--repeats 15] [--threads 1] [--no-save]

For each model, in one process and in interleaved rounds (so the machine's load drifts over all rows alike),
the time of:

- the plain forward (eval, ``no_grad``): the benchmark's unit;
- the forward with two do-nothing global module hooks (what charging operators to modules costs at least);
- the forward under a do-nothing ``TorchDispatchMode`` (every aten operator through Python, as ptflops' aten
  backend and FlopCounterMode do);
- the same plus a do-nothing ``TorchFunctionMode`` and the hooks: the machinery ``count`` runs, with nothing
  recorded;
- that machinery with the activations on the meta device, their shapes from micronet-score's shape table and
  the weights left real (what ``count`` does with shapes alone), still recording nothing;
- ``micronet_score.count`` with its per-operator accounting reduced to marking each output as input-dependent
  (no cost, event, width, stored tensor or fold fact recorded): everything else of a count still runs (index,
  snapshot and restore, the weight reads made at the start, module attribution, the function mode and its
  lowerings, the shape table, the report). This is the floor of micronet-score's own design, the least any
  count built this way can take, whatever its bookkeeping is made to cost. The reads made at the start are
  those of the small weights and, at several threads, of the large ones too; at one thread a large weight is
  read when an operator prices it, which this row skips (densenet-seed has no large weight);
- ``micronet_score.count`` itself.

Each row's ratio to the forward says how much of a count's ratio is the machinery (the same for any counter
that sees aten operators from Python and charges them to modules) and how much is micronet-score's own
bookkeeping (taint, stored tensors, widths, fold facts, the snapshot, the weight reads and the report).
Results: ``results/floor.md`` and ``.json`` (``floor_threads<N>`` for N > 1), with the machine.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, machine, machine_markdown, median, write_json  # noqa: E402
from run import MODELS, build_model  # noqa: E402

import micronet_score as ms  # noqa: E402
from micronet_score.counting.meta import MetaExecution  # noqa: E402
from micronet_score.counting.tracer import Tracer  # noqa: E402

DEFAULT_MODELS = ["resnet18-cifar", "densenet-seed", "efficientnet-b0"]


class _Dispatch(TorchDispatchMode):
    """Every aten operator through Python, run as it is."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        return func(*args, **(kwargs or {}))


class _Function(TorchFunctionMode):
    """Every torch function through Python, run as it is."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        return func(*args, **(kwargs or {}))


class _Shapes(MetaExecution, TorchDispatchMode):
    """Operators on meta activations get their output from micronet-score's shape table (real weights as they
    are); operators on weights alone run as they are. Nothing is recorded."""

    def __init__(self) -> None:
        TorchDispatchMode.__init__(self)
        self._init_meta(True)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        for a in (*args, *kwargs.values()):
            if isinstance(a, torch.Tensor) and a.is_meta or \
                    isinstance(a, (list, tuple)) and any(isinstance(v, torch.Tensor) and v.is_meta for v in a):
                return self._run_shapes(func, args, kwargs)
        return func(*args, **kwargs)


def _mark_only(self: Tracer, func: Any, op: Any, args: tuple, kwargs: dict, tensors: list, infos: list,
               out: Any) -> None:
    """Stands in for ``Tracer._account``: the output depends on the inputs, nothing else is recorded."""
    if isinstance(out, torch.Tensor):
        self.dep[out] = (-1, None)
    else:
        self._mark(out, -1, None)


class _Hooks:
    """Two do-nothing global module hooks (forward pre and post) while the block runs."""

    def __enter__(self) -> _Hooks:
        self.handles = (torch.nn.modules.module.register_module_forward_pre_hook(lambda m, a: None),
                        torch.nn.modules.module.register_module_forward_hook(lambda m, a, o: None))
        return self

    def __exit__(self, *exc: Any) -> None:
        for h in self.handles:
            h.remove()


def _rows(model: torch.nn.Module, x: torch.Tensor) -> dict[str, Any]:
    meta_x = x.to("meta")

    def forward() -> None:
        with torch.no_grad():
            model(x)

    def hooks() -> None:
        with torch.no_grad(), _Hooks():
            model(x)

    def dispatch() -> None:
        with torch.no_grad(), _Dispatch():
            model(x)

    def machinery() -> None:
        with torch.no_grad(), _Hooks(), _Function(), _Dispatch():
            model(x)

    def shapes() -> None:
        with torch.no_grad(), _Hooks(), _Function(), _Shapes():
            model(meta_x)

    def design() -> None:
        account = Tracer._account
        Tracer._account = _mark_only
        try:
            ms.count(model, x)
        finally:
            Tracer._account = account

    def count() -> None:
        ms.count(model, x)

    return {
        "forward": (forward, "plain forward (eval, no_grad)"),
        "hooks": (hooks, "+ two do-nothing global module hooks"),
        "dispatch": (dispatch, "forward under a do-nothing TorchDispatchMode"),
        "machinery": (machinery, "hooks + do-nothing TorchFunctionMode + TorchDispatchMode"),
        "shapes": (shapes, "the same, activations on meta, shapes from micronet-score's table"),
        "design": (design, "micronet_score.count, per-operator accounting reduced to marking outputs"),
        "count": (count, "micronet_score.count"),
    }


def measure(name: str, repeats: int) -> dict[str, Any]:
    model = build_model(name)
    x = torch.randn(MODELS[name], generator=torch.Generator().manual_seed(0))
    rows = _rows(model, x)
    times: dict[str, list[float]] = {key: [] for key in rows}
    for fn, _ in rows.values():  # warm-up: first calls import and cache
        fn()
        fn()
    for _ in range(repeats):
        for key, (fn, _) in rows.items():
            start = time.perf_counter()
            fn()
            times[key].append(time.perf_counter() - start)
    forward = median(times["forward"])
    return {key: {"what": rows[key][1], "median_s": median(v), "min_s": min(v),
                  "ratio": median(v) / forward, "ratio_min": min(v) / min(times["forward"])}
            for key, v in times.items()}


def markdown(results: dict[str, Any], meta: dict[str, Any], repeats: int) -> str:
    lines = ["# The floor under `count`: the machinery any such counter pays", "",
             f"Generated by `benchmarks/floor.py` (`--repeats {repeats}`, `--threads {meta['torch_threads']}`).",
             "", machine_markdown(meta).rstrip(),
             "- Medians of interleaved rounds (one run of every row per round); ratio = median / median of the "
             "plain forward, in brackets min / min.", ""]
    models = list(results)
    lines.append("| what runs | " + " | ".join(models) + " |")
    lines.append("|---|" + "---:|" * len(models))
    for key, row in results[models[0]].items():
        cells = [f"{results[m][key]['median_s'] * 1e3:.1f} ms ({results[m][key]['ratio']:.1f}x; "
                 f"{results[m][key]['ratio_min']:.1f}x)" for m in models]
        lines.append(f"| {row['what']} | " + " | ".join(cells) + " |")
    lines += ["", "The row before the last is micronet-score's design with its per-operator bookkeeping taken away "
              "(each output only marked as input-dependent): what is left is the index, the snapshot and restore, "
              "the weight reads made at the start, module attribution, the function mode and its lowerings, the "
              "shape table and an empty report. No bookkeeping, however fast, takes a count below it; the last row "
              "minus it is what the bookkeeping costs. The reads made at the start are those of the small weights "
              "and, at several threads, of the large ones too; at one thread the large weights are read when an "
              "operator prices them, which that row skips (densenet-seed has no large weight).", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=DEFAULT_MODELS, choices=list(MODELS))
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results = {name: measure(name, args.repeats) for name in args.models}
    meta = machine()
    text = markdown(results, meta, args.repeats)
    print(text)
    if not args.no_save:
        stem = "floor" if args.threads == 1 else f"floor_threads{args.threads}"
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / f"{stem}.md").write_text(text)
        write_json(RESULTS / f"{stem}.json", {"machine": meta, "repeats": args.repeats, "results": results})


if __name__ == "__main__":
    main()
