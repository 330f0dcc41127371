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

import os
import pickle
import stat
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

    Images stay in their stored form (usually uint8) so a large test set costs a quarter of its float size: feed
    a model :meth:`inputs` (or ``x``), never ``images``. ``format``, ``classes`` (the class count the format
    declares: 10 for ``cifar10``, the folder count of an image tree, None for ``.npz``) and ``source`` (the file or
    folder name) describe where the data came from.

    >>> import torch
    >>> Dataset(torch.zeros(2, 3, 4, 4, dtype=torch.uint8), torch.tensor([0, 1]), format="npz", source="t.npz")
    Dataset(npz 't.npz': 2 images 3x4x4 uint8, labels 0..1, scale 1/255)
    """

    images: torch.Tensor
    y: torch.Tensor
    preprocessing: Preprocessing = Preprocessing()
    format: str = ""
    classes: int | None = None
    source: str = ""

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def __repr__(self) -> str:
        shape = "x".join(str(d) for d in self.images.shape[1:])
        head = " ".join(part for part in (self.format, repr(self.source) if self.source else "") if part)
        labels = f"labels {int(self.y.min())}..{int(self.y.max())}" if len(self) else "no labels"
        classes = f"{self.classes} classes, " if self.classes is not None else ""
        dtype = str(self.images.dtype).replace("torch.", "")
        return (f"Dataset({head + ': ' if head else ''}{len(self):,} images {shape} {dtype}, {classes}{labels}, "
                f"{describe_preprocessing(self.preprocessing)})")

    __str__ = __repr__

    def batch(self, start: int, stop: int) -> torch.Tensor:
        """Preprocessed float32 inputs ``start:stop``."""
        return _normalize(self.images[start:stop], self.preprocessing)

    def inputs(self, preprocessing: Preprocessing | None = None) -> torch.Tensor:
        """Every input as the model takes it: float32, scaled and normalised by ``preprocessing`` (default: the
        data's own, the one :func:`~micronet_score.organizer.evaluate` uses). Resizing and cropping happened when
        the images were read, so ``preprocessing`` may change ``scale``, ``mean`` and ``std`` only.

        >>> import torch
        >>> data = Dataset(torch.full((1, 1, 1, 1), 255, dtype=torch.uint8), torch.tensor([0]))
        >>> data.inputs().tolist(), data.inputs(Preprocessing(mean=(0.5,), std=(0.5,))).tolist()
        ([[[[1.0]]]], [[[[1.0]]]])
        """
        pre = self.preprocessing if preprocessing is None else preprocessing
        if (pre.resize, pre.crop) != (self.preprocessing.resize, self.preprocessing.crop):
            raise DatasetError("resize and crop are applied when the images are read: read the data again with "
                               "read_dataset(path, format, preprocessing) to change them")
        return _normalize(self.images, pre)

    @property
    def x(self) -> torch.Tensor:
        """Every input, preprocessed (float32): ``inputs()``."""
        return self.inputs()


def describe_preprocessing(pre: Preprocessing) -> str:
    """One line naming what is done to the stored pixels (``scale 1/255, mean (...), std (...)``).

    >>> describe_preprocessing(Preprocessing(mean=(0.5,), std=(0.25,), resize=256, crop=224))
    'resize 256, crop 224, scale 1/255, mean (0.5), std (0.25)'
    """
    parts = []
    if pre.resize:
        parts.append(f"resize {pre.resize}")
    if pre.crop:
        parts.append(f"crop {pre.crop}")
    scale = "1/255" if pre.scale == 1 / 255 else f"{pre.scale:g}"
    parts.append(f"scale {scale}")
    for name in ("mean", "std"):
        values = getattr(pre, name)
        if values is not None:
            parts.append(f"{name} ({', '.join(f'{v:g}' for v in values)})")
    return ", ".join(parts)


def preprocessing_dict(pre: Preprocessing) -> dict[str, Any]:
    """The preprocessing as plain JSON data."""
    return {"scale": pre.scale, "mean": list(pre.mean) if pre.mean is not None else None,
            "std": list(pre.std) if pre.std is not None else None, "resize": pre.resize, "crop": pre.crop}


def read_dataset(path: str | Path, format: str | None = None,
                 preprocessing: Preprocessing | None = None) -> Dataset:
    """Read the test set at ``path`` and preprocess it.

    The format is read from the content (an ``.npz`` archive, a CIFAR pickle and which of CIFAR-10/100 its label
    key says, a class-folder tree); a ``format`` given that disagrees with the content is refused, naming what
    the data looks like. Labels outside ``[0, classes)``, pixels that are not 8-bit values, non-regular files and
    pickles that would expand beyond their declared shape are refused, never misread.
    """
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"test data {str(path)!r} does not exist")
    if format is not None and format not in FORMATS:
        raise DatasetError(f"unknown dataset format {format!r}; use one of {', '.join(FORMATS)}")
    seen = _detect_format(path)
    if format is not None and seen is not None and seen != format and not (seen == "cifar" and format in _CIFAR):
        raise DatasetError(f"{path}: the format asked for is {format!r} but the data looks like {_LOOKS[seen]}")
    fmt = format or seen
    if fmt is None:
        raise DatasetError(f"cannot tell the format of {str(path)!r}; pass the dataset format ({', '.join(FORMATS)})")
    pre = preprocessing or Preprocessing()
    classes: int | None
    if fmt == "imagefolder":
        images, labels, classes = _read_imagefolder(path, pre)
    elif fmt == "npz":
        images, labels = _read_npz(path)
        classes = None
    else:
        images, labels, fmt = _read_cifar(path, fmt if format is not None else None)
        classes = _CIFAR[fmt]
    images_t = torch.from_numpy(np.ascontiguousarray(images))
    for label, values in (("mean", pre.mean), ("std", pre.std)):
        if values is not None and len(values) not in (1, images_t.shape[1]):
            raise DatasetError(f"{path}: {label} has {len(values)} values but the images have "
                               f"{images_t.shape[1]} channels")
    return Dataset(images_t, torch.from_numpy(labels), pre, format=fmt, classes=classes, source=path.name)


_CIFAR = {"cifar10": 10, "cifar100": 100}
_LOOKS = {"cifar10": "CIFAR-10 (a 'test_batch' pickle, 10 classes)",
          "cifar100": "CIFAR-100 (a 'test' pickle with 'fine_labels', 100 classes)",
          "cifar": "a CIFAR python pickle", "npz": "an .npz archive",
          "imagefolder": "an image folder (one sub-folder per class)"}


def _regular(file: Path) -> None:
    """Refuse anything but a regular file (a FIFO would block the reader, a device never ends)."""
    try:
        mode = file.stat().st_mode
    except OSError as exc:
        raise DatasetError(f"{file}: cannot be read ({exc.strerror})") from None
    if not stat.S_ISREG(mode):
        raise DatasetError(f"{file}: not a regular file (a FIFO, socket, device or folder); give the data as "
                           "plain files")


def _batch_file(path: Path) -> bool:
    """A CIFAR batch name present as anything but a folder (a FIFO is refused later, not mistaken for absent)."""
    return os.path.lexists(path) and not path.is_dir()


def _detect_format(path: Path) -> str | None:
    """What ``path`` holds, from its content: ``npz``, ``cifar10``/``cifar100`` (a folder, or ``cifar`` for a
    pickle file whose label key decides), ``imagefolder``, or None."""
    if path.is_dir():
        if _batch_file(path / "test_batch"):
            return "cifar10"
        if _batch_file(path / "test"):
            return "cifar100"
        return "imagefolder"
    _regular(path)
    with open(path, "rb") as fh:
        head = fh.read(2)
    if head == b"PK":
        return "npz"
    if head[:1] == b"\x80":
        return "cifar"
    return None


def _read_cifar(path: Path, fmt: str | None) -> tuple[np.ndarray, np.ndarray, str]:
    """Read a CIFAR batch; ``fmt`` None reads the format from the batch's label key."""
    if path.is_dir():
        name = "test_batch" if fmt == "cifar10" or (fmt is None and _batch_file(path / "test_batch")) else "test"
        file = path / name
        if not _batch_file(file):
            raise DatasetError(f"{str(path)!r} has no {name!r} file: point at the extracted "
                               f"{'cifar-10-batches-py' if name == 'test_batch' else 'cifar-100-python'} folder")
    else:
        file = path
    _regular(file)
    try:
        with open(file, "rb") as fh:
            batch = _CifarUnpickler(fh).load()
    except Exception as exc:
        raise DatasetError(f"{file}: not a CIFAR python batch ({type(exc).__name__}: {exc})") from None
    if not isinstance(batch, dict):
        raise DatasetError(f"{file}: not a CIFAR python batch (expected a dict)")
    batch = {k.decode() if isinstance(k, bytes) else k: v for k, v in batch.items()}
    seen = "cifar100" if "fine_labels" in batch else "cifar10" if "labels" in batch else None
    if fmt is not None and seen is not None and seen != fmt:
        raise DatasetError(f"{file}: the format asked for is {fmt!r} but the data looks like {_LOOKS[seen]}")
    fmt = fmt or seen or "cifar10"
    label_key = "labels" if fmt == "cifar10" else "fine_labels"
    if "data" not in batch or label_key not in batch:
        raise DatasetError(f"{file}: a {fmt} batch needs 'data' and {label_key!r}; found {sorted(map(str, batch))}")
    raw_labels, data = batch[label_key], batch["data"]
    # Check the declared shape before anything is converted: lists of shared references expand on conversion.
    if not isinstance(raw_labels, (list, np.ndarray)):
        raise DatasetError(f"{file}: {label_key!r} must be a list of integers, got {type(raw_labels).__name__}")
    if isinstance(raw_labels, list) and not all(type(v) is int or isinstance(v, np.integer) for v in raw_labels):
        bad = next(v for v in raw_labels if not (type(v) is int or isinstance(v, np.integer)))
        raise DatasetError(f"{file}: {label_key!r} must be a flat list of integers; found a "
                           f"{type(bad).__name__}")
    if not isinstance(data, np.ndarray) or data.dtype.kind not in "biuf":
        raise DatasetError(f"{file}: 'data' must be a numpy array of pixels (N, 3072), got "
                           f"{type(data).__name__}{' of ' + str(data.dtype) if isinstance(data, np.ndarray) else ''}")
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or data.shape[0] != len(raw_labels):
        raise DatasetError(f"{file}: expected data of shape (N, 3072) and N labels, got {data.shape} and "
                           f"{len(raw_labels)} labels")
    labels = _labels(np.asarray(raw_labels), _CIFAR[fmt], f"{file}: {label_key!r}", f"{fmt} has")
    return _pixels(data, f"{file}: 'data'").reshape(-1, 3, 32, 32), labels, fmt


def _labels(y: np.ndarray, classes: int | None, where: str, owner: str) -> np.ndarray:
    """``y`` as int64 class indices, refusing non-integers and labels outside ``[0, classes)`` (checked on the
    stored values, so a -1 wrapped to 255 in a uint8 array is caught, not read as class 255)."""
    if y.dtype.kind not in "iu":
        raise DatasetError(f"{where}: labels must be integers, got {y.dtype}")
    if y.size == 0:
        return y.astype(np.int64)
    low, high = int(y.min()), int(y.max())
    if low < 0:
        raise DatasetError(f"{where}: label {low} is negative; labels are class indices 0, 1, ...")
    if classes is not None and high >= classes:
        raise DatasetError(f"{where}: label {high} is outside 0..{classes - 1} ({owner} {classes} classes)")
    if high > np.iinfo(np.int32).max:
        raise DatasetError(f"{where}: label {high} is not a class index (a wrapped negative number?)")
    return y.astype(np.int64)


def _pixels(x: np.ndarray, where: str) -> np.ndarray:
    """8-bit pixel values as uint8: integers in 0..255 are kept exactly; floats and wider values are refused
    (the preprocessing's ``scale`` applies to 0..255 pixels), never clipped or cast."""
    if x.dtype == np.uint8:
        return x
    if x.dtype.kind in "iu":
        low, high = (int(x.min()), int(x.max())) if x.size else (0, 0)
        if low >= 0 and high <= 255:
            return x.astype(np.uint8)
        raise DatasetError(f"{where}: pixel values must be 8-bit (0..255); these are {x.dtype} from {low} to "
                           f"{high}: convert to 8 bits yourself (16-bit images: x >> 8) so nothing is clipped")
    if x.dtype.kind == "f":
        low, high = (float(x.min()), float(x.max())) if x.size else (0.0, 0.0)
        raise DatasetError(f"{where}: pixels are {x.dtype} ({low:g} to {high:g}); the readers take 8-bit "
                           "pixels (uint8 0..255, scaled by the rule set's data_scale): store them as uint8, e.g. "
                           "np.round(x * 255).astype(np.uint8) for values in 0..1")
    raise DatasetError(f"{where}: pixels must be uint8 values 0..255, got {x.dtype}")


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
    _regular(path)
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
    return _pixels(x, f"{path}: x"), _labels(y, None, f"{path}: y", "")


_EIGHT_BIT_MODES = {"1", "L", "P", "RGB", "RGBA", "RGBX", "RGBa", "LA", "La", "PA", "CMYK", "YCbCr", "LAB", "HSV"}


def _read_imagefolder(path: Path, pre: Preprocessing) -> tuple[np.ndarray, np.ndarray, int]:
    """Like torchvision's ``ImageFolder``: sorted sub-folder names are labels 0, 1, ...; hidden entries (names
    starting with a dot) are skipped; a class folder without images is refused (skipping it would shift every
    later label)."""
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - optional extra
        raise DatasetError("reading an image folder needs Pillow: pip install Pillow (in a clone: pip install -e '.[images]')") from None
    classes = sorted(p.name for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DatasetError(f"{path}: an image folder needs one sub-folder per class, found none")
    arrays, labels = [], []
    for label, cls in enumerate(classes):
        files = [f for f in sorted((path / cls).iterdir())
                 if not f.name.startswith(".") and f.suffix.lower() in _IMAGE_SUFFIXES]
        if not files:
            raise DatasetError(f"{path}: class folder {cls!r} holds no images; remove it or add its images "
                               "(labels are the sorted folder names: skipping it would shift later labels)")
        for file in files:
            _regular(file)
            try:
                with Image.open(file) as img:
                    if img.mode not in _EIGHT_BIT_MODES:
                        raise DatasetError(f"{file}: a {img.mode} image (16-bit or float pixels); the reader "
                                           "takes 8-bit images: convert it to 8 bits so nothing is clipped")
                    arrays.append(_resize_crop(img.convert("RGB"), pre))
            except DatasetError:
                raise
            except Exception as exc:
                raise DatasetError(f"{file}: not a readable image ({type(exc).__name__}: {exc})") from None
            labels.append(label)
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        raise DatasetError(f"{path}: images have different sizes {sorted(shapes)[:3]}; set resize and crop")
    return np.stack(arrays).transpose(0, 3, 1, 2), np.asarray(labels, dtype=np.int64), len(classes)


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
