"""Per-entry overhead of the leaderboard's isolation: each entry in its own child process, beside the same
entries scored one after another in one process.

    .venv/bin/python benchmarks/entry_overhead.py [--entries 6] [--images 500] [--model densenet-seed]

Makes a challenge in a temporary folder (a random CIFAR-100-shaped ``.npz`` test set, ``--entries`` entries of
the zoo model with the same weights under different names), then, each in a fresh interpreter (so each pays the
same imports):

- ``in-process``: :func:`score_entry` on every entry in turn in one process (rebuild, load, count, evaluate;
  the test set read once and cached): the work itself;
- ``board, N workers``: ``ms.leaderboard(manifest, out, workers=N)`` on an empty output folder: the same work in
  one child per entry, plus the fork server's start (once per board), each child's start, its own read of the
  test set, the key hashing, the store and the four output files.

Overhead per entry = (board wall time x workers - in-process wall time) / entries; with one worker that is the
plain difference. Writes ``results/entry_overhead.{md,json}``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, machine, machine_markdown, write_json  # noqa: E402


def make_challenge(root: Path, entries: int, images: int, model: str) -> Path:
    import numpy as np
    import torch

    import micronet_score as ms

    rng = np.random.default_rng(0)
    np.savez(root / "test.npz", x=rng.integers(0, 256, size=(images, 32, 32, 3), dtype=np.uint8),
             y=rng.integers(0, 100, size=images))
    torch.manual_seed(0)
    torch.save(ms.models.build(model, num_classes=100).state_dict(), root / "weights.pt")
    text = 'rules = "micronet-2019-cifar100"\n[data]\npath = "test.npz"\ndataset = "npz"\n'
    for i in range(entries):
        text += (f'[[entry]]\nname = "e{i}"\nmodel = "{model}"\nweights = "weights.pt"\n'
                 "args = { num_classes = 100 }\n")
    (root / "challenge.toml").write_text(text)
    return root / "challenge.toml"


def run_mode(manifest: Path, mode: str, workers: int) -> dict:
    """In this (fresh) interpreter: the wall time of one mode, from after the imports."""
    import micronet_score as ms
    from micronet_score.organizer import ranking
    from micronet_score.organizer.scoring import score_entry

    extra = {}
    if mode == "board":  # the fork server's start (once per board) and a bare child, timed apart
        from micronet_score.organizer import runner

        t0 = time.perf_counter()
        ctx = runner._context()
        for label in ("server_start_s", "bare_child_s"):
            child = ctx.Process(target=os.getpid)
            child.start()
            child.join()
            extra[label] = time.perf_counter() - t0
            t0 = time.perf_counter()
    started = time.perf_counter()
    if mode == "in-process":
        spec = ranking.read_manifest(manifest)
        data = dict(spec["data"], path=str(manifest.parent / spec["data"]["path"]))
        rows = [score_entry({"entry": e, "base": str(manifest.parent), "rules": spec["rules"], "data": data,
                             "batch_size": 256, "device": "cpu"}) for e in spec["entry"]]
    else:
        out = Path(tempfile.mkdtemp(prefix="board-"))
        rows = list(ms.leaderboard(manifest, out, workers=workers).rows)
    wall = time.perf_counter() - started
    errors = [r["error"] for r in rows if r.get("error")]
    return {"mode": mode, "workers": workers, "wall_s": wall, **extra, "entries": len(rows), "errors": errors,
            "correct": sorted({r.get("correct") for r in rows}, key=str)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entries", type=int, default=8)
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model", default="densenet-seed")
    parser.add_argument("--mode", help=argparse.SUPPRESS)
    parser.add_argument("--workers", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--manifest", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.mode:  # the child run of one mode
        print(json.dumps(run_mode(Path(args.manifest), args.mode, args.workers)))
        return
    env = dict(os.environ, OMP_NUM_THREADS="1")  # one thread per process: workers use the cores, not threads
    with tempfile.TemporaryDirectory(prefix="entry-overhead-") as tmp:
        manifest = make_challenge(Path(tmp), args.entries, args.images, args.model)
        runs: dict[tuple[str, int], list[dict]] = {}
        for _ in range(args.repeats):  # modes alternate, so drifting load touches each alike
            for mode, workers in (("in-process", 1), ("board", 1), ("board", 2)):
                proc = subprocess.run([sys.executable, __file__, "--mode", mode, "--workers", str(workers),
                                       "--manifest", str(manifest)], env=env, capture_output=True, text=True,
                                      check=True)
                runs.setdefault((mode, workers), []).append(json.loads(proc.stdout.strip().splitlines()[-1]))
                print(runs[(mode, workers)][-1], flush=True)
    results = []
    for (mode, workers), got in runs.items():
        med = {k: statistics.median(r[k] for r in got) for k in ("wall_s", "server_start_s", "bare_child_s")
               if k in got[0]}
        results.append({"mode": mode, "workers": workers, **med, "runs": got})
    base = results[0]["wall_s"]
    n = args.entries
    lines = ["# Per-entry overhead of the leaderboard's child processes\n", machine_markdown(machine()),
             f"- Board: {n} entries of `{args.model}` (num_classes 100), one weights file, a random "
             f"{args.images}-image 32x32 `.npz` test set; OMP_NUM_THREADS=1 in every process; each mode in a "
             f"fresh interpreter, timed from after its imports; medians of {args.repeats} runs, modes "
             "alternating\n",
             "| mode | fork server start (once per board) | bare child (start to exit) | board wall (server "
             "started) | per entry | overhead per entry beyond the in-process work |",
             "|---|---|---|---|---|---|"]
    for r in results:
        w = r["workers"]
        over = (r["wall_s"] * w - base) / n if r["mode"] == "board" else 0.0
        label = "in-process (score_entry, one after another)" if r["mode"] == "in-process" else \
            f"board, --workers {w}"
        server = f"{r['server_start_s']:.2f} s" if "server_start_s" in r else "-"
        bare = f"{r['bare_child_s'] * 1000:.0f} ms" if "bare_child_s" in r else "-"
        lines.append(f"| {label} | {server} | {bare} | {r['wall_s']:.2f} s | {r['wall_s'] / n:.2f} s | "
                     + ("-" if r["mode"] == "in-process" else f"{over:+.2f} s") + " |")
        r["overhead_per_entry_s"] = over
    lines.append("")
    lines.append("The board wall time is measured once the fork server runs (it imports torch once per board; "
                 "its start is the column before, to be shared among the board's entries). It includes each "
                 "child's start and its own read of the test set, hashing the data and weights for the keys, "
                 "the results store and the four output files. Overhead per entry = (board wall x workers - "
                 "in-process wall) / entries: the core-seconds held beyond the work itself. A second worker "
                 "helps only where a core is free: read it with the load average above.")
    text = "\n".join(lines) + "\n"
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "entry_overhead.md").write_text(text)
    write_json(RESULTS / "entry_overhead.json", {"machine": machine(), "entries": n, "images": args.images,
                                                 "model": args.model, "runs": results})
    print(text)


if __name__ == "__main__":
    main()
