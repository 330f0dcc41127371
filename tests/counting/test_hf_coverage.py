"""Coverage of Hugging Face transformers architectures (issue 22; the full list is benchmarks/coverage.py and
docs/coverage.md): a handful of small configs, built without weights, counted with ``strict=True`` (no
operator without a cost), parameters against ``sum(p.numel())`` with the differences the rules make, and MACs
against ``FlopCounterMode`` (FLOPs / 2) and hand arithmetic."""

from __future__ import annotations

import pytest
import torch

import micronet_score as ms
from micronet_score.cross_check import family

transformers = pytest.importorskip("transformers")

TOKENS = 16
VOCAB = 128
_TEXT = dict(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
             max_position_embeddings=64)
_VIT = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, image_size=32,
            patch_size=8)


def _build(config: str, **kwargs) -> torch.nn.Module:
    torch.manual_seed(0)
    return transformers.AutoModel.from_config(getattr(transformers, config)(**kwargs)).eval()


def _text() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {"input_ids": torch.randint(2, VOCAB, (1, TOKENS), generator=g),
            "attention_mask": torch.ones(1, TOKENS, dtype=torch.long)}


def _image() -> dict[str, torch.Tensor]:
    return {"pixel_values": torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))}


def _fcm_dense(model: torch.nn.Module, inputs: dict) -> float:
    """FlopCounterMode's MACs (FLOPs / 2) of the conv and matrix-product operators."""
    from torch.utils.flop_counter import FlopCounterMode

    from micronet_score.cross_check import frozen_parameters

    with torch.no_grad(), frozen_parameters(model), FlopCounterMode(display=False) as counter:
        model(**inputs)
    return sum(v for op, v in counter.get_flop_counts()["Global"].items()
               if family(str(op)) in ("conv", "matmul")) / 2


def _ours(report: ms.Report, *families: str) -> float:
    return sum(r.mults for op, r in report.by_operator.items() if family(op) in families)


def _torch_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())  # tied weights once


# Per attention layer with H query heads, L = S tokens and head size E (= Ev), the unit's mults:
# Q K^T and P V: H*L*S*2E; q and k scaled: H*(L + S)*E; softmax: H*2*L*S.
#   16 tokens, 4 heads, E = 8: 4*16*16*16 + 4*32*8 + 4*2*256 = 16,384 + 1,024 + 2,048 = 19,456; 2 layers: 38,912.
#   ViT, 32x32 image in 8x8 patches + [CLS] = 17 tokens: 4*17*17*16 + 4*34*8 + 4*2*289 = 18,496 + 1,088 + 2,312
#   = 21,896; 2 layers: 43,792.
CASES = {
    # LLaMA with grouped-query attention (4 query heads, 2 key/value heads: issue 22's ForwardError).
    # Parameters: embedding 128*32 = 4,096; per layer q 32*32 + k 32*16 + v 32*16 + o 32*32 = 3,072, MLP
    # 3*32*64 = 6,144, 2 RMSNorms 64: 9,280; 2 layers 18,560; final norm 32: 22,688.
    # Linear MACs per token: 3,072 + 6,144 = 9,216 per layer, x2 x16 tokens = 294,912.
    "llama": (lambda: _build("LlamaConfig", **_TEXT, num_key_value_heads=2), _text, 22_688, 294_912, 38_912),
    # BERT with an attention mask (issue 22: torch.all(mask == 1) was refused by strict=True).
    # Linear per token and layer: 4*32*32 + 2*32*64 = 8,192; x2 x16 = 262,144; pooler on [CLS]: 1,024.
    "bert": (lambda: _build("BertConfig", **_TEXT), _text, None, 263_168, 38_912),
    # GPT-2: Conv1D layers (addmm). Per token and layer: 32*96 + 32*32 + 2*32*128 = 12,288; x2 x16 = 393,216.
    "gpt2": (lambda: _build("GPT2Config", vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=4, n_positions=64,
                            bos_token_id=0, eos_token_id=0), _text, None, 393_216, 38_912),
    # ViT: the patch convolution (16 patches x 32 x 3*8*8 = 98,304) + per token and layer 4*32*32 + 2*32*64
    # = 8,192, x2 x17 = 278,528; pooler on [CLS] 1,024: 377,856. Position table (1, 17, 32) stored whole.
    "vit": (lambda: _build("ViTConfig", **_VIT), _image, None, 377_856, 43_792),
    # ConvNeXt: LayerNorms are not folded (only batch norms fold), so parameters equal torch's.
    "convnext": (lambda: _build("ConvNextConfig", hidden_sizes=[16, 32], depths=[1, 1], num_stages=2), _image,
                 None, None, 0),
    # Mamba: causal depthwise conv1d and the selective scan written in plain torch ops.
    "mamba": (lambda: _build("MambaConfig", vocab_size=VOCAB, hidden_size=32, state_size=8, num_hidden_layers=2,
                             expand=2, conv_kernel=4), lambda: {"input_ids": _text()["input_ids"]}, None, None, 0),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_counted_strictly_with_macs_equal_to_flop_counter_mode(name):
    build, inputs, _, dense, attention = CASES[name]
    model, x = build(), inputs()
    report = ms.count(model, x, strict=True)  # raises UnsupportedOpError on any operator without a cost
    assert report.unsupported == {}
    fcm = _fcm_dense(model, x)
    assert _ours(report, "conv", "matmul") == fcm  # a fresh init has no exact zero weight in these models
    if dense is not None:
        assert fcm == dense  # the hand arithmetic above
    assert _ours(report, "attention") == attention


def test_folded_batch_norms_are_the_only_parameter_difference_of_a_resnet():
    """HF ResNet: every convolution is followed by a BatchNorm2d and has no bias. Folding stores, per norm of C
    channels, the shift as the conv's bias (C) instead of the norm's weight and bias (2C): C fewer each.
    Stem 16*3*7*7 = 2,352; bottleneck stage 1 (16 -> 16, reduction 4: 1x1 16->4, 3x3 4->4, 1x1 4->16, no
    shortcut conv): 64 + 144 + 64 = 272; stage 2 (16 -> 32, 8 wide, stride 2, shortcut 1x1 16->32): 128 + 576
    + 256 + 512 = 1,472. Weights 4,096; biases of the folded norms 16 + (4 + 4 + 16) + (8 + 8 + 32 + 32) = 120."""
    model = _build("ResNetConfig", embedding_size=16, hidden_sizes=[16, 32], depths=[1, 1],
                   layer_type="bottleneck")
    report = ms.count(model, _image(), strict=True)
    assert report.params == 4_096 + 120
    norms = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert report.params == _torch_params(model) - norms  # 2C removed, C added back per norm
    assert _ours(report, "conv", "matmul") == _fcm_dense(model, _image())


@pytest.mark.parametrize("name", [
    "llama",  # rotary inv_freq: a non-persistent buffer, free
    "bert",  # position and token-type tables stored whole, not as the rows read
    "gpt2",  # wpe stored whole (64 rows), not as the 16 rows read
    "vit", "convnext", "mamba",
])
def test_parameters_equal_torchs_when_nothing_folds(name):
    """No batch norm, tied weights counted once by both, every parameter read: the stored values are exactly
    ``sum(p.numel())`` (LayerNorms and RMSNorms are not folded; tables are stored whole at any length)."""
    build, inputs, params, _, _ = CASES[name]
    model = build()
    report = ms.count(model, inputs())
    assert report.params == _torch_params(model)
    if params is not None:
        assert report.params == params
