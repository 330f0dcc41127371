"""The seed recipe, trained: the grouped DenseNet on CIFAR-10, pruned, fine-tuned, stored in 16 bits, scored.

The story the project grew from (a student team's 90.1% CIFAR-10 entry with about 112k parameters): a DenseNet-BC
with grouped convolutions (``densenet-seed``: groups 3 on the stem, 2 on the dense layers' 3x3 convolutions, 3 on the
transitions), trained with mixup (or cutmix), Adam and cosine annealing, optionally distilled from a trained ResNet
teacher, then globally magnitude-pruned (the classifier is left alone by default), fine-tuned with the pruning masks
held, and quantized to 16 bits. Every step is evaluated on the test set (exact counts) and scored under the course's
CIFAR-10 rule sets (``imta-2023``, ``imta-2025``); the MicroNet CIFAR-100 rule set's score is shown for reference
only (its baselines and threshold are for CIFAR-100, not CIFAR-10).

Data: the extracted ``cifar-10-batches-py`` folder (``data_batch_1`` .. ``data_batch_5``, ``test_batch``); nothing
is downloaded.

Run (GPU when available):

    python examples/seed_cifar10.py --data ~/data/cifar-10-batches-py --epochs 300 --finetune-epochs 30

A quick CPU try on the first 512 training and test images:

    python examples/seed_cifar10.py --data ~/data/cifar-10-batches-py --epochs 1 --finetune-epochs 1 --subset 512

In Python: ``main(["--data", path, "--epochs", "1"])`` returns 0; :func:`run` returns the :class:`Step` rows.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import micronet_score as ms
from micronet_score.compress import (
    FakeQuant,
    GlobalUnstructured,
    Half,
    calibrate,
    finalize_,
    prune_,
    quantize_,
    sparsity,
)
from micronet_score.organizer.datasets import Dataset, Preprocessing, read_dataset
from micronet_score.organizer.errors import DatasetError
from micronet_score.organizer.evaluation import resolve_device

#: Rule sets for CIFAR-10 (the course's): their scores, with the accuracy, decide pass or fail.
COURSE_RULES = ("imta-2023", "imta-2025")
#: The MicroNet Challenge's CIFAR-100 rule set: shown for reference only, without an accuracy.
REFERENCE_RULES = ("micronet-2019-cifar100",)
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
STEPS = ("dense", "pruned", "fine-tuned", "quantized")


@dataclass
class Step:
    """One row of the final table: a model state, its test accuracy and its score under each rule set."""

    name: str
    correct: int
    total: int
    params: int
    nonzero_params: int
    mults: float
    adds: float
    classifier_nonzero: int
    scores: dict[str, ms.Score] = field(default_factory=dict)

    @property
    def accuracy(self) -> float:
        return self.correct / self.total

    def to_dict(self) -> dict[str, Any]:
        row = {k: v for k, v in asdict(self).items() if k != "scores"}
        row["scores"] = {name: s.to_dict() for name, s in self.scores.items()}
        return row


# ------------------------------------------------------------------------------------------------ arguments


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="seed_cifar10.py", description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, required=True,
                   help="the extracted cifar-10-batches-py folder (data_batch_1..5, test_batch)")
    p.add_argument("--epochs", type=int, default=300, help="dense training epochs (default 300)")
    p.add_argument("--finetune-epochs", type=int, default=30, help="fine-tuning epochs after pruning (default 30)")
    p.add_argument("--subset", type=int, default=None, metavar="N",
                   help="train and test on the first N examples of each (quick runs)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate, annealed to 0 on a cosine")
    p.add_argument("--finetune-lr", type=float, default=1e-4, help="fine-tuning learning rate (cosine too)")
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--mix", choices=("mixup", "cutmix", "none"), default="mixup",
                   help="batch mixing (default mixup, as the seed did)")
    p.add_argument("--mix-alpha", type=float, default=1.0, help="Beta(alpha, alpha) of the mixing ratio")
    p.add_argument("--teacher", type=Path, default=None, metavar="CKPT",
                   help="distill from this trained teacher checkpoint (loaded safely with ms.load_weights)")
    p.add_argument("--teacher-model", default="resnet18-cifar", help="zoo name of the teacher (default resnet18-cifar)")
    p.add_argument("--distill-alpha", type=float, default=0.5, help="weight of the distillation loss")
    p.add_argument("--temperature", type=float, default=4.0, help="distillation temperature")
    p.add_argument("--prune", type=float, default=0.5, help="global unstructured pruning amount (default 0.5)")
    p.add_argument("--prune-classifier", action="store_true",
                   help="rank the classifier's weights too (by default it is left alone)")
    p.add_argument("--quant", choices=("half", "int16"), default="half",
                   help="half: float16 weights and activations; int16: 16-bit static fake quantization "
                        "calibrated on training batches")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads (torch.set_num_threads; 1 is fastest on a busy machine)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--plot", type=Path, default=None, metavar="PATH",
                   help="write the accuracy-against-score history (ms.plot_history, needs matplotlib)")
    p.add_argument("--plot-rules", default="imta-2025", help="rule set of the plot (default imta-2025)")
    p.add_argument("--json", type=Path, default=None, metavar="PATH", help="write every step's numbers as JSON")
    p.add_argument("--save", type=Path, default=None, metavar="DIR",
                   help="write the final model as an ms.save_submission folder (submission.toml + weights)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = p.parse_args(argv)
    for name in ("epochs", "finetune_epochs"):
        if getattr(args, name) < 0:
            p.error(f"--{name.replace('_', '-')} must be >= 0")
    if args.subset is not None and args.subset < 1:
        p.error("--subset must be >= 1")
    if args.batch_size < 1:
        p.error("--batch-size must be >= 1")
    if not 0.0 <= args.prune < 1.0:
        p.error("--prune must be in [0, 1)")
    if args.plot is not None:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            p.error("--plot needs matplotlib: pip install matplotlib")
    if args.plot_rules not in COURSE_RULES + REFERENCE_RULES:
        p.error(f"--plot-rules must be one of {', '.join(COURSE_RULES + REFERENCE_RULES)}")
    return args


# ------------------------------------------------------------------------------------------------------ data


def load_cifar10(folder: Path, subset: int | None) -> tuple[Dataset, Dataset]:
    """The training batches and the test batch, with the course rule sets' CIFAR-10 normalisation."""
    if not folder.is_dir():
        raise DatasetError(f"--data {str(folder)!r} is not a folder: point it at the extracted "
                           "cifar-10-batches-py folder (data_batch_1..5, test_batch)")
    missing = [name for name in TRAIN_FILES + ("test_batch",) if not (folder / name).is_file()]
    if missing:
        raise DatasetError(f"--data {str(folder)!r} has no {', '.join(missing)}: point it at the extracted "
                           "cifar-10-batches-py folder")
    pre = Preprocessing.from_rules(COURSE_RULES[-1])
    parts = [read_dataset(folder / name, "cifar10", pre) for name in TRAIN_FILES]
    train = Dataset(torch.cat([d.images for d in parts]), torch.cat([d.y for d in parts]), pre)
    test = read_dataset(folder / "test_batch", "cifar10", pre)
    if subset is not None:
        train = Dataset(train.images[:subset], train.y[:subset], pre)
        test = Dataset(test.images[:subset], test.y[:subset], pre)
    return train, test


def augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random 32x32 crops of the 4-pixel zero-padded images and random horizontal flips, per example."""
    n, c, h, w = x.shape
    padded = F.pad(x, (4, 4, 4, 4))
    oy = torch.randint(0, 9, (n,), generator=gen).to(x.device)
    ox = torch.randint(0, 9, (n,), generator=gen).to(x.device)
    rows = (oy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]
    cols = (ox[:, None] + torch.arange(w, device=x.device))[:, None, None, :]
    idx_n = torch.arange(n, device=x.device)[:, None, None, None]
    idx_c = torch.arange(c, device=x.device)[None, :, None, None]
    out = padded[idx_n, idx_c, rows, cols]
    flip = (torch.rand(n, generator=gen) < 0.5).to(x.device)[:, None, None, None]
    return torch.where(flip, out.flip(3), out)


def mix(x: torch.Tensor, y: torch.Tensor, mode: str, alpha: float, rng: np.random.Generator,
        gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]:
    """Mixup (blend two images) or cutmix (paste a box of one into the other): inputs, both labels, the ratio."""
    if mode == "none" or alpha <= 0:
        return x, y, y, 1.0
    lam = float(rng.beta(alpha, alpha))
    perm = torch.randperm(x.shape[0], generator=gen).to(x.device)
    if mode == "mixup":
        return lam * x + (1 - lam) * x[perm], y, y[perm], lam
    h, w = x.shape[2:]
    cut_h, cut_w = int(h * math.sqrt(1 - lam)), int(w * math.sqrt(1 - lam))
    cy, cx = int(rng.integers(h)), int(rng.integers(w))
    y1, y2 = max(cy - cut_h // 2, 0), min(cy + cut_h // 2, h)
    x1, x2 = max(cx - cut_w // 2, 0), min(cx + cut_w // 2, w)
    x = x.clone()
    x[:, :, y1:y2, x1:x2] = x[perm, :, y1:y2, x1:x2]
    return x, y, y[perm], 1 - (y2 - y1) * (x2 - x1) / (h * w)


# -------------------------------------------------------------------------------------------------- training


def distill_loss(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL divergence between the softened teacher and student distributions, times T^2 (Hinton et al. 2015)."""
    t = temperature
    return F.kl_div(F.log_softmax(student / t, dim=1), F.softmax(teacher / t, dim=1),
                    reduction="batchmean") * t * t


def train(model: nn.Module, data: Dataset, epochs: int, lr: float, args: argparse.Namespace, device: torch.device,
          teacher: nn.Module | None, label: str, gen: torch.Generator, rng: np.random.Generator) -> None:
    """``epochs`` of Adam with a cosine-annealed learning rate, mixing batches as ``args.mix`` says."""
    if epochs == 0:
        return
    batches = math.ceil(len(data) / args.batch_size)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr,
                           weight_decay=args.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * batches)
    images, labels = data.images.to(device), data.y.to(device)
    model.to(device).train()
    for epoch in range(epochs):
        order = torch.randperm(len(data), generator=gen).to(device)
        bar = _bar(batches, f"{label} {epoch + 1}/{epochs}", args.no_progress)
        total = 0.0
        for start in range(0, len(data), args.batch_size):
            idx = order[start:start + args.batch_size]
            x = _normalize(images[idx], data.preprocessing)
            x = augment(x, gen)
            x, ya, yb, lam = mix(x, labels[idx], args.mix, args.mix_alpha, rng, gen)
            out = model(x)
            loss = lam * F.cross_entropy(out, ya) + (1 - lam) * F.cross_entropy(out, yb)
            if teacher is not None:
                with torch.no_grad():
                    soft = teacher(x)
                loss = (1 - args.distill_alpha) * loss + args.distill_alpha * distill_loss(out, soft,
                                                                                           args.temperature)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item()
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{loss.item():.3f}")
        if bar is not None:
            bar.close()
        else:
            print(f"{label} epoch {epoch + 1}/{epochs}: mean loss {total / batches:.4f}", flush=True)


def _normalize(images: torch.Tensor, pre: Preprocessing) -> torch.Tensor:
    x = images.float() * pre.scale
    mean = torch.tensor(pre.mean, device=x.device).view(1, -1, 1, 1)
    std = torch.tensor(pre.std, device=x.device).view(1, -1, 1, 1)
    return (x - mean) / std


def _bar(total: int, desc: str, disabled: bool) -> Any:
    if disabled:
        return None
    try:
        from tqdm import tqdm
    except ImportError:  # the progress extra is optional: plain per-epoch lines instead
        return None
    return tqdm(total=total, desc=desc, unit="batch", leave=False, file=sys.stderr)


def load_teacher(args: argparse.Namespace, device: torch.device) -> nn.Module | None:
    """The trained teacher from ``--teacher`` (weights only, read without running pickled code), frozen."""
    if args.teacher is None:
        return None
    teacher = ms.load_weights(ms.models.build(args.teacher_model, num_classes=10), args.teacher)
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher.to(device).eval()


# --------------------------------------------------------------------------------------------------- scoring


def measure(name: str, model: nn.Module, test: Dataset, device: torch.device, progress: bool) -> Step:
    """Accuracy on the test set and the count and scores of ``model`` (counted on the CPU; left unchanged)."""
    acc = ms.evaluate(model, test, batch_size=256, device=device, progress=progress)
    model.to("cpu")
    report = ms.count(model, (1, 3, 32, 32))
    classifier = _classifier(model)
    step = Step(name, acc.correct, acc.total, report.params, report.nonzero_params, report.mults, report.adds,
                int(torch.count_nonzero(classifier.weight)))
    for rules in COURSE_RULES:
        step.scores[rules] = ms.score(model, rules=rules, accuracy=acc.as_tuple())
    for rules in REFERENCE_RULES:
        step.scores[rules] = ms.score(report, rules=rules)
    return step


def _classifier(model: nn.Module) -> nn.Module:
    return [m for m in model.modules() if isinstance(m, nn.Linear)][-1]


def table(steps: list[Step]) -> str:
    """The final table: one row per step, one score column per rule set."""
    head = ["step", "accuracy", "non-zero params", "mults", "adds"]
    head += [f"{r} score" for r in COURSE_RULES] + [f"{r} score (ref.)" for r in REFERENCE_RULES]
    rows = [head]
    for s in steps:
        rows.append([s.name, f"{s.correct:,}/{s.total:,} ({s.accuracy:.2%})", f"{s.nonzero_params:,}",
                     f"{s.mults:,.0f}", f"{s.adds:,.0f}"]
                    + [f"{s.scores[r].value:.4f}" for r in COURSE_RULES + REFERENCE_RULES])
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
             for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def storage_table(steps: list[Step]) -> str:
    """Parameter storage and math ops (32-bit equivalents) behind each score."""
    lines = []
    for rules in COURSE_RULES + REFERENCE_RULES:
        parts = [f"{s.name} {s.scores[rules].param_storage:,.0f} / {s.scores[rules].math_ops:,.0f}" for s in steps]
        lines.append(f"{rules} storage / ops: " + "; ".join(parts))
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------------- run


def run(argv: list[str] | None = None) -> list[Step]:
    """Train, prune, fine-tune and quantize as ``argv`` says; print the table and return the steps."""
    args = parse_args(argv)
    threads = torch.get_num_threads()
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        return _run(args)
    finally:
        torch.set_num_threads(threads)  # in-process callers (tests) keep their setting


def _run(args: argparse.Namespace) -> list[Step]:
    device = resolve_device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                            "cpu" if args.device == "auto" else args.device)
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    progress = not args.no_progress
    train_set, test_set = load_cifar10(args.data, args.subset)
    teacher = load_teacher(args, device)
    print(f"CIFAR-10 from {args.data}: {len(train_set):,} training and {len(test_set):,} test images; device "
          f"{device}; {args.epochs} epochs + {args.finetune_epochs} fine-tuning epochs; {args.mix}"
          f"{'; teacher ' + str(args.teacher) if teacher is not None else ''}", flush=True)
    started = time.perf_counter()

    model = ms.models.build("densenet-seed", num_classes=10, seed=args.seed)
    train(model, train_set, args.epochs, args.lr, args, device, teacher, "dense", gen, rng)
    steps = [measure("dense", model, test_set, device, progress)]

    exclude = {"exclude": ()} if args.prune_classifier else {}
    prune_(model, GlobalUnstructured(amount=args.prune, **exclude))  # masks stay on while fine-tuning
    steps.append(measure("pruned", model, test_set, device, progress))

    train(model, train_set, args.finetune_epochs, args.finetune_lr, args, device, teacher, "fine-tune", gen, rng)
    finalize_(model)
    steps.append(measure("fine-tuned", model, test_set, device, progress))

    model.to(device)
    if args.quant == "half":
        quantize_(model, Half(dtype=torch.float16, cast_io=True))
    else:
        quantize_(model, FakeQuant(weight_bits=16, act_bits=16))
        calib = [_normalize(train_set.images[i:i + args.batch_size].to(device), train_set.preprocessing)
                 for i in range(0, min(len(train_set), 8 * args.batch_size), args.batch_size)]
        calibrate(model, calib)
    steps.append(measure("quantized", model, test_set, device, progress))

    print(f"\ndensenet-seed, {args.prune:.0%} global unstructured pruning "
          f"({'classifier included' if args.prune_classifier else 'classifier left alone'}), "
          f"{'float16' if args.quant == 'half' else '16-bit static quantization'}")
    print(table(steps))
    print(storage_table(steps))
    passes = ", ".join(f"{r} {'passes' if steps[-1].scores[r].passed else 'fails'} "
                       f"(threshold {ms.rules.get(r).threshold:.0%})" for r in COURSE_RULES)
    print(f"Non-zero params, mults and adds: per image, MicroNet convention. Scores: lower is better; "
          f"{', '.join(COURSE_RULES)} are CIFAR-10 rule sets (quantized step: {passes}). "
          f"{', '.join(REFERENCE_RULES)} is the MicroNet Challenge's CIFAR-100 rule set, shown for reference only "
          f"(this model is trained on CIFAR-10).")
    pruned_layers = {k: v for k, v in sparsity(model).items() if v > 0}
    print(f"{len(pruned_layers)} weight tensors pruned; classifier weights non-zero: "
          f"{steps[-1].classifier_nonzero:,}")
    _write_outputs(args, steps, model)
    print(f"finished in {time.perf_counter() - started:.0f} s")
    return steps


def _write_outputs(args: argparse.Namespace, steps: list[Step], model: nn.Module) -> None:
    if args.json is not None:
        args.json.write_text(json.dumps([s.to_dict() for s in steps], indent=1), encoding="utf-8")
    if args.plot is not None:
        fig = ms.plot_history([(s.name, s.scores[args.plot_rules]) for s in steps]
                              if args.plot_rules in COURSE_RULES else
                              [(s.name, s.scores[args.plot_rules].value, s.accuracy) for s in steps])
        fig.savefig(args.plot, dpi=120)
        print(f"plot written to {args.plot}")
    if args.save is not None:
        # the form an organizer asks for: the recipe (densenet-seed, its arguments, the prune and quantize configs)
        # and the weights, which `micronet-score eval DIR` and a leaderboard rebuild exactly
        recipe = ms.save_submission(model, args.save)
        print(f"submission written to {args.save} ({recipe.name} and the weights)")


def main(argv: list[str] | None = None) -> int:
    """Command-line entry: 0 on success, 1 with a one-line message on bad input (data, teacher, device)."""
    try:
        run(argv)
    except ms.MicronetError as exc:
        print(f"seed_cifar10.py: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
