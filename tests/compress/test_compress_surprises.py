"""Compression that does not surprise: the classifier kept out of global pruning by default, emptied layers
named in a warning, exclude=, and block / N:M sparsity skipping the layers they cannot tile when told to."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import micronet_score as ms
from micronet_score.compress import (
    LAST_CLASSIFIER,
    BlockSparse,
    CompressionError,
    GlobalUnstructured,
    LayerEmptiedWarning,
    LayersSkippedWarning,
    NMSparse,
    history,
    prune_,
    sparsity,
)


def test_readme_pruning_leaves_the_seed_classifier_alone():
    # Regression: GlobalUnstructured(amount=0.5) used to zero all 192*10 weights of densenet-seed's classifier
    # (initialised N(0, 0.01), far below the Kaiming-initialised convolutions).
    model = prune_(ms.models.build("densenet-seed"), GlobalUnstructured(amount=0.5))  # warnings are errors here
    s = sparsity(model)
    assert s["linear.weight"] == 0.0 and not hasattr(model.linear, "weight_mask")
    convs = {name: m for name, m in model.named_modules() if isinstance(m, nn.Conv2d)}
    zeros = sum(int((m.weight == 0).sum()) for m in convs.values())
    total = sum(m.weight.numel() for m in convs.values())
    assert zeros == round(0.5 * total)  # half of every conv weight, ranked together
    assert all(s[f"{name}.weight"] < 1.0 for name in convs)


def test_including_the_seed_classifier_empties_it_and_says_so():
    model = ms.models.build("densenet-seed")
    with pytest.warns(LayerEmptiedWarning, match=r"'linear' \(1,920 weights\)"):  # 192 features x 10 classes
        prune_(model, GlobalUnstructured(amount=0.5, exclude=()))
    assert sparsity(model)["linear.weight"] == 1.0


def two_layers() -> nn.Sequential:
    return nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))


def test_exclude_by_name_type_and_the_classifier_marker():
    model = nn.Sequential(nn.Conv2d(1, 2, 1), nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2)), nn.Linear(2, 2))
    # a name covers the modules inside it; an explicit exclude replaces the default, so the classifier is pruned
    prune_(model, GlobalUnstructured(amount=0.5, exclude=("1",)))
    assert [hasattr(m, "weight_mask") for m in (model[0], model[1][0], model[1][1], model[2])] == [
        True, False, False, True]  # fmt: skip
    model = nn.Sequential(nn.Conv2d(1, 2, 1), nn.Linear(2, 2), nn.Linear(2, 2))
    prune_(model, GlobalUnstructured(amount=0.5, exclude=(nn.Conv2d, LAST_CLASSIFIER)))
    assert [hasattr(m, "weight_mask") for m in model] == [False, True, False]


def test_exclude_errors_name_the_way_out():
    with pytest.raises(CompressionError, match=r"exclude names \['fc'\], which are not modules of the model"):
        prune_(two_layers(), GlobalUnstructured(exclude=("fc",)))
    with pytest.raises(CompressionError, match=r"every selected layer \(0\) is excluded .* pass exclude=\(\)"):
        prune_(nn.Sequential(nn.Linear(2, 2)), GlobalUnstructured())



def test_block_sparse_error_lists_every_incompatible_layer_and_leaves_the_model_alone():
    model = nn.Sequential(nn.Linear(8, 8), nn.Linear(8, 6), nn.Linear(6, 8))
    with pytest.raises(CompressionError, match=r"layer\(s\) '1' \(.*6x8.*\); '2' \(.*8x6.*\); pass on_incompatible='skip'"):
        prune_(model, BlockSparse(block=(4, 4)))
    assert not any(hasattr(m, "weight_mask") for m in model)


def test_block_sparse_skip_warns_and_records_the_skipped_layers():
    model = nn.Sequential(nn.Linear(8, 8), nn.Linear(8, 6), nn.Linear(6, 8))
    with pytest.warns(LayersSkippedWarning, match=r"skipped 2 layer\(s\) .*'1' .*'2'"):
        prune_(model, BlockSparse(block=(4, 4), amount=0.5, on_incompatible="skip"))
    assert sparsity(model) == {"0.weight": 0.5, "1.weight": 0.0, "2.weight": 0.0}
    assert history(model)[-1].skipped == ("1", "2")


def test_nm_sparse_on_the_seed_skips_the_layers_whose_inputs_it_cannot_split():
    model = ms.models.build("densenet-seed")
    with pytest.warns(LayersSkippedWarning, match=r"skipped 30 layer\(s\)"):
        prune_(model, NMSparse(n=2, m=4, on_incompatible="skip"))
    skipped = history(model)[-1].skipped
    # the stem: 3 input channels in 3 groups, 1 per group. The 1x1 bottlenecks read 6 + 6*i... channels (block
    # inputs 12, 24, 48, 96, growing by k = 6); those not a multiple of 4: block 1 (12..42) 18, 30, 42: 3; block 2
    # (24..90) odd i: 6; block 3 (48..186) odd i: 12; block 4 (96..186) odd i: 8. 1 + 3 + 6 + 12 + 8 = 30.
    assert len(skipped) == 30 and skipped[0] == "features.conv1"
    assert all(name.endswith("conv1") for name in skipped)
    s = sparsity(model)
    assert s["features.dense1.0.conv2.weight"] == 0.5 and s["features.dense1.1.conv1.weight"] == 0.0
    assert s["linear.weight"] == 0.5  # 192 inputs: 2 of every 4 kept
    with pytest.raises(CompressionError, match=r"NMSparse cannot prune layer\(s\) 'features\.conv1' \("):
        prune_(ms.models.build("densenet-seed"), NMSparse())


def test_all_layers_incompatible_is_an_error_even_when_skipping():
    with pytest.raises(CompressionError, match="cannot prune any selected layer"):
        prune_(nn.Sequential(nn.Linear(3, 3)), NMSparse(n=2, m=4, on_incompatible="skip"))


def test_global_pruning_names_a_small_layer_it_empties():
    model = two_layers()
    with torch.no_grad():
        model[0].weight.fill_(0.001)
    with pytest.warns(LayerEmptiedWarning, match=r"GlobalUnstructured pruned every weight of layer\(s\) '0'"):
        prune_(model, GlobalUnstructured(amount=0.7, exclude=()))  # 17 of 24: the 16 tiny ones go
