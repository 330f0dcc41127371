"""Read the code blocks of a Markdown page as a reader sees them, run them in order, and compare their output.

The conventions (also in ``docs/contributing`` notes at the top of ``tests/docs/test_code_blocks.py``):

- A page's ```` ```python ```` blocks run in order in one namespace (fresh per page), in a temporary directory,
  on the CPU with one torch thread and ``torch.manual_seed(0)`` at the start of the page. Includes
  (``--8<-- "name.md"`` on a line of its own) are expanded from ``docs/gen/snippets`` first, as mkdocs does.
- ```` ```bash ````/```` ```console ```` blocks run when every command in them is ``micronet-score ...`` (run in
  this process by ``micronet_score.cli.main``, what the script calls; a ``$ `` prompt, ``# comments`` and ``\\``
  continuations are allowed); each command must exit 0.
- **Output**: a ```` ```text ```` block right after a block that runs (blank lines and at most one line of prose,
  such as "prints", between them) is what that block prints. Words must match; integers (``1,920``) exactly;
  decimals to within one unit of their last printed digit; runs of spaces are one space; a line ``...`` stands
  for any number of lines.
- **Not run**: a block that cannot run here (a real dataset, a participant's file, a GPU, a cluster, a package
  install) carries ``<!-- not-run: the reason -->`` on the line just before its fence (blank lines allowed in
  between). Nothing else is skipped: a bash block with another command and no marker fails the test.
"""

from __future__ import annotations

import contextlib
import io
import re
import shlex
import textwrap
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SNIPPETS = ROOT / "docs" / "gen" / "snippets"
RUNNABLE = {"python", "py", "bash", "sh", "shell", "console"}
SHELL = RUNNABLE - {"python", "py"}
NOT_RUN = re.compile(r"^<!--\s*not-run:\s*(.*?)\s*-->$")
FENCE = re.compile(r"^(\s*)```(\w*)\s*$")
INCLUDE = re.compile(r'^\s*--8<--\s*"([^"]+)"\s*$')
NUMBER = re.compile(r"(?<![\w.])[-+]?\d[\d,]*(?:\.\d+)?(?:e[-+]?\d+)?(?![\w])")


@dataclass
class Block:
    """One fenced code block of a page: where it is, its language and code, the output the page shows after it
    (``None`` when it shows none) and the reason it is not run (``None`` when it runs)."""

    page: str
    line: int
    lang: str
    code: str
    expected: str | None = None
    not_run: str | None = None

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"


def expanded_lines(path: Path) -> list[tuple[int, str]]:
    """The page's lines as ``(line number on the page, text)``, each include replaced by the snippet's lines
    (numbered with the include's line)."""
    out: list[tuple[int, str]] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        match = INCLUDE.match(line)
        if match:
            out += [(number, text) for text in (SNIPPETS / match[1]).read_text(encoding="utf-8").splitlines()]
        else:
            out.append((number, line))
    return out


def page_blocks(path: Path) -> list[Block]:
    """Every runnable-language block of the page, in order, with its output and not-run marker."""
    lines = expanded_lines(path)
    page = str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else path.name
    fenced: list[tuple[int, int, str, str]] = []  # (index of opening fence, index after closing fence, lang, code)
    i = 0
    while i < len(lines):
        match = FENCE.match(lines[i][1])
        if not match:
            i += 1
            continue
        indent, lang = match[1], match[2].lower()
        j = i + 1
        while j < len(lines) and lines[j][1].strip() != "```":
            j += 1
        code = textwrap.dedent("\n".join(text[len(indent):] if text.startswith(indent) else text
                                         for _, text in lines[i + 1:j]))
        fenced.append((i, j + 1, lang, code))
        i = j + 1
    blocks: list[Block] = []
    for k, (start, end, lang, code) in enumerate(fenced):
        if lang not in RUNNABLE:
            continue
        block = Block(page, lines[start][0], lang, code, not_run=_marker(lines, start))
        if k + 1 < len(fenced) and fenced[k + 1][2] == "text":
            between = [text.strip() for _, text in lines[end:fenced[k + 1][0]] if text.strip()]
            if len(between) <= 1 and not any(text.startswith("<!--") for text in between):
                block.expected = fenced[k + 1][3]
        blocks.append(block)
    return blocks


def _marker(lines: list[tuple[int, str]], fence: int) -> str | None:
    i = fence - 1
    while i >= 0 and not lines[i][1].strip():
        i -= 1
    match = NOT_RUN.match(lines[i][1].strip()) if i >= 0 else None
    if match is None:
        return None
    if not match[1]:
        raise ValueError(f"{lines[i][0]}: a not-run marker needs a reason: <!-- not-run: why -->")
    return match[1]


# ----------------------------------------------------------------------------------------------- running


def run_python(code: str, namespace: dict, where: str) -> str:
    """Run ``code`` in ``namespace`` and return what it printed."""
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        exec(compile(code, where, "exec"), namespace)  # noqa: S102  (the page's own code, as a reader runs it)
    return buffer.getvalue()


def shell_commands(code: str) -> list[list[str]] | None:
    """The ``micronet-score`` commands of a bash block as argument lists, or ``None`` when the block holds
    anything else (it must then be marked not-run)."""
    joined = re.sub(r"\\\n\s*", " ", code)
    commands = []
    for line in joined.splitlines():
        line = line.strip()
        line = line[2:] if line.startswith("$ ") else line
        if not line or line.startswith("#"):
            continue
        words = shlex.split(line, comments=True)
        if not words or words[0] != "micronet-score" or any(w in {"|", "&&", ";", ">"} for w in words):
            return None
        commands.append(words[1:])
    return commands


def run_shell(commands: list[list[str]]) -> tuple[str, str | None]:
    """Run the commands in this process (``micronet_score.cli.main``, what the ``micronet-score`` script calls;
    a subprocess per command would import torch again); return their output and the first failure (``None``
    when all exit 0)."""
    from micronet_score.cli import main

    out = []
    for args in commands:
        stdout, stderr = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            try:
                status = main(args)
            except SystemExit as exc:  # argparse: usage errors, --help, --version
                status = exc.code if isinstance(exc.code, int) else 1
        out.append(stdout.getvalue())
        if status != 0:
            return "".join(out), (f"`micronet-score {shlex.join(args)}` exited {status}: "
                                  f"{stderr.getvalue().strip()[-500:]}")
    return "".join(out), None


# --------------------------------------------------------------------------------------------- comparing


def _norm(line: str) -> str:
    return " ".join(line.split())


def _numbers_match(expected: str, actual: str) -> bool:
    if NUMBER.sub("#", expected) != NUMBER.sub("#", actual):
        return False
    for e, a in zip(NUMBER.findall(expected), NUMBER.findall(actual)):
        if "." not in e and "e" not in e.lower():
            if e.replace(",", "") != a.replace(",", ""):
                return False
            continue
        decimals = len(e.split(".")[1].split("e")[0]) if "." in e else 0
        unit = 10.0 ** -decimals * (10.0 ** int(e.lower().split("e")[1]) if "e" in e.lower() else 1.0)
        if abs(float(e.replace(",", "")) - float(a.replace(",", ""))) > unit * 1.0001:
            return False
    return True


def output_difference(expected: str, actual: str) -> str | None:
    """``None`` when ``actual`` reads as ``expected`` by the rules above, else where they part."""
    want = [_norm(line) for line in expected.strip("\n").splitlines()]
    got = [_norm(line) for line in actual.strip("\n").splitlines()]
    if _match(want, got):
        return None
    return "the page shows:\n" + expected.rstrip() + "\nthe code prints:\n" + actual.rstrip()


def _match(want: list[str], got: list[str]) -> bool:
    if not want:
        return not got
    if want[0] == "...":
        return any(_match(want[1:], got[k:]) for k in range(len(got) + 1))
    return bool(got) and _numbers_match(want[0], got[0]) and _match(want[1:], got[1:])
