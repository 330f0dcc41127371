"""The workflow this project grew from, measured in a few lines.

A grouped DenseNet (groups 3 on the stem, 2 on the dense layers' 3x3 convolutions, 3 on the transitions),
globally magnitude-pruned and stored in 16 bits, scored against the MicroNet CIFAR-100 rules and a
course-style CIFAR-10 rule set. Training is out of scope here (no dataset is downloaded): plug in your trained
weights with `micronet_score.loading.load_weights(model, "checkpoint.pt")` before counting.

Run: .venv/bin/python examples/seed_workflow.py
"""

import torch

import micronet_score as ms
from micronet_score.compress import GlobalUnstructured, Half, finalize_, prune_, quantize_

model = ms.models.build("densenet-seed")
shape = ms.models.input_size("densenet-seed")
course = ms.RuleSet("course-cifar10", param_baseline=5.6e6, ops_baseline=2.8e8, threshold=0.90,
                    dataset="CIFAR-10")

dense = ms.count(model, shape)
print(dense.table(depth=1))
print(dense.summary(), "\n")

# the seed's global unstructured pruning; the classifier is kept out by default (with exclude=() the global
# ranking would zero all 1,920 of its small weights and the model could no longer classify)
finalize_(prune_(model, GlobalUnstructured(amount=0.5)))
pruned = ms.count(model, shape)

quantize_(model, Half(dtype=torch.float16))  # 16-bit weights and activations
half = ms.count(model, torch.randn(shape, dtype=torch.float16))

for label, report in (("dense fp32", dense), ("pruned 50%", pruned), ("pruned + fp16", half)):
    score = ms.score(report, rules=course, accuracy=0.901)
    print(f"{label:>14}: {report.nonzero_params:>9,} non-zero of {report.params:,} stored, "
          f"{report.mask_bits:>7,} mask bits, {report.mults:>12,} mults -> {course.name} score {score.value:.4f}")
