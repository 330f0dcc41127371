"""The test-set readers refuse what they would misread (each case was read wrong, or hung, before)."""

from __future__ import annotations

import os
import pickle
import threading

import numpy as np
import pytest
import torch

from micronet_score.organizer import DatasetError, Preprocessing, evaluate, read_dataset
from micronet_score.organizer.datasets import Dataset


def _batch(path, data, labels, label_key=b"labels"):
    with open(path, "wb") as fh:
        pickle.dump({b"batch_label": b"testing batch 1 of 1", label_key: labels, b"data": data}, fh, protocol=2)


def _cifar10(folder, n=4, labels=None, data=None):
    folder.mkdir(exist_ok=True)
    data = np.arange(n * 3072, dtype=np.int64).reshape(n, 3072) % 256 if data is None else data
    _batch(folder / "test_batch", data.astype(np.uint8) if data.dtype == np.int64 else data,
           list(range(n)) if labels is None else labels)
    return folder


# --- labels -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("labels, message", [([0, 1, 10, 2], r"label 10 is outside 0\.\.9"),
                                             ([0, -1, 2, 3], "label -1 is negative"),
                                             ([0, 1.0, 2, 3], "flat list of integers")])
def test_cifar_labels_outside_the_classes_are_refused(tmp_path, labels, message):
    with pytest.raises(DatasetError, match=message):
        read_dataset(_cifar10(tmp_path / "c", labels=labels))


def test_npz_negative_label_is_refused(tmp_path):
    np.savez(tmp_path / "t.npz", x=np.zeros((2, 3, 4, 4), np.uint8), y=np.array([0, -1]))
    with pytest.raises(DatasetError, match="label -1 is negative"):
        read_dataset(tmp_path / "t.npz")


def test_wrapped_unsigned_label_is_refused_against_the_models_outputs(tmp_path):
    # a -1 stored in uint8 reads as 255; a model with 10 logits can never be right on it
    np.savez(tmp_path / "t.npz", x=np.zeros((2, 3, 4, 4), np.uint8), y=np.array([0, 255], np.uint8))
    data = read_dataset(tmp_path / "t.npz")
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(48, 10))
    with pytest.raises(DatasetError, match="label 255 but the model gives 10 logits"):
        evaluate(model, data)


def test_uint64_label_beyond_int64_is_not_wrapped(tmp_path):
    np.savez(tmp_path / "t.npz", x=np.zeros((1, 3, 4, 4), np.uint8), y=np.array([2**63 + 5], np.uint64))
    with pytest.raises(DatasetError, match="not a class index"):
        read_dataset(tmp_path / "t.npz")


# --- pixels -------------------------------------------------------------------------------------------------

def test_float_cifar_data_is_refused_not_cast_to_zero(tmp_path):
    folder = tmp_path / "c"
    folder.mkdir()
    _batch(folder / "test_batch", np.full((2, 3072), 0.5, np.float32), [0, 1])  # cast to uint8 it was all 0
    with pytest.raises(DatasetError, match="pixels are float32"):
        read_dataset(folder)


def test_wide_cifar_data_is_refused_not_wrapped(tmp_path):
    folder = tmp_path / "c"
    folder.mkdir()
    _batch(folder / "test_batch", np.full((2, 3072), 300, np.uint16), [0, 1])  # 300 wrapped to 44
    with pytest.raises(DatasetError, match="must be 8-bit"):
        read_dataset(folder)


def test_wide_integer_cifar_data_within_8_bits_is_read_exactly(tmp_path):
    folder = tmp_path / "c"
    folder.mkdir()
    _batch(folder / "test_batch", np.full((2, 3072), 200, np.int16), [0, 1])
    data = read_dataset(folder, preprocessing=Preprocessing(scale=1.0))
    assert data.images.dtype == torch.uint8 and data.x[1, 2, 31, 31].item() == 200


@pytest.mark.parametrize("x, message", [(np.full((1, 3, 2, 2), 40000, np.uint16), "must be 8-bit"),
                                        (np.full((1, 3, 2, 2), 0.5), "pixels are float64")])
def test_npz_16_bit_or_float_images_are_refused(tmp_path, x, message):
    np.savez(tmp_path / "t.npz", x=x, y=np.array([0]))
    with pytest.raises(DatasetError, match=message):
        read_dataset(tmp_path / "t.npz")


def test_16_bit_png_is_refused_not_clipped(tmp_path):
    image = pytest.importorskip("PIL.Image")
    (tmp_path / "a").mkdir()
    image.fromarray(np.full((4, 4), 40000, np.uint16)).save(tmp_path / "a" / "0.png")  # "RGB" clips it to 255
    with pytest.raises(DatasetError, match="16-bit or float pixels"):
        read_dataset(tmp_path, "imagefolder")


# --- class trees --------------------------------------------------------------------------------------------

def _tree(root, classes=("cat", "dog")):
    image = pytest.importorskip("PIL.Image")
    for value, cls in enumerate(classes):
        (root / cls).mkdir(parents=True)
        for i in range(2):
            image.new("RGB", (2, 2), (value, 0, 0)).save(root / cls / f"{i}.png")
    return root


def test_hidden_folders_and_files_are_skipped_without_a_label_shift(tmp_path):
    root = _tree(tmp_path / "t")
    (root / ".ipynb_checkpoints").mkdir()  # sorts before "cat": it used to take label 0
    (root / "cat" / ".0.png").write_bytes(b"resource fork")  # macOS ._ files end in .png too
    data = read_dataset(root)
    assert data.y.tolist() == [0, 0, 1, 1] and data.classes == 2
    assert data.images[2, 0, 0, 0].item() == 1  # a dog pixel (red = 1) has label 1


def test_an_image_less_class_folder_is_refused(tmp_path):
    root = _tree(tmp_path / "t")
    (root / "bird").mkdir()  # would be label 0 with no images, shifting cat to 1 and dog to 2
    (root / "bird" / "README.txt").write_text("todo")
    with pytest.raises(DatasetError, match="class folder 'bird' holds no images"):
        read_dataset(root)


def _in_thread(call):
    """Run ``call`` in a thread; a reader blocked on a FIFO fails the test instead of hanging it."""
    outcome: list = []

    def run():
        try:
            outcome.append(call())
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(20)
    return thread, outcome


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
@pytest.mark.parametrize("where", ["tree", "npz", "cifar"])
def test_a_fifo_is_refused_without_hanging(tmp_path, where):
    if where == "tree":
        root = _tree(tmp_path / "t")
        fifo = root / "cat" / "0a.png"
    elif where == "npz":
        root = fifo = tmp_path / "test.npz"
    else:
        root = tmp_path / "cifar-10-batches-py"
        root.mkdir()
        fifo = root / "test_batch"
    os.mkfifo(fifo)
    thread, outcome = _in_thread(lambda: read_dataset(root))
    if thread.is_alive():  # release the blocked reader before failing
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        os.close(fd)
        thread.join(5)
        pytest.fail("the reader blocked on a FIFO")
    assert isinstance(outcome[0], DatasetError) and "not a regular file" in str(outcome[0])


# --- pickles ------------------------------------------------------------------------------------------------

def test_a_pickle_that_expands_beyond_its_declared_shape_is_refused(tmp_path):
    # one row referenced 20,000 times: a few dozen kB on disk, 61 million pixels (20,000 x 3072) once converted
    folder = tmp_path / "c"
    folder.mkdir()
    row = [0] * 3072
    _batch(folder / "test_batch", [row] * 20000, [0] * 20000)
    assert (folder / "test_batch").stat().st_size < 100_000
    with pytest.raises(DatasetError, match="'data' must be a numpy array"):
        read_dataset(folder)


def test_nested_labels_are_refused_before_conversion(tmp_path):
    folder = tmp_path / "c"
    folder.mkdir()
    inner = [0] * 1000
    _batch(folder / "test_batch", np.zeros((2, 3072), np.uint8), [inner, inner])
    with pytest.raises(DatasetError, match="flat list of integers; found a list"):
        read_dataset(folder)


# --- formats ------------------------------------------------------------------------------------------------

def test_cifar10_folder_asked_as_cifar100_says_what_it_is(tmp_path):
    folder = _cifar10(tmp_path / "cifar-10-batches-py")
    with pytest.raises(DatasetError, match=r"asked for is 'cifar100' but the data looks like CIFAR-10"):
        read_dataset(folder, "cifar100")


def test_cifar100_file_read_by_its_label_key(tmp_path):
    _batch(tmp_path / "renamed", np.zeros((3, 3072), np.uint8), [0, 50, 99], b"fine_labels")
    data = read_dataset(tmp_path / "renamed")
    assert (data.format, data.classes, data.y.tolist()) == ("cifar100", 100, [0, 50, 99])
    with pytest.raises(DatasetError, match="looks like CIFAR-100"):
        read_dataset(tmp_path / "renamed", "cifar10")


def test_npz_format_is_read_from_the_content(tmp_path):
    np.savez(tmp_path / "data.bin", x=np.zeros((1, 3, 2, 2), np.uint8), y=np.array([0]))  # writes data.bin.npz
    os.rename(tmp_path / "data.bin.npz", tmp_path / "data.bin")
    assert read_dataset(tmp_path / "data.bin").format == "npz"
    with pytest.raises(DatasetError, match="looks like an .npz archive"):
        read_dataset(tmp_path / "data.bin", "cifar100")


# --- the Dataset in a notebook ------------------------------------------------------------------------------

def test_repr_is_one_line_and_inputs_feed_a_model(tmp_path):
    data = read_dataset(_cifar10(tmp_path / "cifar-10-batches-py", n=12, labels=[i % 10 for i in range(12)]),
                        preprocessing=Preprocessing(mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25)))
    text = repr(data)
    assert "\n" not in text and len(text) < 200
    assert text == ("Dataset(cifar10 'cifar-10-batches-py': 12 images 3x32x32 uint8, 10 classes, labels 0..9, "
                    "scale 1/255, mean (0.5, 0.5, 0.5), std (0.25, 0.25, 0.25))")
    model = torch.nn.Conv2d(3, 1, 1)
    with pytest.raises(RuntimeError):
        model(data.images)  # raw uint8: what a notebook user hit
    inputs = data.inputs()
    assert inputs.dtype == torch.float32 and model(inputs).shape == (12, 1, 32, 32)
    # pixel 255 -> 255/255 = 1.0 -> (1.0 - 0.5) / 0.25 = 2.0; pixel 0 -> -2.0
    raw = int(data.images[0, 0, 0, 1])
    assert inputs[0, 0, 0, 1].item() == pytest.approx((raw / 255 - 0.5) / 0.25)
    assert torch.equal(inputs, data.x)
    assert data.inputs(Preprocessing())[0, 0, 0, 1].item() == pytest.approx(raw / 255)
    with pytest.raises(DatasetError, match="read the data again"):
        data.inputs(Preprocessing(crop=16))


def test_hand_made_dataset_with_a_negative_label_is_refused_by_evaluate():
    data = Dataset(torch.zeros(2, 3, 1, 1), torch.tensor([0, -1]))
    with pytest.raises(DatasetError, match="label -1"):
        evaluate(torch.nn.Flatten(), data)
