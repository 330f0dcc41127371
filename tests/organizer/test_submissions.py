"""save_submission: the folder rebuilds the exact model, and `micronet-score eval folder` scores it the same."""

from __future__ import annotations

import json

import pytest
import torch

import micronet_score as ms
from micronet_score.cli import main
from micronet_score.organizer import SubmissionError, load_submission, save_submission


def test_zoo_submission_round_trip(tmp_path, capsys):
    model = ms.models.build("densenet-seed", num_classes=100, growth_rate=6, seed=3)
    out = save_submission(model, tmp_path / "sub", model_name="densenet-seed",
                          args={"num_classes": 100, "growth_rate": 6, "seed": 3})
    assert out.name == "submission.toml" and any(p.name.startswith("weights.") for p in out.parent.iterdir())
    back = load_submission(tmp_path / "sub")
    assert back.state_dict().keys() == model.state_dict().keys()
    assert all(torch.equal(v, back.state_dict()[k]) for k, v in model.state_dict().items())
    in_process = ms.score(model, rules="micronet-2019-cifar100")
    assert main(["eval", str(tmp_path / "sub"), "--rules", "micronet-2019-cifar100", "--accuracy", "0.9",
                 "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["score"]["value"] == in_process.value and data["model"] == "densenet-seed"
    assert data["args"] == {"num_classes": 100, "growth_rate": 6, "seed": 3}
    assert len(data["weights"]["sha256"]) == 64


def test_factory_submission_and_recorded_build(tmp_path, challenge):
    from micronet_score.organizer.builders import build_model

    model = build_model("net.py:const", {"cls": 2}, challenge)
    save_submission(model, tmp_path / "s", model_name="net.py:const", args={"cls": 2})
    (tmp_path / "s" / "net.py").write_text((challenge / "net.py").read_text())
    with pytest.raises(SubmissionError, match="allow_code"):  # code runs only when the caller says so
        load_submission(tmp_path / "s")
    back = load_submission(tmp_path / "s", allow_code=True)
    assert torch.equal(back[4].bias, torch.tensor([0.0, 0.0, 1.0, 0.0]))
    model.micronet_build = {"model": "densenet-seed", "args": {}}  # what models.build records after the merge
    plain = ms.models.build("densenet-seed")
    plain.micronet_build = {"model": "densenet-seed", "args": {}}
    save_submission(plain, tmp_path / "z")
    assert 'model = "densenet-seed"' in (tmp_path / "z" / "submission.toml").read_text()


def test_no_recipe_is_refused(tmp_path):
    with pytest.raises(SubmissionError, match="model_name="):
        save_submission(torch.nn.Linear(2, 2), tmp_path / "x")


def test_compressed_submission_rebuilds_quantizers(tmp_path):
    from micronet_score import compress

    if not hasattr(compress, "applied") or not hasattr(compress, "config_from_dict"):
        pytest.skip("needs micronet_score.compress.applied / config_from_dict (the compress engineer's branch)")
    model = ms.models.build("densenet-seed", growth_rate=6)
    compress.prune_(model, compress.GlobalUnstructured(amount=0.5))
    compress.quantize_(model, compress.FakeQuant(weight_bits=8, act_bits=8))
    compress.calibrate(model, [torch.randn(4, 3, 32, 32)])
    save_submission(model, tmp_path / "q", model_name="densenet-seed", args={"growth_rate": 6})
    back = load_submission(tmp_path / "q")
    rules = "micronet-2019-cifar100"
    assert ms.score(back, rules=rules).value == ms.score(model, rules=rules).value


def test_compressed_submission_with_the_recipe_api_simulated(tmp_path, monkeypatch):
    """The rebuild path, with compress.applied / config_from_dict stood in for (same names as after the merge)."""
    from micronet_score import compress

    recorded = [compress.GlobalUnstructured(amount=0.5), compress.FakeQuant(weight_bits=8, act_bits=8)]
    kinds = {"GlobalUnstructured": compress.GlobalUnstructured, "FakeQuant": compress.FakeQuant}

    class Recorded:
        def __init__(self, config):
            self.config = config

        def to_dict(self):
            fields = {k: getattr(self.config, k) for k in ("amount", "weight_bits", "act_bits")
                      if hasattr(self.config, k)}
            return {"type": type(self.config).__name__, **fields}

    def from_dict(d):
        d = dict(d)
        return kinds[d.pop("type")](**d)

    monkeypatch.setattr(compress, "applied", lambda model: tuple(Recorded(c) for c in recorded), raising=False)
    monkeypatch.setattr(compress, "config_from_dict", from_dict, raising=False)
    model = ms.models.build("densenet-seed")
    compress.finalize_(compress.prune_(model, recorded[0]))
    compress.quantize_(model, recorded[1])
    compress.calibrate(model, [torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))])
    save_submission(model, tmp_path / "q", model_name="densenet-seed", args={})
    text = (tmp_path / "q" / "submission.toml").read_text()
    assert '[[compress]]\ntype = "GlobalUnstructured"\namount = 0.5' in text and 'type = "FakeQuant"' in text
    back = load_submission(tmp_path / "q")
    assert type(back.features.conv1) is type(model.features.conv1)  # the quantizer is rebuilt
    assert all(torch.equal(v, back.state_dict()[k]) for k, v in model.state_dict().items())
    rules = "micronet-2019-cifar100"
    assert ms.score(back, rules=rules).value == ms.score(model, rules=rules).value


def test_an_exported_program_scores_as_its_weights_only_submission(tmp_path, capsys):
    """``save_submission(export=...)`` writes model.pt2; the scorer evaluates and counts that graph (no model name,
    no code) and gets the weights-only submission's accuracy and score."""
    import numpy as np

    rng = np.random.default_rng(0)
    np.savez(tmp_path / "t.npz", x=rng.integers(0, 256, size=(6, 3, 32, 32), dtype=np.uint8), y=np.arange(6))
    model = ms.models.build("densenet-seed", seed=1)
    save_submission(model, tmp_path / "w", model_name="densenet-seed", args={"seed": 1})
    out = save_submission(model, tmp_path / "p", export=(1, 3, 32, 32))
    assert out.read_text() == 'program = "model.pt2"\n' and model.training  # the model is left as it was
    runs = []
    for folder in ("w", "p"):
        assert main(["eval", str(tmp_path / folder), "--data", str(tmp_path / "t.npz"), "--dataset", "npz",
                     "--rules", "micronet-2019-cifar100", "--json"]) in (0, 3)
        runs.append(json.loads(capsys.readouterr().out))
    assert runs[0]["accuracy"]["total"] == 6 and runs[0]["accuracy"] == runs[1]["accuracy"] and runs[0]["score"]["value"] == runs[1]["score"]["value"]
    (tmp_path / "p" / "submission.toml").write_text('program = "model.pt2"\nmodel = "densenet-seed"\n')
    with pytest.raises(SubmissionError, match="drop model/weights"):
        load_submission(tmp_path / "p")
