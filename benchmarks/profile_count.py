"""Where ``micronet_score.count`` spends its time: cProfile over repeated counts of one model.

    .venv/bin/python benchmarks/profile_count.py [--model resnet18-cifar] [--repeats 20] [--threads 1] [--top 25]

Writes benchmarks/results/profile_<model>.txt: the plain-forward and count medians, then the top functions by
own time (tottime) and by cumulative time, per count (divided by the repeats).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, machine, machine_markdown, median, run_on_snapshot  # noqa: E402
from run import MODELS, build_model  # noqa: E402

import micronet_score as ms  # noqa: E402


def _short(path: str) -> str:
    if "/micronet_score/" in path:
        return "micronet_score/" + path.rsplit("/micronet_score/", 1)[1]
    for marker in ("site-packages/", "lib/python3"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="resnet18-cifar", choices=list(MODELS))
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--no-save", action="store_true")
    parser.add_argument("--engine-ref", default=None, metavar="REF",
                        help="measure a clean snapshot of micronet_score at this commit (e.g. HEAD) instead of "
                             "the working tree")
    args = parser.parse_args()
    run_on_snapshot(args.engine_ref)
    torch.set_num_threads(args.threads)
    model = build_model(args.model)
    x = torch.randn(MODELS[args.model], generator=torch.Generator().manual_seed(0))
    ms.count(model, x)  # warm-up
    forward, counts = [], []
    for _ in range(args.repeats):
        start = time.perf_counter()
        with torch.no_grad():
            model(x)
        forward.append(time.perf_counter() - start)
        start = time.perf_counter()
        ms.count(model, x)
        counts.append(time.perf_counter() - start)
    profiler = cProfile.Profile()
    start = time.perf_counter()
    profiler.enable()
    for _ in range(args.repeats):
        ms.count(model, x)
    profiler.disable()
    total = (time.perf_counter() - start) / args.repeats  # wall time per count under the profiler
    stats = pstats.Stats(profiler)

    def table(key: str) -> str:
        rows = []
        for (file, line, func), (_cc, nc, tt, ct, _callers) in sorted(
                stats.stats.items(), key=lambda kv: kv[1][2 if key == "tottime" else 3], reverse=True)[:args.top]:
            rows.append(f"| {tt / args.repeats * 1e3:8.2f} | {ct / args.repeats * 1e3:8.2f} | "
                        f"{100 * (tt if key == 'tottime' else ct) / args.repeats / total:5.1f}% | {nc // args.repeats:>7} | "
                        f"`{func}` {_short(file)}:{line} |")
        head = ("| own ms | cum ms | share of a count | calls | function |\n|---:|---:|---:|---:|---|\n")
        return head + "\n".join(rows)

    report = ms.count(model, x)
    text = io.StringIO()
    text.write(f"# Profile of `count` on {args.model} ({'x'.join(map(str, MODELS[args.model]))})\n\n")
    text.write(machine_markdown(machine()))
    text.write(f"- {args.repeats} counts under cProfile; times are per count. Without the profiler: plain forward "
               f"{median(forward) * 1e3:.1f} ms, count {median(counts) * 1e3:.1f} ms (medians); under the profiler "
               f"{total * 1e3:.1f} ms per count (the share column divides by this). cProfile charges a C function's "
               "time to it and its Python callbacks (the dispatch mode) to themselves, so nested cumulative times "
               "can overlap.\n")
    text.write(f"- The count saw {len(report.layers)} layer rows and {len(report.tensors)} stored tensors.\n\n")
    text.write(f"## Top {args.top} by own time\n\n{table('tottime')}\n\n")
    text.write(f"## Top {args.top} by cumulative time\n\n{table('cumtime')}\n")
    print(text.getvalue())
    if not args.no_save:
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / f"profile_{args.model}.txt").write_text(text.getvalue())


if __name__ == "__main__":
    main()
