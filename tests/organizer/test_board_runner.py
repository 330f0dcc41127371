"""Running the board: every entry in its own process, hostile entries fail alone, limits, resume, the store.

Each board here runs its entries in children forked from one fork server (torch imported once), in parallel
where the test allows, to keep the file well under a minute.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

import micronet_score as ms
from micronet_score.cli import main as cli_main
from micronet_score.organizer import ranking, runner, scoring
from micronet_score.organizer.datasets import Preprocessing
from micronet_score.organizer.runner import BoardInterrupted
from micronet_score.organizer.store import ResultStore, StoreError, board_lock

from .conftest import HEADER, LABELS, NET_PY, entry

# entries that misbehave in every way a process can; each builds const() when it returns at all
BAD_PY = NET_PY + textwrap.dedent('''
    import ctypes, os, signal, time

    def exit3(**kw):
        os._exit(3)

    def sysexit(**kw):
        raise SystemExit(0)

    def hang(pidfile="", **kw):
        if pidfile:
            open(pidfile, "w").write(str(os.getpid()))
        time.sleep(10 ** 6)

    def big(**kw):
        torch.ones(20 << 30, dtype=torch.uint8)  # 20 GiB
        return const(**kw)

    def segv(**kw):
        ctypes.string_at(0)

    def term(**kw):
        os.kill(os.getpid(), signal.SIGTERM)  # looks like a service stop: not the entry's result
        time.sleep(5)

    def interrupt_once(pid=0, marker="", pidfile="", **kw):
        if not os.path.exists(marker):
            open(marker, "w").close()
            if pidfile:
                open(pidfile, "w").write(str(os.getpid()))
            os.kill(pid, signal.SIGINT)  # Ctrl-C for the board, sent from inside one entry
            time.sleep(60)
        return const(**kw)
''')

ROOT = Path(__file__).resolve().parents[2]


def _bad(name: str, factory: str, args: str = "", timeout: int = 8) -> str:
    # the entry's code runs in the child that exports its model, under the entry's own time limit
    return textwrap.dedent(f'''
        [[entry]]
        name = "{name}"
        model = "bad.py:{factory}"
        weights = "subs/const0.pt"
        input = [1, 3, 8, 8]
        entry_timeout = {timeout}
    ''') + (f"args = {{ {args} }}\n" if args else "")


def _manifest(root: Path, *entries: str) -> Path:
    (root / "bad.py").write_text(BAD_PY)
    (root / "challenge.toml").write_text(HEADER + "".join(entries))
    return root / "challenge.toml"


def _rows(board):
    return {r["name"]: r for r in board.rows}


def test_hostile_entries_fail_alone_and_are_not_rescored(challenge, tmp_path):
    manifest = _manifest(challenge, entry("zero", "subs/const0.pt", 0), _bad("exit3", "exit3"),
                         _bad("sysexit", "sysexit"), _bad("hang", "hang"), _bad("big", "big"), _bad("segv", "segv"),
                         entry("two", "subs/const2.pt", 2))
    out = tmp_path / "out"
    started = time.monotonic()
    board = ms.leaderboard(manifest, out, workers=4, entry_timeout=120, entry_memory="3GiB")
    assert time.monotonic() - started < 100  # the hang is ended at its own 8 s, not waited for
    rows = _rows(board)
    # the innocent entries are scored: const(c) is right exactly as often as label c occurs (20 zeros, 10 twos)
    assert (rows["zero"]["correct"], rows["two"]["correct"]) == (20, 10) and rows["zero"]["error"] is None, rows["zero"]["error"]
    # the entries' code runs only in the child that exports their model (the trust model): each failure is
    # that child's, told in one line, and the entry's own result
    assert rows["exit3"]["error"] == "the model's code process ended without an exported program (exit status 3)"
    assert rows["sysexit"]["error"] == "the model's code raised SystemExit(0)"
    assert rows["hang"]["error"] == "the model's code timed out after 8 s (--entry-timeout)"
    assert rows["big"]["error"] == "the model's code ran out of memory (3 GiB, --entry-memory)"
    assert rows["segv"]["error"] == "the model's code process ended without an exported program (signal 11)"
    assert board.scored == 7 and board.unscored == 0
    assert len(ResultStore(out / "results.sqlite")) == 7  # every row is the entry's own: all stored
    again = ms.leaderboard(manifest, out, workers=4, entry_timeout=120, entry_memory="3GiB")
    assert again.scored == 0 and _rows(again)["segv"]["error"] == rows["segv"]["error"]


def test_machinery_failures_are_shown_never_stored(challenge, tmp_path, monkeypatch):
    manifest = _manifest(challenge, *(entry(f"c{c}", f"subs/const{c}.pt", c) for c in range(4)),
                         _bad("term", "term"))
    real = runner._context

    class NoStart:
        """A context whose process for entry c1 cannot start (as when the system is out of processes), and whose
        process for c2 exits before the entry begins (as when the child cannot import the scorer)."""

        def __init__(self) -> None:
            self.ctx = real()

        def Pipe(self, duplex=True):  # noqa: N802 - multiprocessing's name
            return self.ctx.Pipe(duplex)

        def Process(self, **kw):  # noqa: N802
            if kw["name"].endswith("-c2"):
                kw.update(target=os._exit, args=(1,))
            process = self.ctx.Process(**kw)
            if kw["name"].endswith("-c1"):
                def refuse():
                    raise OSError(11, "Resource temporarily unavailable")
                process.start = refuse
            return process

    monkeypatch.setattr(runner, "_context", NoStart)
    out = tmp_path / "out"
    board = ms.leaderboard(manifest, out, workers=2)
    rows = _rows(board)
    assert rows["c1"]["error"].startswith("not scored: could not start a process (BlockingIOError: [Errno 11]")
    assert rows["c2"]["error"] == ("not scored: its process exited with status 1 before the entry began; the "
                                   "same command retries it")
    assert (rows["c0"]["correct"], rows["c3"]["correct"]) == (20, 5)  # 20 zeros, 5 threes
    # an entry's code runs only in its export child: a SIGTERM there is the entry's own failure, stored
    assert rows["term"]["error"] == "the model's code process ended without an exported program (signal 15)"
    assert (board.scored, board.unscored) == (3, 2) and len(ResultStore(out / "results.sqlite")) == 3
    only = challenge / "only.toml"  # c1 alone: nothing else running, nothing to wait for
    only.write_text(HEADER + entry("c1", "subs/const1.pt", 1))
    alone = ms.leaderboard(only, tmp_path / "alone")
    assert (alone.scored, alone.unscored) == (0, 1) and alone.rows[0]["error"].startswith("not scored")
    monkeypatch.setattr(runner, "_context", real)
    again = ms.leaderboard(manifest, out, workers=2)
    assert (again.scored, again.unscored) == (2, 0)
    assert (_rows(again)["c1"]["correct"], _rows(again)["c2"]["correct"]) == (15, 10)  # 15 ones, 10 twos


def test_interrupt_with_two_workers_then_resume_loses_and_duplicates_nothing(challenge, tmp_path):
    marker = tmp_path / "interrupted-once"
    manifest = _manifest(challenge, _bad("ctrl-c", "interrupt_once", f'pid = {os.getpid()}, marker = "{marker}"',
                                         timeout=120),
                         *(entry(f"c{c}", f"subs/const{c}.pt", c) for c in range(4)))
    out = tmp_path / "out"
    with pytest.raises(BoardInterrupted) as caught:
        ms.leaderboard(manifest, out, workers=2)
    kept = len(ResultStore(out / "results.sqlite"))
    assert caught.value.scored == kept and caught.value.left == 5 - kept and kept < 5
    assert "run the same command to resume" in str(caught.value)
    again = ms.leaderboard(manifest, out, workers=2)
    assert again.scored == 5 - kept  # what was kept is not scored twice
    rows = _rows(again)
    assert len(again.rows) == 5 and len(ResultStore(out / "results.sqlite")) == 5
    # ctrl-c builds const(0) on the rerun: 20 right; c0..c3 get 20, 15, 10, 5 (the label counts)
    assert [rows[n]["correct"] for n in ("ctrl-c", "c0", "c1", "c2", "c3")] == [20, 20, 15, 10, 5], rows["ctrl-c"]["error"]


def _wait_for(path: Path, seconds: float = 60) -> int:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if path.exists() and path.read_text():
            return int(path.read_text())
        time.sleep(0.1)
    raise AssertionError(f"{path} never appeared")


def _gone(pid: int, seconds: float = 5) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        try:  # a zombie is gone for our purpose (its parent has not reaped it yet)
            if Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z"):
                return True
        except (OSError, IndexError):
            return True
        time.sleep(0.1)
    return False


def test_ctrl_c_ends_the_running_entry_keeps_the_rows_and_exits_130(challenge, tmp_path, capsys):
    marker, pidfile, out = tmp_path / "interrupted-once", tmp_path / "entry.pid", tmp_path / "out"
    manifest = _manifest(challenge, entry("c0", "subs/const0.pt", 0), entry("c1", "subs/const1.pt", 1),
                         _bad("ctrl-c", "interrupt_once", f'pid = {os.getpid()}, marker = "{marker}", '
                                                         f'pidfile = "{pidfile}"'))
    code = cli_main(["leaderboard", str(manifest), "--out", str(out), "--workers", "1"])
    err = capsys.readouterr().err
    assert code == 130  # with one worker, c0 and c1 were scored (in manifest order) before ctrl-c began
    assert err.strip().splitlines() == [f"micronet-score: interrupted: 2 entries scored in this run (kept in "
                                        f"{out / 'results.sqlite'}), 1 not scored; run the same command to resume"]
    assert len(ResultStore(out / "results.sqlite")) == 2
    assert _gone(int(pidfile.read_text()))  # the running entry was ended


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc is Linux's")
def test_kill_9_of_the_board_ends_its_workers(challenge, tmp_path):
    pidfile = tmp_path / "hang.pid"
    manifest = _manifest(challenge, _bad("hang", "hang", f'pidfile = "{pidfile}"'))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    board = subprocess.Popen([sys.executable, "-m", "micronet_score.cli", "leaderboard", str(manifest), "--out",
                              str(tmp_path / "out")], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        hung = _wait_for(pidfile)
    finally:
        board.kill()
        board.wait()
    assert _gone(hung)


def test_rows_follow_the_model_code_and_the_data_contents(challenge, tmp_path):
    pkg = challenge / "mynets"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "helper.py").write_text("SIGN = 1\n")
    (pkg / "model.py").write_text(NET_PY + textwrap.dedent('''
        from . import helper

        class Scale(torch.nn.Module):
            def forward(self, x):
                return x * helper.SIGN

        def build():
            net = const()
            net.append(Scale())  # no parameters: const0.pt loads as before
            return net
    '''))
    manifest = _manifest(challenge, textwrap.dedent('''
        [[entry]]
        name = "stale"
        model = "mynets.model:build"
        weights = "subs/const0.pt"
        input = [1, 3, 8, 8]
    '''))
    out = tmp_path / "out"
    assert _rows(ms.leaderboard(manifest, out))["stale"]["correct"] == 20  # logits (1, 0, 0, 0): the 20 zeros
    # only the helper that the model imports changes: logits (-1, 0, 0, 0), argmax the first 0, class 1
    (pkg / "helper.py").write_text("SIGN = -1\n")
    second = ms.leaderboard(manifest, out)
    assert second.scored == 1 and _rows(second)["stale"]["correct"] == 15  # the 15 ones
    (pkg / "helper.py").write_text("SIGN = -1  # same code, new comment\n")
    assert ms.leaderboard(manifest, out).scored == 1  # any change to the source is a new key
    assert ms.leaderboard(manifest, out).scored == 0
    # a module found only when the entry runs (its name is an argument): the row remembers what was imported
    (challenge / "hidden_sign.py").write_text("SIGN = 1\n")
    (challenge / "dyn.py").write_text(NET_PY + textwrap.dedent('''
        import importlib, os, sys

        class Scale(torch.nn.Module):
            def __init__(self, sign):
                super().__init__()
                self.sign = sign

            def forward(self, x):
                return x * self.sign

        def build(module):
            sys.path.insert(0, os.path.dirname(__file__))
            net = const()
            net.append(Scale(importlib.import_module(module).SIGN))
            return net
    '''))
    manifest.write_text(manifest.read_text() + textwrap.dedent('''
        [[entry]]
        name = "dynamic"
        model = "dyn.py:build"
        weights = "subs/const0.pt"
        args = { module = "hidden_sign" }
        input = [1, 3, 8, 8]
    '''))
    board = ms.leaderboard(manifest, out)
    assert board.scored == 1 and _rows(board)["dynamic"]["correct"] == 20  # logits (1, 0, 0, 0): 20 zeros
    assert "code_files" not in _rows(board)["dynamic"]  # kept in the store only, never published
    (challenge / "hidden_sign.py").write_text("SIGN = -1\n")
    board = ms.leaderboard(manifest, out)
    assert board.scored == 1 and _rows(board)["dynamic"]["correct"] == 15  # logits (-1, 0, 0, 0): 15 ones
    # the data rewritten in place with the same size and modification time: the contents decide
    data = challenge / "test.npz"
    st = data.stat()
    with np.load(data) as npz:
        x = npz["x"]
    np.savez(data, x=x, y=np.zeros_like(LABELS))  # every label 0
    os.utime(data, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert data.stat().st_size == st.st_size and data.stat().st_mtime_ns == st.st_mtime_ns
    third = ms.leaderboard(manifest, out)
    assert third.scored == 2  # both entries predict 1 now, and every label is 0
    assert _rows(third)["stale"]["correct"] == 0 and _rows(third)["dynamic"]["correct"] == 0


def test_test_sets_cached_in_a_process_follow_their_contents(challenge):
    data = challenge / "test.npz"
    pre = Preprocessing()
    first = scoring._cached_dataset(str(data), "npz", pre)
    assert int((first.y == 0).sum()) == 20
    with np.load(data) as npz:
        x = npz["x"]
    st = data.stat()
    np.savez(data, x=x, y=np.zeros_like(LABELS))
    os.utime(data, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert int((scoring._cached_dataset(str(data), "npz", pre).y == 0).sum()) == 50


def test_second_board_on_one_folder_is_refused(challenge, tmp_path):
    manifest = _manifest(challenge, entry("zero", "subs/const0.pt", 0))
    out = tmp_path / "out"
    with board_lock(out), pytest.raises(StoreError, match=f"another leaderboard is writing {out}"):
        ms.leaderboard(manifest, out)


def _damage(path: Path, how: str) -> None:
    if how == "directory":
        path.mkdir(parents=True)
    elif how == "garbage":
        path.parent.mkdir(parents=True)
        path.write_bytes(b"not a database at all, " * 100)
    else:  # a real store cut short: its header promises pages that are not there
        ResultStore(path)
        db = sqlite3.connect(path)
        with db:
            db.executemany("INSERT INTO results VALUES (?, ?, ?)",
                           [(f"k{i}", f"n{i}", '{"pad": "%s"}' % ("x" * 200)) for i in range(200)])
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        db.close()
        size = path.stat().st_size
        with open(path, "r+b") as fh:
            fh.truncate(size // 2)


@pytest.mark.parametrize("how", ["directory", "garbage", "truncated"])
def test_damaged_store_is_one_line_before_scoring(challenge, tmp_path, how, capsys):
    manifest = _manifest(challenge, entry("zero", "subs/const0.pt", 0))
    out = tmp_path / "out"
    _damage(out / "results.sqlite", how)
    code = cli_main(["leaderboard", str(manifest), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 1 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "results.sqlite" in err and ("not a usable results store" in err or "is not a file" in err)


@pytest.mark.parametrize("text, message", [
    (HEADER + '[[entry]]\nname = "a"\nmodel = "net.py:const"\nweights = "w"\nargs = { when = 1979-05-27 }\n',
     "args.when is a TOML date/time"),
    (HEADER + '[[entry]]\nmodel = "net.py:const"\nweights = "w"\n[entry.name]\nfirst = "x"\n',
     "name must be a string, got a table"),
    ('rules = "micronet-2019-cifar100"\nentry = [1, 2]\n[data]\npath = "test.npz"\n',
     "entry 1 is int 1, not a table"),
    (HEADER + '[[entry]]\nname = "a"\nmodel = "net.py:const"\nweights = "w"\ninput = [1, "3"]\n',
     "input must be positive integers"),
])
def test_bad_manifest_values_are_one_line(tmp_path, text, message, capsys):
    (tmp_path / "m.toml").write_text(text)
    code = cli_main(["leaderboard", str(tmp_path / "m.toml"), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 1 and len(err.strip().splitlines()) == 1 and message in err, err


def test_limits_are_checked():
    with pytest.raises(ms.organizer.SubmissionError, match="not a size"):
        ranking.leaderboard("nowhere.toml", entry_memory="lots")
    with pytest.raises(ms.organizer.SubmissionError, match="entry-timeout"):
        ranking.leaderboard("nowhere.toml", entry_timeout=-1)


def test_code_digest_follows_local_imports_only(tmp_path):
    from micronet_score.organizer.fingerprint import code_digest

    (tmp_path / "helper.py").write_text("import numpy\nfrom pkg.deep import VALUE\n")
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "deep.py").write_text("from . import leaf\nVALUE = 1\n")
    (tmp_path / "pkg" / "leaf.py").write_text("import torch\n")
    (tmp_path / "net2.py").write_text("import torch\nimport micronet_score\nfrom helper import *\n")
    files = code_digest("net2.py:build", tmp_path)
    # the model file, the helper it imports, the package on the way and its relative import; never torch,
    # numpy (installed) or micronet_score (its version is in the key)
    assert sorted(files) == ["helper.py", "net2.py", "pkg/__init__.py", "pkg/deep.py", "pkg/leaf.py"]
    assert code_digest("densenet-seed", tmp_path) == {}
    before = code_digest("pkg.deep:f", tmp_path)
    assert sorted(before) == ["pkg/__init__.py", "pkg/deep.py", "pkg/leaf.py"]
    (tmp_path / "pkg" / "leaf.py").write_text("import torch  # changed\n")
    assert code_digest("pkg.deep:f", tmp_path)["pkg/leaf.py"] != before["pkg/leaf.py"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the fork server and /proc are Linux's")
def test_fork_server_ignores_ctrl_c_while_it_imports(tmp_path):
    # a Ctrl-C reaches the terminal's whole process group: the fork server, still importing torch, must not
    # print a traceback of its own. Read its ignored signals right after it is started (SIGINT = 2: bit 0x2).
    code = ("from multiprocessing import forkserver\n"
            "from micronet_score.organizer import runner\n"
            "runner._context()\n"
            "pid = forkserver._forkserver._forkserver_pid\n"
            "print(next(l.split()[1] for l in open(f'/proc/{pid}/status') if l.startswith('SigIgn')))\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert int(out.stdout.strip(), 16) & 0x2, out.stderr
