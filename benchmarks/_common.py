"""Helpers shared by the benchmark scripts: the machine description, medians, memory probes, result files."""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def machine() -> dict[str, Any]:
    """What the numbers were measured on: CPU, cores, memory, load, versions, date, the code measured."""
    import torch

    import micronet_score

    try:
        mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        mem_gib = None
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    snapshot = os.environ.get("MS_BENCH_SNAPSHOT")
    dirty = None if snapshot else bool(_git("status", "--porcelain", "--", "micronet_score"))
    return {
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "memory_gib": round(mem_gib, 1) if mem_gib else None,
        "load_average": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "micronet_score": getattr(micronet_score, "__version__", "?"),
        "micronet_score_path": str(Path(micronet_score.__file__).parent),
        "git_commit": snapshot or _git("rev-parse", "--short", "HEAD"),
        "engine_snapshot": bool(snapshot),
        "engine_uncommitted_changes": dirty,
        "platform": platform.platform(),
    }


def machine_markdown(m: dict[str, Any]) -> str:
    load = ", ".join(str(x) for x in m.get("load_average") or [])
    return (
        f"- Date: {m['date']}\n"
        f"- CPU: {m['cpu']}, {m['cores']} cores ({m['usable_cores']} usable), {m['memory_gib']} GiB RAM; "
        f"load average at start {load}\n"
        f"- Python {m['python']}, torch {m['torch']} ({m['torch_threads']} intra-op threads), micronet-score "
        f"{m['micronet_score']} at commit {m['git_commit']}"
        + (" (a clean snapshot of that commit)" if m.get("engine_snapshot") else "")
        + (" with uncommitted engine changes" if m.get("engine_uncommitted_changes") else "")
        + "\n"
    )


def run_on_snapshot(ref: str | None) -> None:
    """With ``ref`` (e.g. ``HEAD``): run this same command again on a clean copy of ``micronet_score`` at that
    commit (``git archive``), so that edits in progress in the working tree do not leak into the numbers; exit
    with its status. Without ``ref``, or inside the re-run, return and go on."""
    if not ref or os.environ.get("MS_BENCH_SNAPSHOT"):
        return
    sha = _git("rev-parse", "--short", ref)
    if not sha:
        raise SystemExit(f"--engine-ref {ref!r} is not a commit of {ROOT}")
    tmp = Path(tempfile.mkdtemp(prefix="ms-snapshot-"))
    try:
        archive = subprocess.run(["git", "archive", sha, "micronet_score"], cwd=ROOT, capture_output=True,
                                 check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(tmp)], input=archive, check=True)
        env = dict(os.environ, MS_BENCH_SNAPSHOT=sha,
                   PYTHONPATH=os.pathsep.join(filter(None, [str(tmp), os.environ.get("PYTHONPATH")])))
        code = subprocess.run([sys.executable, *sys.argv], env=env).returncode
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    raise SystemExit(code)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def proc_status_kib(key: str) -> int | None:
    """A field of /proc/self/status in KiB (VmRSS, VmHWM, RssAnon, RssFile), or None off Linux."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def reset_peak_rss() -> bool:
    """Reset this process's VmHWM to its current RSS (Linux >= 4.0); False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def write_json(path: Path, payload: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, sort_keys=False) + "\n")


def append_json_list(path: Path, entry: Any) -> None:
    """Append ``entry`` to the JSON list stored in ``path`` (created when missing)."""
    runs: list[Any] = []
    if path.exists():
        try:
            runs = json.loads(path.read_text())
            if not isinstance(runs, list):
                runs = [runs]
        except json.JSONDecodeError:
            runs = []
    runs.append(entry)
    write_json(path, runs)


def fmt_seconds(s: float) -> str:
    if s != s:  # NaN
        return "n/a"
    if s < 1e-3:
        return f"{s * 1e6:.0f} µs"
    if s < 1:
        return f"{s * 1e3:.1f} ms"
    return f"{s:.2f} s"


def fmt_count(n: float | int | None) -> str:
    if n is None:
        return "n/a"
    return f"{int(round(n)):,}"


def python() -> str:
    return sys.executable
