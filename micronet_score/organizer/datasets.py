"""Readers for test sets in their standard on-disk formats, preprocessed as a rule set says.

Formats: the CIFAR-10/100 python pickle batches (``test_batch`` / ``test``), an ImageNet-style class-folder tree
(one folder per class, sorted names are the labels; needs Pillow), and ``.npz`` files with ``x`` (N, C, H, W or
N, H, W, C) and ``y`` arrays.

>>> import numpy as np, tempfile, os
>>> path = os.path.join(tempfile.mkdtemp(), "tiny.npz")
>>> np.savez(path, x=np.zeros((2, 3, 4, 4), np.uint8), y=np.array([0, 1]))
>>> data = read_dataset(path, "npz")
>>> data.x.shape, data.y.tolist()
(torch.Size([2, 3, 4, 4]), [0, 1])
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from micronet_score.organizer.errors import DatasetError

FORMATS = ("cifar10", "cifar100", "imagefolder", "npz")
_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".gif", ".webp", ".tif", ".tiff"}


@dataclass(frozen=True)
class Preprocessing:
    """``x * scale``, then ``(x - mean) / std`` per channel; images first resized (shorter side) and center-cropped.

    >>> Preprocessing.from_rules("micronet-2019-cifar100").mean
    (0.5071, 0.4865, 0.4409)
    """

    scale: float = 1 / 255
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    resize: int | None = None
    crop: int | None = None

    @classmethod
    def from_rules(cls, rules: Any) -> Preprocessing:
        """The preprocessing a rule set (name, path or :class:`~micronet_score.rules.RuleSet`) names."""
        from micronet_score.rules import get

        r = get(rules)
        return cls(scale=getattr(r, "data_scale", 1 / 255), mean=getattr(r, "data_mean", None),
                   std=getattr(r, "data_std", None), resize=getattr(r, "data_resize", None),
                   crop=getattr(r, "data_crop", None))

    def override(self, **changes: Any) -> Preprocessing:
        """A copy with ``changes`` (keys ``scale``, ``mean``, ``std``, ``resize``, ``crop``) applied."""
        bad = set(changes) - {"scale", "mean", "std", "resize", "crop"}
        if bad:
            raise DatasetError(f"unknown preprocessing key(s) {sorted(bad)}; use scale, mean, std, resize, crop")
        for key in ("mean", "std"):
            if changes.get(key) is not None:
                changes[key] = tuple(float(v) for v in changes[key])
        return replace(self, **changes)


@dataclass(frozen=True, eq=False)
class Dataset:
    """Raw images (N x C x H x W, as stored), integer labels ``y`` (N) and the preprocessing applied per batch.

    Images stay in their stored form (usually uint8) so a large test set costs a quarter of its float size.
    """

    images: torch.Tensor
    y: torch.Tensor
    preprocessing: Preprocessing = Preprocessing()

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def batch(self, start: int, stop: int) -> torch.Tensor:
        """Preprocessed float32 inputs ``start:stop``."""
        return _normalize(self.images[start:stop], self.preprocessing)

    @property
    def x(self) -> torch.Tensor:
        """Every input, preprocessed (float32)."""
        return self.batch(0, len(self))


def read_dataset(path: str | Path, format: str | None = None,
                 preprocessing: Preprocessing | None = None) -> Dataset:
    """Read the test set at ``path`` in ``format`` (guessed from the path when None) and preprocess it."""
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"test data {str(path)!r} does not exist")
    fmt = format or _guess_format(path)
    if fmt not in FORMATS:
        raise DatasetError(f"unknown dataset format {fmt!r}; use one of {', '.join(FORMATS)}")
    pre = preprocessing or Preprocessing()
    if fmt == "imagefolder":
        images, labels = _read_imagefolder(path, pre)
    elif fmt == "npz":
        images, labels = _read_npz(path)
    else:
        images, labels = _read_cifar(path, fmt)
    images_t = torch.from_numpy(np.ascontiguousarray(images))
    for label, values in (("mean", pre.mean), ("std", pre.std)):
        if values is not None and len(values) not in (1, images_t.shape[1]):
            raise DatasetError(f"{path}: {label} has {len(values)} values but the images have "
                               f"{images_t.shape[1]} channels")
    return Dataset(images_t, torch.as_tensor(labels, dtype=torch.long), pre)


def _guess_format(path: Path) -> str:
    if path.suffix == ".npz":
        return "npz"
    if (path / "test_batch").is_file() or path.name == "test_batch":
        return "cifar10"
    if (path / "test").is_file() or path.name == "test" and path.is_file():
        return "cifar100"
    if path.is_dir():
        return "imagefolder"
    raise DatasetError(f"cannot tell the format of {str(path)!r}; pass the dataset format ({', '.join(FORMATS)})")


def _read_cifar(path: Path, fmt: str) -> tuple[np.ndarray, np.ndarray]:
    name = "test_batch" if fmt == "cifar10" else "test"
    file = path / name if path.is_dir() else path
    if not file.is_file():
        raise DatasetError(f"{str(path)!r} has no {name!r} file: point at the extracted "
                           f"{'cifar-10-batches-py' if fmt == 'cifar10' else 'cifar-100-python'} folder")
    try:
        with open(file, "rb") as fh:
            batch = _CifarUnpickler(fh).load()
    except Exception as exc:
        raise DatasetError(f"{file}: not a CIFAR python batch ({type(exc).__name__}: {exc})") from None
    if not isinstance(batch, dict):
        raise DatasetError(f"{file}: not a CIFAR python batch (expected a dict)")
    batch = {k.decode() if isinstance(k, bytes) else k: v for k, v in batch.items()}
    label_key = "labels" if fmt == "cifar10" else "fine_labels"
    if "data" not in batch or label_key not in batch:
        raise DatasetError(f"{file}: a {fmt} batch needs 'data' and {label_key!r}; found {sorted(batch)}")
    data = np.asarray(batch["data"], dtype=np.uint8)
    labels = np.asarray(batch[label_key], dtype=np.int64)
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or data.shape[0] != labels.shape[0]:
        raise DatasetError(f"{file}: expected data of shape (N, 3072) and N labels, got {data.shape} and "
                           f"{labels.shape}")
    return data.reshape(-1, 3, 32, 32), labels


class _CifarUnpickler(pickle.Unpickler):
    """CIFAR batches hold dicts, lists, bytes and numpy arrays: refuse any other global (no code runs)."""

    _ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
                ("numpy._core.multiarray", "scalar"), ("_codecs", "encode")}

    def __init__(self, fh: Any) -> None:
        super().__init__(fh, encoding="bytes")

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refused global {module}.{name}")


def _read_npz(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as arrays:
            if "x" not in arrays or "y" not in arrays:
                raise DatasetError(f"{path}: an .npz test set needs arrays 'x' and 'y'; found {sorted(arrays)}")
            x, y = arrays["x"], arrays["y"]
    except DatasetError:
        raise
    except Exception as exc:
        raise DatasetError(f"{path}: not a readable .npz file ({type(exc).__name__}: {exc})") from None
    if x.ndim != 4 or y.ndim != 1 or x.shape[0] != y.shape[0]:
        raise DatasetError(f"{path}: expected x of shape (N, C, H, W) or (N, H, W, C) and y of shape (N,), "
                           f"got {x.shape} and {y.shape}")
    if x.shape[-1] in (1, 3) and x.shape[1] not in (1, 3):
        x = x.transpose(0, 3, 1, 2)
    if not np.issubdtype(y.dtype, np.integer):
        raise DatasetError(f"{path}: labels y must be integers, got {y.dtype}")
    return x, y.astype(np.int64)


def _read_imagefolder(path: Path, pre: Preprocessing) -> tuple[np.ndarray, np.ndarray]:
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - optional extra
        raise DatasetError("reading an image folder needs Pillow: pip install 'micronet-score[images]'") from None
    classes = sorted(p.name for p in path.iterdir() if p.is_dir())
    if not classes:
        raise DatasetError(f"{path}: an image folder needs one sub-folder per class, found none")
    arrays, labels = [], []
    for label, cls in enumerate(classes):
        for file in sorted((path / cls).iterdir()):
            if file.suffix.lower() not in _IMAGE_SUFFIXES:
                continue
            try:
                with Image.open(file) as img:
                    arrays.append(_resize_crop(img.convert("RGB"), pre))
            except Exception as exc:
                raise DatasetError(f"{file}: not a readable image ({type(exc).__name__}: {exc})") from None
            labels.append(label)
    if not arrays:
        raise DatasetError(f"{path}: no images found in the class folders")
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        raise DatasetError(f"{path}: images have different sizes {sorted(shapes)[:3]}; set resize and crop")
    return np.stack(arrays).transpose(0, 3, 1, 2), np.asarray(labels, dtype=np.int64)


def _resize_crop(img: Any, pre: Preprocessing) -> np.ndarray:
    from PIL import Image

    if pre.resize:
        w, h = img.size
        s = pre.resize / min(w, h)
        img = img.resize((max(1, round(w * s)), max(1, round(h * s))), Image.BILINEAR)
    if pre.crop:
        w, h = img.size
        left, top = (w - pre.crop) // 2, (h - pre.crop) // 2
        img = img.crop((left, top, left + pre.crop, top + pre.crop))
    return np.asarray(img, dtype=np.uint8)


def _normalize(images: torch.Tensor, pre: Preprocessing) -> torch.Tensor:
    x = images.to(torch.float32) * pre.scale
    if pre.mean is not None:
        x -= torch.tensor(pre.mean, dtype=torch.float32).view(1, -1, 1, 1)
    if pre.std is not None:
        x /= torch.tensor(pre.std, dtype=torch.float32).view(1, -1, 1, 1)
    return x
