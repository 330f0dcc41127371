"""Throughput and peak memory of ``micronet_score.checkpoint.scan_checkpoint`` on a multi-GB sparse checkpoint.

Writes one sparse checkpoint in both formats (safetensors and torch zip) to a temporary directory, scans each
in a fresh subprocess (so the peak resident set is the scan's own), and appends the results to
``benchmarks/results/checkpoint_throughput.{md,json}``. The files are deleted at the end.

    .venv/bin/python benchmarks/checkpoint_throughput.py [--size-gb 2.5] [--dtypes float32,bfloat16]
        [--sparsity 0.6] [--repeats 3] [--chunk-mb 16] [--threads 1,2] [--dir /tmp]

"warm": the file is in the page cache (the child reads it once before timing). "cold": the file's pages are
dropped from the page cache first (posix_fadvise(DONTNEED) on that file only), so the scan reads the disk.
Peak RSS: VmHWM of the scanning process minus its VmRSS just before the scan, after resetting VmHWM through
/proc/self/clear_refs (Linux); the absolute VmHWM is recorded too. (ru_maxrss of the child is kept in the JSON
only: Linux carries the parent's RSS at fork into it, so it overstates the child.) Each setting runs with 1 and
with 2 torch threads: on this shared 2-core machine two threads are fastest when the other core is idle and
erratic when it is not.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    RESULTS,
    append_json_list,
    machine,
    machine_markdown,
    median,
    proc_status_kib,
    reset_peak_rss,
    run_on_snapshot,
)

# A LLaMA-like layout: an embedding, then attention and MLP matrices until the size is reached.
_SHAPES = [(32000, 4096)] + [(4096, 4096)] * 4 + [(11008, 4096)] * 3


def _child(path: str, chunk_mb: int, cold: bool, threads: int) -> None:
    """Scan ``path`` once and print a JSON line: seconds, bytes, non-zeros, memory."""
    import resource

    import torch

    from micronet_score.checkpoint import scan_checkpoint

    torch.set_num_threads(threads)
    if cold:  # drop this file's pages from the page cache
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
    else:  # read it once so that it is all in the page cache
        buf = bytearray(16 << 20)
        with open(path, "rb", buffering=0) as f:
            while f.readinto(buf):
                pass
        del buf
    before = proc_status_kib("VmRSS")
    reset = reset_peak_rss()
    start = time.perf_counter()
    stats = scan_checkpoint(path, chunk_bytes=chunk_mb << 20)
    seconds = time.perf_counter() - start
    hwm = proc_status_kib("VmHWM")
    print(json.dumps({
        "seconds": seconds,
        "scan_seconds": stats.seconds,
        "bytes_read": stats.bytes_read,
        "file_bytes": stats.file_bytes,
        "numel": stats.numel,
        "nonzeros": stats.nonzeros,
        "tensors": len(stats.tensors),
        "rss_before_mib": before / 1024 if before else None,
        "peak_rss_mib": hwm / 1024 if hwm else None,
        "peak_rss_delta_mib": (hwm - before) / 1024 if (hwm and before and reset) else None,
        "ru_maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }))


def _write(directory: Path, size_bytes: int, dtype_name: str, sparsity: float, seed: int) -> tuple[dict, int]:
    import safetensors.torch
    import torch

    dtype = getattr(torch, dtype_name)
    itemsize = torch.empty((), dtype=dtype).element_size()
    gen = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}
    total = nonzeros = 0
    i = 0
    while total < size_bytes:
        rows, cols = _SHAPES[0] if i == 0 else _SHAPES[1 + (i - 1) % (len(_SHAPES) - 1)]
        remaining = (size_bytes - total) // (cols * itemsize)
        rows = max(1, min(rows, remaining))
        t = torch.randn(rows, cols, generator=gen).to(dtype)
        t[torch.rand(rows, cols, generator=gen) < sparsity] = 0  # unstructured magnitude-free pruning
        nonzeros += int(torch.count_nonzero(t))
        state[f"layers.{i}.weight" if i else "embed.weight"] = t
        total += t.nbytes
        i += 1
    paths = {"safetensors": directory / f"sparse-{dtype_name}.safetensors",
             "torch-zip": directory / f"sparse-{dtype_name}.pt"}
    safetensors.torch.save_file(state, str(paths["safetensors"]))
    torch.save(state, paths["torch-zip"])
    del state
    for p in paths.values():  # flush, so that a cold run can drop the pages
        fd = os.open(p, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    return paths, nonzeros


def _measure(path: Path, chunk_mb: int, cold: bool, threads: int) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", str(path), "--chunk-mb", str(chunk_mb),
                          "--threads", str(threads)] + (["--cold"] if cold else []),
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-gb", type=float, default=2.5, help="tensor bytes per file, in GB (1e9)")
    parser.add_argument("--dtypes", default="float32,bfloat16")
    parser.add_argument("--sparsity", type=float, default=0.6, help="fraction of zeros")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--chunk-mb", type=int, default=16)
    parser.add_argument("--threads", default="1,2", help="torch intra-op thread counts to measure, comma-separated")
    parser.add_argument("--dir", default=None, help="where to write the temporary files (default: the system temp)")
    parser.add_argument("--no-save", action="store_true", help="print only; do not append to benchmarks/results/")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--cold", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--engine-ref", default=None, metavar="REF",
                        help="measure a clean snapshot of micronet_score at this commit (e.g. HEAD) instead of "
                             "the working tree")
    args = parser.parse_args()
    run_on_snapshot(args.engine_ref)
    if args.child:
        _child(args.child, args.chunk_mb, args.cold, int(args.threads.split(",")[0]))
        return

    info = machine()
    rows = []
    tmp = Path(tempfile.mkdtemp(prefix="ckpt-bench-", dir=args.dir))
    try:
        for dtype_name in args.dtypes.split(","):
            t0 = time.perf_counter()
            paths, expected = _write(tmp, int(args.size_gb * 1e9), dtype_name, args.sparsity, seed=0)
            print(f"wrote {dtype_name} checkpoints in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
            threads = [int(t) for t in args.threads.split(",")]
            for fmt, path in paths.items():
                runs: dict[tuple[str, int], list[dict]] = {}
                for _ in range(args.repeats):
                    for mode in ("cold", "warm"):
                        for th in threads:
                            r = _measure(path, args.chunk_mb, cold=mode == "cold", threads=th)
                            if r["nonzeros"] != expected:
                                raise SystemExit(f"{path}: scan found {r['nonzeros']} non-zeros, expected "
                                                 f"{expected}")
                            runs.setdefault((mode, th), []).append(r)
                for (mode, th), rs in runs.items():
                    seconds = median([r["scan_seconds"] for r in rs])
                    row = {
                        "format": fmt, "dtype": dtype_name, "cache": mode, "threads": th, "file_gb": rs[0]["file_bytes"] / 1e9,
                        "tensor_gb": rs[0]["bytes_read"] / 1e9, "tensors": rs[0]["tensors"],
                        "nonzeros": rs[0]["nonzeros"], "numel": rs[0]["numel"],
                        "seconds_median": seconds, "gb_per_s": rs[0]["bytes_read"] / seconds / 1e9,
                        "seconds_all": [round(r["scan_seconds"], 4) for r in rs],
                        "peak_rss_delta_mib": max(r["peak_rss_delta_mib"] or 0 for r in rs),
                        "peak_rss_mib": max(r["peak_rss_mib"] or 0 for r in rs),
                        "ru_maxrss_mib": max(r["ru_maxrss_mib"] for r in rs),
                        "rss_before_mib": median([r["rss_before_mib"] or 0 for r in rs]),
                    }
                    rows.append(row)
                    print(f"{fmt:12s} {dtype_name:9s} {mode} {th} thread(s): {row['gb_per_s']:.2f} GB/s, peak RSS +"
                          f"{row['peak_rss_delta_mib']:.0f} MiB (VmHWM {row['peak_rss_mib']:.0f} MiB)",
                          file=sys.stderr)
                path.unlink()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    entry = {"machine": info, "settings": {"size_gb": args.size_gb, "sparsity": args.sparsity,
                                           "repeats": args.repeats, "chunk_mb": args.chunk_mb}, "rows": rows}
    md = _markdown(entry)
    print(md)
    if not args.no_save:
        append_json_list(RESULTS / "checkpoint_throughput.json", entry)
        target = RESULTS / "checkpoint_throughput.md"
        header = "# Checkpoint scan throughput\n\nAppended by `benchmarks/checkpoint_throughput.py`, newest last.\n"
        existing = target.read_text() if target.exists() else header
        target.write_text(existing.rstrip("\n") + "\n\n" + md)


def _markdown(entry: dict) -> str:
    s = entry["settings"]
    lines = [
        f"## {entry['machine']['date']}",
        "",
        machine_markdown(entry["machine"]).rstrip("\n"),
        f"- Checkpoint: {s['size_gb']} GB of tensor data per file, {s['sparsity']:.0%} zeros (unstructured), "
        f"chunks of {s['chunk_mb']} MiB; median of {s['repeats']} scans, each in a fresh process",
        "- Peak RSS over baseline: VmHWM of the scanning process minus its VmRSS just before the scan (VmHWM reset "
        "through /proc/self/clear_refs); VmHWM: the whole process (interpreter, torch and the scan). "
        "warm: the file was read once just before; cold: its pages were dropped (posix_fadvise DONTNEED)",
        "",
        "| format | dtype | page cache | torch threads | file GB | tensors | seconds (median) | GB/s | "
        "peak RSS over baseline | peak RSS (VmHWM) |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in entry["rows"]:
        lines.append(
            f"| {r['format']} | {r['dtype']} | {r['cache']} | {r['threads']} | {r['file_gb']:.2f} | {r['tensors']} | "
            f"{r['seconds_median']:.3f} | {r['gb_per_s']:.2f} | {r['peak_rss_delta_mib']:.0f} MiB | "
            f"{r['peak_rss_mib']:.0f} MiB |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
