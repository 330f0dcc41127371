"""Loading submitted checkpoints: safe, strict, with errors that name the mismatch."""

import pickle

import pytest
import torch
from torch import nn
from torch.nn.utils import prune

import micronet_score as ms
from micronet_score.cli import main
from micronet_score.loading import CheckpointError, load_weights


def _net():
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 10))


def test_load_state_dict_and_wrapped_dict(tmp_path):
    src = _net()
    torch.save(src.state_dict(), tmp_path / "a.pt")
    torch.save({"state_dict": src.state_dict(), "epoch": 3}, tmp_path / "b.pt")
    for name in ("a.pt", "b.pt"):
        model = load_weights(_net(), tmp_path / name)
        assert torch.equal(model[0].weight, src[0].weight)


def test_pruned_checkpoint_folds_masks_and_counts_its_zeros(tmp_path):
    src = _net()
    prune.l1_unstructured(src[0], "weight", amount=0.5)  # 108 weights, 54 zeroed
    torch.save(src.state_dict(), tmp_path / "pruned.pt")
    model = load_weights(_net(), tmp_path / "pruned.pt")
    assert ms.count(model, (1, 3, 8, 8)).layer("0").nonzero_params == 54 + 4


def test_mismatch_names_keys_and_shapes(tmp_path):
    torch.save(nn.Linear(3, 5).state_dict(), tmp_path / "lin.pt")
    with pytest.raises(CheckpointError, match="2 shape mismatch.*bias: checkpoint \\(5,\\) vs model \\(4,\\)"):
        load_weights(nn.Linear(3, 4), tmp_path / "lin.pt")
    with pytest.raises(CheckpointError, match="missing .* unexpected"):
        load_weights(nn.Sequential(nn.Linear(3, 5)), tmp_path / "lin.pt")


class Evil:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_unsafe_pickle_is_refused_without_running_it(tmp_path, capsys):
    with open(tmp_path / "evil.pt", "wb") as f:
        pickle.dump({"weight": Evil()}, f)
    with pytest.raises(CheckpointError, match="weights_only=True"):
        load_weights(nn.Linear(3, 4), tmp_path / "evil.pt")
    assert "must never run" not in capsys.readouterr().out
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError):
        load_weights(nn.Linear(3, 4), tmp_path / "junk.pt")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_weights(nn.Linear(3, 4), tmp_path / "missing.pt")


def test_cli_scores_a_checkpoint(tmp_path, capsys):
    model = ms.models.build("resnet18-cifar", width=8)
    torch.save(model.state_dict(), tmp_path / "r18.pt")
    code = main(["count", "resnet18-cifar", "--arg", "width=8", "--weights", str(tmp_path / "r18.pt"),
                 "--rules", "micronet-2019-cifar100", "--shapes-only"])
    assert code == 0 and "score" in capsys.readouterr().out
    assert main(["count", "resnet18-cifar", "--weights", str(tmp_path / "r18.pt")]) == 1
    assert "does not match the model" in capsys.readouterr().err
