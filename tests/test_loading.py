"""Loading submitted checkpoints: every accepted form, every refusal, nothing loaded partially, no code run."""

import json
import subprocess
import sys
import textwrap
import warnings

import pytest
import torch
from torch import nn
from torch.nn.utils import prune

import micronet_score as ms
from micronet_score.cli import main
from micronet_score.errors import MicronetError
from micronet_score.loading import CheckpointError, LoadNote, load_checkpoint, load_weights, read_state_dict


def _net():
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 10))


def _same(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def _quiet(model, path, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LoadNote)
        return load_weights(model, path, **kwargs)


@pytest.mark.parametrize("wrap", [None, "state_dict", "model", "model_state_dict"])
def test_bare_and_wrapped_state_dicts(tmp_path, wrap):
    src = _net()
    obj = src.state_dict() if wrap is None else {wrap: src.state_dict(), "epoch": 3, "lr": 0.1}
    torch.save(obj, tmp_path / "w.pt")
    loaded = load_checkpoint(_net(), tmp_path / "w.pt")
    assert _same(loaded.model, src) and loaded.source_key == wrap and loaded.notes == ()


def test_safetensors(tmp_path):
    st = pytest.importorskip("safetensors.torch")
    src = _net()
    st.save_file(src.state_dict(), str(tmp_path / "w.safetensors"))
    assert _same(load_weights(_net(), tmp_path / "w.safetensors"), src)
    assert read_state_dict(tmp_path / "w.safetensors").keys() == src.state_dict().keys()


def test_data_parallel_prefix_is_removed_and_said(tmp_path):
    src = _net()
    torch.save(nn.DataParallel(src).state_dict(), tmp_path / "dp.pt")  # keys "module.0.weight", ...
    with pytest.warns(LoadNote, match="removed the prefix 'module.'"):
        model = load_weights(_net(), tmp_path / "dp.pt")
    assert _same(model, src)
    torch.save({"model." + k: v for k, v in src.state_dict().items()}, tmp_path / "lightning.pt")
    assert load_checkpoint(_net(), tmp_path / "lightning.pt").prefix_removed == "model."
    wrapped = nn.Sequential(_net())  # the model has a prefix the checkpoint lacks
    torch.save(src.state_dict(), tmp_path / "bare.pt")
    assert load_checkpoint(wrapped, tmp_path / "bare.pt").prefix_added == "0."


def test_prefix_that_explains_part_of_a_mismatch_is_hinted(tmp_path):
    state = {"module." + k: v for k, v in _net().state_dict().items()}
    state["module.extra"] = torch.zeros(1)
    torch.save(state, tmp_path / "dp_extra.pt")
    with pytest.raises(CheckpointError, match=r"Hint: removing the prefix 'module.' .* matches 4 of the model's 4"):
        load_weights(_net(), tmp_path / "dp_extra.pt")


def test_pruned_checkpoint_folds_masks_and_counts_its_zeros(tmp_path):
    src = _net()
    prune.l1_unstructured(src[0], "weight", amount=0.5)  # 108 weights, 54 zeroed
    torch.save(src.state_dict(), tmp_path / "pruned.pt")
    loaded = load_checkpoint(_net(), tmp_path / "pruned.pt")
    assert loaded.folded_masks == ("0.weight",)
    assert ms.count(loaded.model, (1, 3, 8, 8)).layer("0").nonzero_params == 54 + 4  # 54 weights + 4 biases


def test_float16_checkpoint_into_float32_model_says_what_was_stored(tmp_path):
    src = _net().half()
    torch.save(src.state_dict(), tmp_path / "half.pt")
    loaded = load_checkpoint(_net(), tmp_path / "half.pt")
    assert loaded.model[0].weight.dtype == torch.float32
    assert torch.equal(loaded.model[0].weight, src[0].weight.float())
    assert loaded.notes == ("the checkpoint stores 4 tensor(s) as float16; loaded into the model's float32 "
                            "(every value exact); the count prices the model's dtype unless bit widths are "
                            "given (bits= / --bits)",)


def test_mismatch_is_refused_with_a_diff_and_nothing_is_loaded(tmp_path):
    torch.save(nn.Linear(3, 5).state_dict(), tmp_path / "lin.pt")
    target = nn.Linear(3, 4)
    before = {k: v.clone() for k, v in target.state_dict().items()}
    with pytest.raises(CheckpointError, match=r"2 shape mismatch.*'bias': checkpoint \(5,\) vs model \(4,\)"):
        load_weights(target, tmp_path / "lin.pt")
    assert all(torch.equal(before[k], v) for k, v in target.state_dict().items())
    with pytest.raises(CheckpointError, match=r"missing 2 key\(s\): '0.bias', '0.weight'; 2 unexpected key\(s\): "
                                              r"'bias', 'weight'"):
        load_weights(nn.Sequential(nn.Linear(3, 7)), tmp_path / "lin.pt")


@pytest.mark.parametrize("kind", ["int key", "meta", "sparse", "complex"])
def test_entries_that_are_not_plain_weights_are_refused_in_one_line(tmp_path, kind):
    lin = nn.Linear(2, 2)
    state = dict(lin.state_dict())
    if kind == "int key":
        state = {0: state["weight"], "bias": state["bias"]}
    elif kind == "meta":
        state["weight"] = torch.empty(2, 2, device="meta")
    elif kind == "sparse":
        state["weight"] = state["weight"].to_sparse()
    else:
        state["weight"] = torch.complex(state["weight"], torch.ones(2, 2))
    torch.save(state, tmp_path / "odd.pt")
    with pytest.raises(CheckpointError) as info:
        load_weights(nn.Linear(2, 2), tmp_path / "odd.pt")
    message = str(info.value)
    assert {"int key": "is a int, not a name", "meta": "meta tensor", "sparse": "sparse tensor",
            "complex": "complex values"}[kind] in message
    assert "\n" not in message and "\x1b" not in message
    assert main(["count", "torch.nn:Linear", "--arg", "in_features=2", "--arg", "out_features=2", "--input",
                 "1,2", "--weights", str(tmp_path / "odd.pt")]) == 1


def test_code_in_a_pickle_never_runs_and_the_refusal_names_it(tmp_path):
    """A torch.save and a plain pickle whose objects would run a shell command on load."""
    marker = tmp_path / "executed"
    script = textwrap.dedent(f"""
        import os, pickle, torch

        class Payload:
            def __reduce__(self):
                return (os.system, ("touch {marker}",))

        torch.save({{"weight": torch.zeros(2), "evil": Payload()}}, {str(tmp_path / "evil.pt")!r})
        with open({str(tmp_path / "evil.pkl")!r}, "wb") as f:
            pickle.dump({{"weight": Payload()}}, f)
    """)
    subprocess.run([sys.executable, "-c", script], check=True)
    for name in ("evil.pt", "evil.pkl"):
        with pytest.raises(CheckpointError) as info:
            load_weights(nn.Linear(2, 1), tmp_path / name)
        message = str(info.value)
        assert "posix.system" in message and "never runs code" in message, message
        assert "weights_only" not in message and "\x1b" not in message and "\n" not in message
        assert main(["count", "torch.nn:Linear", "--arg", "in_features=2", "--arg", "out_features=1",
                     "--input", "1,2", "--weights", str(tmp_path / name)]) == 1
    assert not marker.exists()


class Config:
    """Plain data pickled next to the weights (a stand-in for a training config)."""

    def __init__(self, lr: float = 0.1) -> None:
        self.lr = lr


def test_allow_global_opts_one_class_in(tmp_path, capsys):
    src = nn.Linear(2, 1)
    torch.save({"state_dict": src.state_dict(), "config": Config()}, tmp_path / "c.pt")
    with pytest.raises(CheckpointError, match=f"asks to import {__name__}.Config"):
        load_weights(nn.Linear(2, 1), tmp_path / "c.pt")
    assert _same(load_weights(nn.Linear(2, 1), tmp_path / "c.pt", allow_globals=[f"{__name__}.Config"]), src)
    with pytest.raises(CheckpointError, match="cannot import it"):
        load_weights(nn.Linear(2, 1), tmp_path / "c.pt", allow_globals=["no_such_module.Config"])
    args = ["count", "torch.nn:Linear", "--arg", "in_features=2", "--arg", "out_features=1", "--input", "1,2",
            "--weights", str(tmp_path / "c.pt")]
    assert main(args) == 1
    assert main([*args, "--allow-global", f"{__name__}.Config"]) == 0


def test_fake_quantized_zoo_checkpoint_loads_by_zoo_name_and_scores_as_in_process(tmp_path, capsys):
    from micronet_score.compress import FakeQuant, calibrate, quantize_

    torch.manual_seed(0)
    model = ms.models.build("resnet18-cifar", width=8)
    quantize_(model, FakeQuant(weight_bits=8, act_bits=8))
    calibrate(model, [torch.randn(2, 3, 32, 32)])
    expected = ms.score(ms.count(model, (1, 3, 32, 32)), rules="micronet-2019-cifar100")
    torch.save(model.state_dict(), tmp_path / "fq.pt")

    loaded = load_checkpoint(ms.models.build("resnet18-cifar", width=8), tmp_path / "fq.pt")
    assert loaded.fake_quant is not None and "8-bit weights and 8-bit activations" in loaded.notes[-1]
    assert _same(loaded.model, model)
    got = ms.score(ms.count(loaded.model, (1, 3, 32, 32)), rules="micronet-2019-cifar100")
    assert got.value == expected.value and got.value > 0
    assert main(["count", "resnet18-cifar", "--arg", "width=8", "--weights", str(tmp_path / "fq.pt"),
                 "--rules", "micronet-2019-cifar100", "--json"]) == 0
    out = capsys.readouterr()
    assert json.loads(out.out)["score"]["value"] == expected.value
    assert "note: fake-quantized" in out.err


def test_cli_scores_a_checkpoint_and_refuses_a_mismatch(tmp_path, capsys):
    model = ms.models.build("resnet18-cifar", width=8)
    torch.save(model.state_dict(), tmp_path / "r18.pt")
    code = main(["count", "resnet18-cifar", "--arg", "width=8", "--weights", str(tmp_path / "r18.pt"),
                 "--rules", "micronet-2019-cifar100", "--shapes-only"])
    assert code == 0 and "score" in capsys.readouterr().out
    assert main(["count", "resnet18-cifar", "--weights", str(tmp_path / "r18.pt")]) == 1
    assert "does not match the model, nothing was loaded" in capsys.readouterr().err


def test_missing_and_junk_files(tmp_path):
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="not a checkpoint"):
        load_weights(nn.Linear(3, 4), tmp_path / "junk.pt")
    with pytest.raises(CheckpointError, match="does not exist") as info:
        load_weights(nn.Linear(3, 4), tmp_path / "missing.pt")
    assert isinstance(info.value, MicronetError) and isinstance(info.value, FileNotFoundError)
