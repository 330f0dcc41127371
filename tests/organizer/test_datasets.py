"""The test-set readers, on small files written in the real formats."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from micronet_score.organizer import DatasetError, Preprocessing, read_dataset


def _cifar_batch(path, n, label_key, classes):
    rng = np.random.default_rng(0)
    data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
    labels = [int(v) for v in rng.integers(0, classes, size=n)]
    # the real batches are pickled dicts with bytes keys (written by Python 2's cPickle)
    batch = {b"batch_label": b"testing batch 1 of 1", label_key: labels, b"data": data,
             b"filenames": [b"x.png"] * n}
    with open(path, "wb") as fh:
        pickle.dump(batch, fh, protocol=2)
    return data, labels


def test_cifar10_batch(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    data, labels = _cifar_batch(folder / "test_batch", 12, b"labels", 10)
    ds = read_dataset(folder, "cifar10", Preprocessing(scale=1.0))
    assert len(ds) == 12 and ds.y.tolist() == labels
    # row layout: 1024 red, 1024 green, 1024 blue values, each 32x32 row-major
    assert ds.x[3, 1, 2, 5].item() == data[3, 1024 + 2 * 32 + 5]
    assert read_dataset(folder).y.tolist() == labels  # the format is recognised from the folder


def test_cifar100_fine_labels_and_normalization(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    data, labels = _cifar_batch(folder / "test", 5, b"fine_labels", 100)
    pre = Preprocessing(mean=(0.5, 0.25, 0.0), std=(0.5, 0.5, 1.0))
    ds = read_dataset(folder, "cifar100", pre)
    assert ds.y.tolist() == labels
    raw = data[0, 1024 + 7].item()  # green channel, row 0, column 7
    assert ds.x[0, 1, 0, 7].item() == pytest.approx((raw / 255 - 0.25) / 0.5)


def test_cifar_pickle_that_would_run_code_is_refused(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    marker = tmp_path / "ran"

    class Plant:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    (folder / "test_batch").write_bytes(pickle.dumps({b"data": Plant(), b"labels": []}))
    with pytest.raises(DatasetError, match=r"refused global (io|builtins)\.open"):
        read_dataset(folder, "cifar10")
    assert not marker.exists()


def test_npz_channels_last_and_first(tmp_path):
    x = np.arange(2 * 4 * 4 * 3, dtype=np.uint8).reshape(2, 4, 4, 3)
    np.savez(tmp_path / "nhwc.npz", x=x, y=np.array([1, 0]))
    np.savez(tmp_path / "nchw.npz", x=x.transpose(0, 3, 1, 2), y=np.array([1, 0]))
    a = read_dataset(tmp_path / "nhwc.npz", preprocessing=Preprocessing(scale=1.0))
    b = read_dataset(tmp_path / "nchw.npz", "npz", Preprocessing(scale=1.0))
    assert a.x.shape == (2, 3, 4, 4) and torch.equal(a.x, b.x)
    assert a.x[1, 2, 3, 0].item() == x[1, 3, 0, 2]  # 48 + 3*12 + 0*3 + 2 = 86
    assert a.x[1, 2, 3, 0].item() == 86


def test_imagefolder_resize_and_center_crop(tmp_path):
    image = pytest.importorskip("PIL.Image")
    for cls, color in (("cat", (255, 0, 0)), ("dog", (0, 0, 255))):
        (tmp_path / cls).mkdir()
        for i in range(2):
            img = image.new("RGB", (40, 20), color)
            img.putpixel((20, 10), (0, 255, 0))  # the centre pixel survives the crop
            img.save(tmp_path / cls / f"{i}.png")
    (tmp_path / "cat" / "notes.txt").write_text("not an image")
    ds = read_dataset(tmp_path, "imagefolder", Preprocessing(scale=1.0, resize=10, crop=8))
    # shorter side 20 -> 10: 40x20 becomes 20x10, then the central 8x8
    assert ds.x.shape == (4, 3, 8, 8) and ds.y.tolist() == [0, 0, 1, 1]
    assert ds.x[0, 0, 0, 0].item() == 255 and ds.x[2, 2, 0, 0].item() == 255


@pytest.mark.parametrize("make, message", [
    (lambda p: p / "nothing.npz", "does not exist"),
    (lambda p: (np.savez(p / "a.npz", x=np.zeros((2, 3, 4, 4))), p / "a.npz")[1], "needs arrays 'x' and 'y'"),
    (lambda p: (np.savez(p / "b.npz", x=np.zeros((2, 3, 4, 4)), y=np.zeros(3, int)), p / "b.npz")[1],
     "expected x of shape"),
    (lambda p: (p / "empty").mkdir() or p / "empty", "one sub-folder per class"),
])
def test_bad_data_is_one_clear_error(tmp_path, make, message):
    with pytest.raises(DatasetError, match=message):
        read_dataset(make(tmp_path))


def test_rules_name_the_preprocessing():
    pre = Preprocessing.from_rules("micronet-2019-imagenet")
    assert (pre.resize, pre.crop, pre.mean) == (256, 224, (0.485, 0.456, 0.406))
    assert pre.override(mean=[0.5, 0.5, 0.5]).mean == (0.5, 0.5, 0.5)
    with pytest.raises(DatasetError, match="unknown preprocessing key"):
        pre.override(flip=True)
