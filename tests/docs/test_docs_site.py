"""The docs site: every generated number matches the library, and ``mkdocs build --strict`` passes."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"docs_gen_{name}", DOCS / "gen" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_snippets_match_the_library():
    snippets = _load("snippets")
    generated = snippets.generate()
    stale = [name for name, text in generated.items()
             if not (snippets.OUT / name).exists() or (snippets.OUT / name).read_text(encoding="utf-8") != text]
    assert not stale, f"docs snippets out of date: {stale}; run: python docs/gen/snippets.py"


def test_every_snippet_is_used_and_every_include_exists():
    snippets = _load("snippets")
    pages = "\n".join(p.read_text(encoding="utf-8") for p in DOCS.rglob("*.md") if "gen" not in p.parts)
    for name in snippets.SNIPPETS:
        assert f'--8<-- "{name}"' in pages, f"snippet {name} is generated but no page includes it"


def test_every_include_stands_on_its_own_line():
    # pymdownx.snippets only reads an include that is the whole line: inline, it is printed as text
    inline = [f"{page.name}: {line.strip()}" for page in DOCS.glob("*.md")
              for line in page.read_text(encoding="utf-8").splitlines()
              if "--8<--" in line and not line.strip().startswith("--8<--")]
    assert not inline, f"includes inside a sentence are not expanded: {inline}"


def test_doctest_fence_extension():
    pytest.importorskip("griffe")
    ext = _load("griffe_doctest")
    text = "Intro :class:`~micronet_score.report.Report` and :func:`ms.count`.\n\n>>> 1 + 1\n2\n\nAfter."
    assert ext.fence(ext.roles(text)) == (
        "Intro `Report` and `ms.count`.\n\n```pycon\n>>> 1 + 1\n2\n```\n\nAfter.")


def test_plot_image_of_the_getting_started_page_exists():
    assert "img/report-plot.png" in (DOCS / "getting-started.md").read_text(encoding="utf-8")
    assert (DOCS / "img" / "report-plot.png").stat().st_size > 10_000


def test_mkdocs_build_strict(tmp_path):
    pytest.importorskip("mkdocs")
    pytest.importorskip("material")
    pytest.importorskip("mkdocstrings_handlers.python")
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml"),
                             "-d", str(tmp_path / "site")], cwd=ROOT, capture_output=True, text=True,
                            env={"NO_MKDOCS_2_WARNING": "1", "PATH": "/usr/bin:/bin",
                                 "HOME": str(tmp_path)})
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "site" / "api" / "report" / "index.html").exists()
    home = (tmp_path / "site" / "index.html").read_text(encoding="utf-8")
    assert "--8&lt;--" not in home and "Sequential: 618 parameters" in home  # the snippet is included
