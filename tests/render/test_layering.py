"""One renderer package, no import cycle: render/ never imports the result classes at run time, and the
result modules import render only inside their display methods."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "micronet_score"
RESULTS = ("micronet_score.report", "micronet_score.compare", "micronet_score.rules", "micronet_score.counting")


def _runtime_imports(path: Path) -> set[str]:
    """Modules imported at module level, outside ``if TYPE_CHECKING:`` blocks."""
    names: set[str] = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        for sub in ast.walk(node) if not isinstance(node, (ast.FunctionDef, ast.ClassDef)) else ():
            if isinstance(sub, ast.ImportFrom) and sub.module:
                names.add(sub.module)
            elif isinstance(sub, ast.Import):
                names.update(alias.name for alias in sub.names)
    return names


def test_render_does_not_import_result_modules_at_run_time():
    for path in sorted((PACKAGE / "render").glob("*.py")):
        bad = {m for m in _runtime_imports(path) if m.startswith(RESULTS)}
        assert not bad, f"{path.name} imports {bad} at module level"


def test_results_import_render_lazily_and_optional_extras_lazily():
    for name in ("report.py", "compare.py"):
        imports = _runtime_imports(PACKAGE / name)
        assert not {m for m in imports if m.startswith("micronet_score.render")}, name
    for path in [*sorted((PACKAGE / "render").glob("*.py")), PACKAGE / "report.py", PACKAGE / "compare.py"]:
        extras = {m for m in _runtime_imports(path) if m.split(".")[0] in ("pandas", "matplotlib", "rich")}
        assert not extras, f"{path.name} imports {extras} at module level"
