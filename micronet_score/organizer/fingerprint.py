"""Digests of what decides a leaderboard row: the test data's contents and the source of an entry's model code.

Data is hashed by content (never by modification time); a file's digest is cached in the process under its
path, size, inode, modification and change times, so a board reads each test file once per run. Model code is the
module named by ``file.py:factory`` or ``pkg.module:factory`` and every module it imports, found by reading the
sources (nothing is imported or run), that lies outside the installed packages and the standard library.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import hashlib
import os
import site
import sys
import sysconfig
from importlib.machinery import PathFinder
from pathlib import Path
from typing import Any

MAX_SOURCES = 2000  # a model's own code is a handful of files; stop following imports after this many

_FILE_DIGESTS: dict[tuple[str, int, int, int, int], str] = {}


def file_digest(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes, cached under (path, size, inode, mtime, ctime) within this process."""
    st = os.stat(path)
    stamp = (os.path.abspath(path), st.st_size, st.st_ino, st.st_mtime_ns, st.st_ctime_ns)
    found = _FILE_DIGESTS.get(stamp)
    if found is None:
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
        found = _FILE_DIGESTS[stamp] = digest.hexdigest()
    return found


def content_digest(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes, or of a folder's files (relative names and bytes, in sorted order);
    ``missing`` when nothing is there."""
    path = Path(path)
    if path.is_file():
        return file_digest(path)
    if not path.is_dir():
        return "missing"
    digest = hashlib.sha256()
    for root, dirs, files in os.walk(path):
        dirs.sort()
        for name in sorted(files):
            full = os.path.join(root, name)
            rel = os.path.relpath(full, path)
            digest.update(rel.encode("utf-8", "surrogateescape") + b"\0")
            digest.update((file_digest(full) if os.path.isfile(full) else "not a file").encode() + b"\0")
    return digest.hexdigest()


@functools.lru_cache(maxsize=1)
def _installed_roots() -> tuple[str, ...]:
    roots = set()
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        with contextlib.suppress(KeyError):
            roots.add(sysconfig.get_paths()[key])
    try:
        roots.update(site.getsitepackages())
        roots.add(site.getusersitepackages())
    except AttributeError:  # pragma: no cover - virtualenv's old site.py
        pass
    roots.add(str(Path(__file__).resolve().parents[1]))  # micronet_score itself: its version is in the key
    return tuple(os.path.realpath(r) + os.sep for r in roots if r)


def _is_installed(path: str) -> bool:
    real = os.path.realpath(path)
    return real.startswith(_installed_roots())


def _find(name: str, search: list[str]) -> tuple[str | None, list[str] | None]:
    """(file, package folders) of module ``name``, looked up without importing anything."""
    parts = name.split(".")
    where: list[str] | None = search
    origin = None
    for part in parts:
        if where is None:
            return None, None
        try:
            spec = PathFinder.find_spec(part, where)
        except (ImportError, ValueError, OSError):
            return None, None
        if spec is None:
            return None, None
        origin = spec.origin if spec.has_location else None
        where = list(spec.submodule_search_locations or []) or None
    return origin, where


def _imports(source: str, filename: str) -> list[tuple[str, int, list[str]]]:
    try:
        tree = ast.parse(source, filename)
    except (SyntaxError, ValueError):
        return []
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((alias.name, 0, []) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            found.append((node.module or "", node.level, [alias.name for alias in node.names]))
    return found


def code_digest(model: Any, base: str | Path) -> dict[str, str]:
    """``{path: sha256}`` of the model's own code: the module of ``file.py:factory`` / ``pkg.module:factory``
    (relative to ``base``) and, transitively, every module it imports from outside the installed packages.
    Empty for a zoo model (the library version covers it)."""
    if not isinstance(model, str) or ":" not in model:
        return {}
    base = Path(base).resolve()
    target = model.rpartition(":")[0]
    search = [str(base)] + [p or os.getcwd() for p in sys.path]
    todo: list[tuple[str, str | None]] = []  # (file, its package folder for relative imports)
    if target.endswith(".py"):
        path = Path(target) if Path(target).is_absolute() else base / target
        search.insert(0, str(path.parent))
        todo.append((str(path), None))
    else:
        _add_module(target, search, todo)
    seen: dict[str, str] = {}
    while todo and len(seen) < MAX_SOURCES:
        path, _ = todo.pop()
        real = os.path.realpath(path)
        if real in seen or not os.path.isfile(real):
            if not os.path.exists(real):
                seen.setdefault(real, "missing")
            continue
        seen[real] = file_digest(real)
        try:
            source = Path(real).read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        package = os.path.dirname(real)
        for module, level, names in _imports(source, real):
            if level:
                anchor = Path(package)
                for _ in range(level - 1):
                    anchor = anchor.parent
                prefix = module.split(".") if module else []
                local = anchor.joinpath(*prefix)
                for candidate in [local.with_suffix(".py"), local / "__init__.py"] + [
                        local / f"{n}.py" for n in names] + [local / n / "__init__.py" for n in names]:
                    if candidate.is_file():
                        todo.append((str(candidate), None))
                continue
            for name in [module] + [f"{module}.{n}" for n in names if n != "*"]:
                _add_module(name, search, todo)
    return {_shown(p, base): d for p, d in sorted(seen.items())}


def _add_module(name: str, search: list[str], todo: list[tuple[str, str | None]]) -> None:
    """Queue ``name``'s file and the ``__init__`` files of the packages above it, when they are not installed."""
    parts = name.split(".")
    for i in range(1, len(parts) + 1):
        origin, _ = _find(".".join(parts[:i]), search)
        if origin and origin.endswith(".py") and not _is_installed(origin):
            todo.append((origin, None))


def _shown(path: str, base: Path) -> str:
    try:
        return str(Path(path).relative_to(base))
    except ValueError:
        return path


def local_modules_loaded(before: set[str], base: str) -> dict[str, str]:
    """``{path: sha256}`` of the modules imported since ``before`` (names in ``sys.modules``) from outside the
    installed packages: the code an entry actually ran, dynamic imports included (paths relative to ``base``)."""
    found = {}
    for name in set(sys.modules) - before:
        path = getattr(sys.modules.get(name), "__file__", None)
        if isinstance(path, str) and path.endswith(".py") and os.path.isfile(path) and not _is_installed(path):
            with contextlib.suppress(OSError):
                found[_shown(os.path.realpath(path), Path(base).resolve())] = file_digest(path)
    return dict(sorted(found.items()))
