"""Every code block of README.md and docs/*.md runs as printed, in order, and prints what the page shows.

How to write a page so this test reads it (the rules are in ``tests/docs/code_blocks.py``):

- ```` ```python ```` blocks of a page run in order in one namespace, as a reader pasting them would; define what
  a block uses in an earlier block of the page.
- Output is a ```` ```text ```` block right after the code (at most one line of prose, such as "prints", between):
  words must match, integers exactly, decimals to their last printed digit; ``...`` on a line of its own stands
  for any lines.
- ```` ```bash ```` blocks run when every line is a ``micronet-score`` command (on bundled models: cheap).
- A block that cannot run here (real data, a participant's file, a GPU, a cluster, an install) gets
  ``<!-- not-run: the reason -->`` on the line before its fence. ``test_not_run_blocks_are_listed`` prints them
  all (``pytest -s``), so nothing is skipped silently.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest
import torch

from micronet_score.compress import base as compress_base

sys.path.insert(0, str(Path(__file__).resolve().parent))
from code_blocks import ROOT, SHELL, output_difference, page_blocks, run_python, run_shell, shell_commands  # noqa: E402

PAGES = [ROOT / "README.md"] + sorted((ROOT / "docs").glob("*.md"))


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_page_blocks_run_and_print_what_the_page_shows(page, tmp_path, monkeypatch):
    blocks = page_blocks(page)
    monkeypatch.chdir(tmp_path)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    # a page may register a compression config (compress.md does): the registries are restored afterwards
    monkeypatch.setattr(compress_base, "_HANDLERS", dict(compress_base._HANDLERS))
    monkeypatch.setattr(compress_base, "_CONFIG_TYPES", dict(compress_base._CONFIG_TYPES))
    module = types.ModuleType("__docs_page__")  # a real module: dataclasses defined on a page look it up
    monkeypatch.setitem(sys.modules, module.__name__, module)
    namespace = module.__dict__
    try:
        for block in blocks:
            if block.not_run is not None:
                continue
            if block.lang in SHELL:
                commands = shell_commands(block.code)
                assert commands is not None, (
                    f"{block.where}: a {block.lang} block with a command other than micronet-score: mark it "
                    f"<!-- not-run: why --> on the line before")
                printed, failure = run_shell(commands)
                assert failure is None, f"{block.where}: {failure}"
            else:
                try:
                    printed = run_python(block.code, namespace, block.where)
                except Exception as exc:  # the page's code failed: say where, as a reader would see it
                    pytest.fail(f"{block.where}: {type(exc).__name__}: {exc}\n{block.code}")
            if block.expected is not None:
                difference = output_difference(block.expected, printed)
                assert difference is None, f"{block.where}: {difference}"
    finally:
        torch.set_num_threads(threads)
        if "matplotlib.pyplot" in sys.modules:
            sys.modules["matplotlib.pyplot"].close("all")


def test_not_run_blocks_are_listed(capsys):
    blocks = [b for page in PAGES for b in page_blocks(page)]
    skipped = [b for b in blocks if b.not_run is not None]
    with capsys.disabled():
        print(f"\ndocs code blocks: {len(blocks) - len(skipped)} of {len(blocks)} run; not run:")
        for b in skipped:
            print(f"  {b.where} ({b.lang}): {b.not_run}")
    # a page is read as a whole: most of its blocks must run
    assert len(skipped) <= len(blocks) // 2, [b.where for b in skipped]


def test_the_reader_finds_the_blocks_a_page_shows(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "Intro.\n\n```python\nprint(1 + 1)\n```\n\nprints\n\n```text\n2\n```\n\n"
        "<!-- not-run: needs the CIFAR-100 test set -->\n```bash\nmicronet-score eval x --data cifar-100-python\n"
        "```\n\n```toml\n[rules]\n```\n\n```bash\nmicronet-score rules\n```\n", encoding="utf-8")
    blocks = page_blocks(page)
    assert [(b.line, b.lang, b.expected, b.not_run) for b in blocks] == [
        (3, "python", "2", None), (14, "bash", None, "needs the CIFAR-100 test set"), (22, "bash", None, None)]


@pytest.mark.parametrize(("expected", "printed", "same"), [
    ("total 1,920 values", "total   1,920 values\n", True),     # runs of spaces are one
    ("total 1,920 values", "total 1,921 values", False),       # integers exactly
    ("score 0.0531", "score 0.0532", True),                     # a decimal to its last printed digit
    ("score 0.0531", "score 0.0533", False),
    ("score 0.0531", "Score 0.0531", False),                    # words exactly
    ("head\n...\ntail", "head\na\nb\ntail", True),              # ... stands for any lines
    ("head\n...\ntail", "head\na\nb", False),
    ("a\nb", "a", False),
])
def test_output_comparison(expected, printed, same):
    assert (output_difference(expected, printed) is None) is same


def test_only_micronet_score_commands_run():
    assert shell_commands("$ micronet-score count resnet18-cifar --rules x   # a comment\n") == [
        ["count", "resnet18-cifar", "--rules", "x"]]
    assert shell_commands("micronet-score leaderboard c.toml \\\n    --out board\n") == [
        ["leaderboard", "c.toml", "--out", "board"]]
    assert shell_commands("pip install micronet-score\n") is None
    assert shell_commands("micronet-score rules | head\n") is None
