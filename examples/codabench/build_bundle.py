"""Zip this folder into a Codabench (v2) competition bundle.

    python examples/codabench/build_bundle.py [--weights CHECKPOINT] [--out build]

Writes ``build/bundle.zip`` (``competition.yaml``, the pages, a logo, and the folders it names: the ingestion
and scoring programs, the input and reference data, the starting kit; upload it under Benchmarks > Upload) and
each task folder as a zip of its own (``build/scoring_program.zip``, ... with ``metadata.yaml`` at the root, for
replacing one part of a running competition under Resources). Before that it writes the starting kit's
submissions (``starting_kit/make_submission.py``; the solution Codabench runs when the bundle is uploaded) and
checks that the test set named by ``reference_data/challenge.toml`` is in place (see
``reference_data/README.md``).
"""

from __future__ import annotations

import argparse
import importlib.util
import struct
import sys
import zipfile
import zlib
from pathlib import Path

HERE = Path(__file__).resolve().parent
TASK_FOLDERS = ("ingestion_program", "scoring_program", "input_data", "reference_data")
TOP_FILES = ("competition.yaml", "logo.png")
SKIP = {"__pycache__", ".gitignore", ".DS_Store"}


def write_logo(path: Path, size: int = 64) -> Path:
    """A plain PNG (Codabench requires a logo): a dark square with a lighter diagonal band."""
    rows = b"".join(b"\x00" + b"".join(bytes((40, 160, 120) if abs(x - y) < 8 else (24, 40, 64))
                                       for x in range(size)) for y in range(size))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows))
                     + chunk(b"IEND", b""))
    return path


def check_reference_data(root: Path) -> Path:
    """The test set named by ``reference_data/challenge.toml``'s ``[data] path``; exits with the fix if absent."""
    from micronet_score.organizer.submissions import read_toml

    challenge = read_toml(root / "reference_data" / "challenge.toml")
    data = root / "reference_data" / challenge["data"]["path"]
    if not data.exists():
        sys.exit(f"build_bundle: {data} is missing: put the test set there (see reference_data/README.md)")
    for folder in ("input_data", "ingestion_program"):  # what the ingestion program sees holds no test data
        if any(p.name in ("test_batch", "test") or p.suffix == ".npz" for p in (root / folder).rglob("*")):
            sys.exit(f"build_bundle: {folder}/ holds test data; only reference_data/ may")
    return data


def _files(folder: Path):
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not SKIP.intersection(path.relative_to(folder).parts) and path.suffix != ".pyc":
            yield path


def zip_folder(folder: Path, out: Path) -> Path:
    """``folder``'s files into ``out``, at the zip's root (where Codabench looks for ``metadata.yaml``)."""
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in _files(folder):
            zf.write(path, path.relative_to(folder).as_posix())
    return out


def build_bundle(root: Path = HERE, out: Path | None = None, weights: str | None = None) -> Path:
    """Write ``out/bundle.zip`` and the task folders' zips for the bundle in ``root``; returns the bundle."""
    out = out or root / "build"
    out.mkdir(parents=True, exist_ok=True)
    check_reference_data(root)
    spec = importlib.util.spec_from_file_location("make_submission", root / "starting_kit" / "make_submission.py")
    kit = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(kit)
    kit.make_submissions(root / "starting_kit", weights=weights)
    write_logo(root / "logo.png")
    bundle = out / "bundle.zip"
    bundle.unlink(missing_ok=True)
    with zipfile.ZipFile(bundle, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in TOP_FILES:
            zf.write(root / name, name)
        for folder in ("pages", "starting_kit", *TASK_FOLDERS):
            for path in _files(root / folder):
                if path.suffix == ".zip":  # the starting kit's upload zips: its folders are there already
                    continue
                zf.write(path, f"{folder}/{path.relative_to(root / folder).as_posix()}")
    for folder in TASK_FOLDERS:
        zip_folder(root / folder, out / f"{folder}.zip")
    return bundle


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", help="a trained densenet-seed state dict for the starting kit's submissions")
    parser.add_argument("--out", type=Path, help="output folder (default: examples/codabench/build)")
    options = parser.parse_args()
    print(build_bundle(out=options.out, weights=options.weights))
