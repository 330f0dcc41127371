"""``examples/seed_cifar10.py`` end to end on a tiny CIFAR-10 copy the test writes in the real pickle layout."""

from __future__ import annotations

import importlib.util
import json
import math
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
SUBSET = 12


def _load_example():
    spec = importlib.util.spec_from_file_location("seed_cifar10", ROOT / "examples" / "seed_cifar10.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    return module


def write_cifar10(folder: Path, per_batch: int = 16, seed: int = 0) -> Path:
    """The cifar-10-batches-py layout: five training batches, a test batch and batches.meta, as the
    official files store them (dicts with bytes keys, uint8 ``data`` of N x 3072, ``labels`` a list)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name in names:
        batch = {b"batch_label": name.encode(), b"labels": rng.integers(0, 10, per_batch).tolist(),
                 b"data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
                 b"filenames": [f"{name}_{i}.png".encode() for i in range(per_batch)]}
        with open(folder / name, "wb") as fh:
            pickle.dump(batch, fh, protocol=2)
    meta = {b"label_names": [n.encode() for n in ("airplane", "automobile", "bird", "cat", "deer", "dog",
                                                  "frog", "horse", "ship", "truck")],
            b"num_cases_per_batch": per_batch, b"num_vis": 3072}
    with open(folder / "batches.meta", "wb") as fh:
        pickle.dump(meta, fh, protocol=2)
    return folder


@pytest.fixture(scope="module")
def seed_run(tmp_path_factory):
    pytest.importorskip("matplotlib")
    tmp = tmp_path_factory.mktemp("seed")
    data = write_cifar10(tmp / "cifar-10-batches-py")
    example = _load_example()
    argv = ["--data", str(data), "--epochs", "1", "--finetune-epochs", "1", "--subset", str(SUBSET),
            "--batch-size", "6", "--device", "cpu", "--threads", "1", "--no-progress", "--json", str(tmp / "steps.json"),
            "--plot", str(tmp / "history.png"), "--save", str(tmp / "submission")]
    return example, tmp, example.run(argv)


def test_every_step_is_in_the_table(seed_run, capsys):
    example, tmp, steps = seed_run
    assert [s.name for s in steps] == ["dense", "pruned", "fine-tuned", "quantized"]
    text = example.table(steps)
    for name in ("dense", "pruned", "fine-tuned", "quantized", "imta-2023 score", "imta-2025 score",
                 "micronet-2019-cifar100 score (ref.)"):
        assert name in text
    assert len(text.splitlines()) == 2 + 4  # header, rule, one row per step
    rows = json.loads((tmp / "steps.json").read_text())
    assert [r["name"] for r in rows] == ["dense", "pruned", "fine-tuned", "quantized"]
    assert (tmp / "history.png").stat().st_size > 1000


def test_save_writes_a_submission_folder_that_rebuilds_the_final_model(seed_run):
    import micronet_score as ms

    _, tmp, steps = seed_run
    folder = tmp / "submission"
    assert (folder / "submission.toml").is_file()  # a save_submission folder, not a bare state dict
    model = ms.load_submission(folder)
    quantized = steps[-1]
    # the recipe carries the pruning and the 16-bit quantization: same counts, same course score terms
    report = ms.count(model, (1, 3, 32, 32))
    assert (report.params, report.nonzero_params) == (quantized.params, quantized.nonzero_params)
    assert report.mults == quantized.mults and report.adds == quantized.adds
    again = ms.score(model, rules="imta-2025", accuracy=quantized.scores["imta-2025"].accuracy)
    assert again.value == quantized.scores["imta-2025"].value


def test_accuracies_are_exact_fractions_of_the_subset(seed_run):
    _, _, steps = seed_run
    for s in steps:
        assert s.total == SUBSET  # the first 12 test images
        assert 0 <= s.correct <= SUBSET and s.accuracy == s.correct / SUBSET
        for rules in ("imta-2023", "imta-2025"):
            assert s.scores[rules].accuracy == s.correct / SUBSET
        assert s.scores["micronet-2019-cifar100"].accuracy is None  # CIFAR-100 rules: reference only


def test_scores_are_finite_and_quantized_storage_is_lower(seed_run):
    _, _, steps = seed_run
    for s in steps:
        for score in s.scores.values():
            assert math.isfinite(score.value) and score.value > 0
    dense, pruned, tuned, quant = steps
    # pruning removes half the ranked weights (the classifier is not ranked): fewer non-zeros
    assert pruned.nonzero_params < dense.nonzero_params and pruned.params == dense.params
    for rules in ("imta-2023", "imta-2025", "micronet-2019-cifar100"):
        assert quant.scores[rules].param_storage < dense.scores[rules].param_storage
    # imta-2025 prices weights at their bit width: the float16 step stores half of the fine-tuned float32 one
    assert quant.scores["imta-2025"].param_storage == tuned.scores["imta-2025"].param_storage / 2


def test_the_classifier_is_not_emptied_by_pruning(seed_run):
    _, _, steps = seed_run
    # densenet-seed's classifier: Linear(192, 10), 192*10 = 1,920 weights, none pruned by default
    assert [s.classifier_nonzero for s in steps] == [1920] * 4


@pytest.mark.parametrize("case", ["no folder", "missing batch", "cuda", "bad teacher"])
def test_bad_input_is_one_line_and_exit_1(tmp_path, capsys, case):
    example = _load_example()
    data = write_cifar10(tmp_path / "cifar", per_batch=2)
    argv = ["--data", str(data), "--epochs", "0", "--finetune-epochs", "0", "--device", "cpu", "--no-progress"]
    if case == "no folder":
        argv[1] = str(tmp_path / "nowhere")
    elif case == "missing batch":
        (data / "data_batch_3").unlink()
    elif case == "cuda":
        if __import__("torch").cuda.is_available():
            pytest.skip("a GPU is available here")
        argv[-2] = "cuda"
    else:
        (tmp_path / "teacher.pt").write_bytes(b"not a checkpoint")
        argv += ["--teacher", str(tmp_path / "teacher.pt")]
    assert example.main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("seed_cifar10.py: error: ") and "\n" not in err and "Traceback" not in err
    expected = {"no folder": "cifar-10-batches-py", "missing batch": "data_batch_3", "cuda": "--device cpu",
                "bad teacher": "teacher.pt"}[case]
    assert expected in err


def test_cutmix_ratio_is_the_area_left_unpasted():
    torch = pytest.importorskip("torch")
    example = _load_example()
    x = torch.zeros(4, 3, 32, 32)
    x[1::2] = 1.0  # examples 1 and 3 are ones: what is pasted into a zero image shows
    mixed, ya, yb, lam = example.mix(x, torch.arange(4), "cutmix", 1.0, np.random.default_rng(3),
                                     torch.Generator().manual_seed(0))
    for i in range(4):
        pasted_from = int(yb[i])
        if x[i, 0, 0, 0] != x[pasted_from, 0, 0, 0]:  # the box is visible: its area is 1 - lam of the image
            changed = int((mixed[i] != x[i]).sum()) // 3
            assert changed == round((1 - lam) * 32 * 32)
    assert ya.tolist() == [0, 1, 2, 3]


def test_distillation_trains_against_a_saved_teacher(tmp_path):
    torch = pytest.importorskip("torch")
    import micronet_score as ms

    example = _load_example()
    data = write_cifar10(tmp_path / "cifar", per_batch=4)
    teacher_path = tmp_path / "teacher.pt"
    torch.save(ms.models.build("resnet18-cifar", seed=1).state_dict(), teacher_path)
    args = example.parse_args(["--data", str(data), "--teacher", str(teacher_path), "--batch-size", "4",
                               "--no-progress"])
    device = torch.device("cpu")
    teacher = example.load_teacher(args, device)
    assert not teacher.training and not any(p.requires_grad for p in teacher.parameters())
    train_set, _ = example.load_cifar10(data, 4)
    student = ms.models.build("densenet-seed")
    before = student.linear.weight.detach().clone()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        example.train(student, train_set, 1, 1e-3, args, device, teacher, "distill", torch.Generator(),
                      np.random.default_rng(0))
    finally:
        torch.set_num_threads(threads)
    assert not torch.equal(before, student.linear.weight)


def test_distillation_loss_is_zero_when_the_student_matches_the_teacher():
    torch = pytest.importorskip("torch")
    example = _load_example()
    logits = torch.tensor([[2.0, -1.0, 0.5]])
    assert float(example.distill_loss(logits, logits, 4.0)) == pytest.approx(0.0, abs=1e-7)
    # uniform student against a one-hot-ish teacher: KL = sum p log(p / (1/3)) > 0, scaled by T^2 = 16
    assert float(example.distill_loss(torch.zeros(1, 3), logits, 4.0)) > 0
