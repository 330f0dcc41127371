"""Running a model's Python code (``file.py:factory`` / ``pkg.module:factory``) away from where scores are made.

Only where the organizer allows code (``allow_code = true``). The code runs in a child process (a fresh
interpreter, ``python -m micronet_score.organizer.entry_code``: nothing inherited from the scorer, not even its
main module) that is given the recipe, the weights' path and the counting
input's shape, never the test data's path. Its only job: build the model, replay the recorded compression, load
the weights with the safe loader, then ``torch.export.export`` it on an example of the organizer's input shape
(batch dimension dynamic) and ``torch.export.save`` it to a temporary ``.pt2``. The scorer then evaluates *and*
counts that exported program, so no participant code runs where the labels are. Limits: wall time
(``timeout`` seconds, the child is killed) and memory (``memory`` bytes of address space, ``RLIMIT_AS``); reaching
one is a one-line :class:`EntryCodeError`.

What remains possible: the child runs as the same operating-system user, so the code can read any file that
user can read (and use the network if the machine has one). Run code submissions in a container or as a user
that cannot read the reference data.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from micronet_score.organizer.errors import SubmissionError
from micronet_score.organizer.programs import export_model, load_program

DEFAULT_TIMEOUT_S = 600.0
DEFAULT_MEMORY_BYTES = 8 << 30
_RESULT = "result.json"
_PROGRAM = "model.pt2"
_JOB = "job.json"
#: Environment variables the child keeps (nothing else of the scorer's environment is passed on).
_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "PYTHONPATH", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
        "CUDA_VISIBLE_DEVICES", "VIRTUAL_ENV", "SYSTEMROOT")


class EntryCodeError(SubmissionError):
    """The model's code failed, hit a limit, or its process ended without an exported program."""


def gib(memory: int) -> str:
    """``8589934592`` -> ``'8 GiB'``."""
    value = memory / (1 << 30)
    return f"{value:g} GiB"


def export_in_child(recipe: Mapping[str, Any], base: str | Path, shape: Sequence[int], *,
                    timeout: float = DEFAULT_TIMEOUT_S, memory: int | None = DEFAULT_MEMORY_BYTES,
                    keep: str | Path | None = None,
                    ) -> tuple[torch.export.ExportedProgram, tuple[str, ...], dict[str, str]]:
    """Build ``recipe`` (keys ``model``, ``args``, ``compress``, ``weights``, ``bits``; paths relative to
    ``base``) in a child process and export it on a zero input of ``shape``; returns the loaded exported
    program, the weights loader's notes and ``{path: sha256}`` of the local source files the code imported (a
    row made from other code is stale). ``keep``: also copy the child's ``.pt2`` there, once it has loaded
    safely. Raises :class:`EntryCodeError` with one line on any failure."""
    work = Path(tempfile.mkdtemp(prefix="micronet-entry-"))
    try:
        job = {"recipe": dict(recipe), "base": str(Path(base).resolve()), "shape": [int(s) for s in shape],
               "memory": None if memory is None else int(memory), "parent": os.getpid()}
        (work / _JOB).write_text(json.dumps(job, default=str), encoding="utf-8")
        env = {k: v for k, v in os.environ.items() if k in _ENV}
        root = str(Path(__file__).resolve().parents[2])  # this micronet_score, importable in the child
        env["PYTHONPATH"] = os.pathsep.join([root, *([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])])
        proc = subprocess.Popen([sys.executable, "-m", __name__, str(work)], cwd=str(work), env=env,
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,  # never into --json output
                                start_new_session=True)
        try:
            code = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            _kill(proc)
            raise EntryCodeError(f"the model's code timed out after {timeout:g} s (--entry-timeout)") from None
        except BaseException:  # Ctrl-C, the scorer ending: the child ends too
            _kill(proc)
            raise
        result = _read_result(work / _RESULT)
        if result is None:
            how = f"signal {-code}" if code < 0 else f"exit status {code}"
            if code == -9:
                how += f", killed: out of memory? (limit {gib(memory) if memory else 'none'})"
            raise EntryCodeError(f"the model's code process ended without an exported program ({how})")
        if "error" in result:
            raise EntryCodeError(str(result["error"]))
        program = load_program(work / _PROGRAM)
        if keep is not None:
            shutil.copyfile(work / _PROGRAM, keep)
        files = result.get("code_files")
        code_files = {str(k): str(v) for k, v in files.items()} if isinstance(files, dict) else {}
        return program, tuple(str(n) for n in result.get("notes", [])), code_files
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _kill(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # the child and anything it started
    except (ProcessLookupError, PermissionError):
        proc.kill()
    proc.wait()


def _read_result(path: Path) -> dict[str, Any] | None:
    try:
        if not path.is_file() or path.stat().st_size > 1 << 20:
            return None
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _end_with_parent(parent: int) -> None:
    """Linux: the kernel kills this process when the scorer dies (``kill -9`` included)."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        return
    if os.getppid() != parent:  # the scorer died before the line above
        os._exit(1)


def _child(work: str) -> None:
    """The child's whole job (``python -m micronet_score.organizer.entry_code WORKDIR``)."""
    out = Path(work)
    job = json.loads((out / _JOB).read_text(encoding="utf-8"))
    memory = job["memory"]  # bytes, or None: no limit
    _end_with_parent(int(job["parent"]))
    try:
        import resource

        if memory is not None:
            resource.setrlimit(resource.RLIMIT_AS, (int(memory), int(memory)))
    except (ImportError, ValueError, OSError):  # pragma: no cover - platforms without RLIMIT_AS
        pass
    try:
        before = set(sys.modules)
        notes = _build_and_export(job["recipe"], Path(job["base"]), job["shape"], out / _PROGRAM)
        from micronet_score.organizer.fingerprint import local_modules_loaded

        result: dict[str, Any] = {"notes": notes, "code_files": local_modules_loaded(before, job["base"])}
    except MemoryError:
        result = {"error": f"the model's code ran out of memory ({gib(memory) if memory else 'no limit set'}, --entry-memory)"}
    except BaseException as exc:  # SystemExit, KeyboardInterrupt from the code: this entry's failure only
        text = " ".join(str(exc).split())
        if "can't allocate memory" in text or "not enough memory" in text.lower():
            result = {"error": f"the model's code ran out of memory ({gib(memory) if memory else 'no limit set'}, --entry-memory)"}
        else:
            from micronet_score.errors import MicronetError

            if not isinstance(exc, Exception):  # SystemExit, KeyboardInterrupt: this entry's failure, said so
                result = {"error": f"the model's code raised {type(exc).__name__}({text})"[:400]}
            else:
                prefix = "" if isinstance(exc, MicronetError) else f"{type(exc).__name__}: "
                result = {"error": (prefix + text)[:400] or type(exc).__name__}
    tmp = out / (_RESULT + ".tmp")
    tmp.write_text(json.dumps(result), encoding="utf-8")
    os.replace(tmp, out / _RESULT)


def _build_and_export(recipe: dict[str, Any], base: Path, shape: list[int], target: Path) -> list[str]:
    from micronet_score.organizer.submissions import rebuild_in_process

    model, notes = rebuild_in_process(recipe, base, shape)
    torch.export.save(export_model(model, shape), str(target))
    return notes

if __name__ == "__main__":  # the child process
    _child(sys.argv[1])
