"""Write the three kinds of Codabench submission, each as a folder and as the zip to upload.

    python make_submission.py [--weights CHECKPOINT]

- ``save_submission/``: densenet-seed weights (``ms.save_submission``): a model on the challenge's list;
- ``pt2_submission/``: the same model as an exported program (``save_submission(..., export=(1, 3, 32, 32))``):
  how any other architecture is handed in;
- ``code_submission/``: ``code_example/net.py`` with its weights (``model = "net.py:build"``): the ingestion
  program exports it.

``--weights``: a densenet-seed state dict you trained (default: the untrained model, which scores but does not
reach the accuracy threshold).
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import zipfile
from pathlib import Path

import torch

import micronet_score as ms

HERE = Path(__file__).resolve().parent
SHAPE = (1, 3, 32, 32)  # one CIFAR-100 test example


def zip_folder(folder: Path) -> Path:
    """``folder.zip`` with the folder's files at the zip's root (where Codabench looks for submission.toml)."""
    out = folder.with_suffix(".zip")
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                zf.write(path, path.relative_to(folder).as_posix())
    return out


def make_submissions(out: Path = HERE, weights: str | None = None, seed: int = 0) -> dict[str, Path]:
    """Write the three submission folders (and their zips) under ``out``; returns the folders by kind."""
    torch.manual_seed(seed)
    model = ms.models.build("densenet-seed", num_classes=100)
    if weights:
        ms.load_weights(model, weights)
    folders = {"weights": out / "save_submission", "program": out / "pt2_submission",
               "code": out / "code_submission"}
    for folder in folders.values():
        shutil.rmtree(folder, ignore_errors=True)
    ms.save_submission(model, folders["weights"], model_name="densenet-seed", args={"num_classes": 100})
    ms.save_submission(model, folders["program"], export=SHAPE)
    spec = importlib.util.spec_from_file_location("code_example_net", HERE / "code_example" / "net.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    ms.save_submission(module.build(num_classes=100), folders["code"], model_name="net.py:build",
                       args={"num_classes": 100})
    shutil.copy(HERE / "code_example" / "net.py", folders["code"] / "net.py")
    for folder in folders.values():
        zip_folder(folder)
    return folders


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", help="a trained densenet-seed state dict")
    made = make_submissions(weights=parser.parse_args().weights)
    for kind, folder in made.items():
        print(f"{kind:8s} {folder.with_suffix('.zip')}")
