"""Evaluation speed: ``micronet_score.evaluate`` against a plain batched ``torch.inference_mode()`` loop.

    .venv/bin/python benchmarks/eval_speed.py [--model resnet18-cifar] [--n 2048] [--batch-size 256]
                                              [--repeats 5] [--device cpu]

Both run on the same preprocessed data in memory (random uint8 CIFAR-sized images); the ratio is
evaluate's median time over the plain loop's. Prints a Markdown line with the machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import torch

import micronet_score as ms
from micronet_score.organizer.datasets import Dataset, Preprocessing


def plain_loop(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int, device: str) -> int:
    correct = 0
    with torch.inference_mode():
        for i in range(0, len(y), batch_size):
            out = model(x[i:i + batch_size].to(device))
            correct += int((out.argmax(1).cpu() == y[i:i + batch_size]).sum())
    return correct


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="resnet18-cifar")
    parser.add_argument("--n", type=int, default=2048)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    model = ms.models.build(args.model).eval().to(args.device)
    shape = ms.models.input_size(args.model)[1:]
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (args.n, *shape), dtype=torch.uint8, generator=gen)
    labels = torch.randint(0, 10, (args.n,), generator=gen)
    pre = Preprocessing(mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    data = Dataset(images, labels, pre)
    x = data.x  # the plain loop gets its inputs already preprocessed (the fastest it can be)
    times: dict[str, list[float]] = {"evaluate": [], "plain": []}
    counts = set()
    for _ in range(args.repeats):
        start = time.perf_counter()
        counts.add(ms.evaluate(model, data, batch_size=args.batch_size, device=args.device, progress=False).correct)
        times["evaluate"].append(time.perf_counter() - start)
        start = time.perf_counter()
        counts.add(plain_loop(model, x, labels, args.batch_size, args.device))
        times["plain"].append(time.perf_counter() - start)
    assert len(counts) == 1, f"evaluate and the plain loop disagree: {counts}"
    ev, pl = statistics.median(times["evaluate"]), statistics.median(times["plain"])
    print(f"| {args.model} | {args.n} images, batch {args.batch_size}, {args.device} | evaluate {ev:.3f} s | "
          f"plain loop {pl:.3f} s | ratio {ev / pl:.2f} | {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores, torch {torch.__version__}, load {os.getloadavg()[0]:.1f} |")


if __name__ == "__main__":
    main()
