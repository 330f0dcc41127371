"""Small Hugging Face transformers configs for the coverage page: built from a config, no weights downloaded.

Each entry is (label, config class, config keyword arguments, input kind). Sizes are tiny (hidden 32, 2 layers,
16 tokens, 32x32 images) so that the whole list counts in a few minutes on two CPU cores; the operators a model
runs do not depend on its size.
"""

from __future__ import annotations

from typing import Any

import torch

TOKENS = 16
VOCAB = 128

_DEC = dict(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=64)
_ENC = dict(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
            max_position_embeddings=64)
_VIT = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, image_size=32,
            patch_size=8)

# (label, config class name, config kwargs, input kind)
ARCHITECTURES: list[tuple[str, str, dict[str, Any], str]] = [
    ("LLaMA (GQA 4/2)", "LlamaConfig", _DEC, "causal"),
    ("Mistral (GQA, sliding window)", "MistralConfig", dict(_DEC, sliding_window=8), "causal"),
    ("Qwen2 (GQA)", "Qwen2Config", _DEC, "causal"),
    ("Qwen3 (GQA, q/k norm)", "Qwen3Config", dict(_DEC, head_dim=8), "causal"),
    ("Phi-3 (GQA)", "Phi3Config", dict(_DEC, pad_token_id=0), "causal"),
    ("Gemma (GQA)", "GemmaConfig", dict(_DEC, head_dim=8), "causal"),
    ("Mixtral (mixture of experts)", "MixtralConfig", dict(_DEC, num_local_experts=4, num_experts_per_tok=2),
     "causal"),
    ("Llama-4 text (complex rotary, MoE)", "Llama4TextConfig", dict(
        _DEC, head_dim=8, intermediate_size_mlp=64, num_local_experts=2, num_experts_per_tok=1,
        interleave_moe_layer_step=1), "causal"),
    ("DeepSeek-V2 (MLA, complex rotary, MoE)", "DeepseekV2Config", dict(
        _DEC, num_key_value_heads=4, moe_intermediate_size=16, n_routed_experts=4, num_experts_per_tok=2,
        n_shared_experts=1, first_k_dense_replace=1, kv_lora_rank=16, q_lora_rank=None, qk_rope_head_dim=8,
        v_head_dim=8, qk_nope_head_dim=8, n_group=1, topk_group=1), "causal"),
    ("GPT-NeoX", "GPTNeoXConfig", _ENC, "causal"),
    ("Falcon", "FalconConfig", dict(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2,
                                    num_attention_heads=4), "causal"),
    ("GPT-2", "GPT2Config", dict(vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=4, n_positions=64,
                                 bos_token_id=0, eos_token_id=0), "causal"),
    ("GPT-J", "GPTJConfig", dict(vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=4, n_positions=64,
                                 rotary_dim=4, bos_token_id=0, eos_token_id=0), "causal"),
    ("OPT", "OPTConfig", dict(vocab_size=VOCAB, hidden_size=32, ffn_dim=64, num_hidden_layers=2,
                              num_attention_heads=4, max_position_embeddings=64, word_embed_proj_dim=32,
                              pad_token_id=1, bos_token_id=0, eos_token_id=0), "causal"),
    ("BLOOM", "BloomConfig", dict(vocab_size=VOCAB, hidden_size=32, n_layer=2, n_head=4), "causal"),
    ("Mamba", "MambaConfig", dict(vocab_size=VOCAB, hidden_size=32, state_size=8, num_hidden_layers=2,
                                  expand=2, conv_kernel=4), "ids"),
    ("BERT", "BertConfig", _ENC, "encoder"),
    ("RoBERTa", "RobertaConfig", dict(_ENC, pad_token_id=1), "encoder"),
    ("DistilBERT", "DistilBertConfig", dict(vocab_size=VOCAB, dim=32, hidden_dim=64, n_layers=2, n_heads=4,
                                            max_position_embeddings=64), "encoder"),
    ("ALBERT", "AlbertConfig", dict(_ENC, embedding_size=16), "encoder"),
    ("ELECTRA", "ElectraConfig", dict(_ENC, embedding_size=16), "encoder"),
    ("DeBERTa-v2", "DebertaV2Config", dict(_ENC, relative_attention=True, position_buckets=8,
                                           pos_att_type=["p2c", "c2p"]), "encoder"),
    ("MobileBERT", "MobileBertConfig", dict(_ENC, embedding_size=16, intra_bottleneck_size=16,
                                            true_hidden_size=16, num_feedforward_networks=2), "encoder"),
    ("FNet (Fourier mixing)", "FNetConfig", dict(_ENC, use_tpu_fourier_optimizations=False), "ids"),
    ("T5", "T5Config", dict(vocab_size=VOCAB, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4,
                            decoder_start_token_id=0), "seq2seq"),
    ("BART", "BartConfig", dict(vocab_size=VOCAB, d_model=32, encoder_layers=2, decoder_layers=2,
                                encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=64,
                                decoder_ffn_dim=64, max_position_embeddings=64), "seq2seq"),
    ("Whisper", "WhisperConfig", dict(vocab_size=VOCAB, d_model=32, encoder_layers=2, decoder_layers=2,
                                      encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=64,
                                      decoder_ffn_dim=64, num_mel_bins=16, max_source_positions=32,
                                      max_target_positions=32, pad_token_id=0, bos_token_id=0,
                                      eos_token_id=0, decoder_start_token_id=0), "whisper"),
    ("Wav2Vec2", "Wav2Vec2Config", dict(vocab_size=VOCAB, hidden_size=32, intermediate_size=64,
                                        num_hidden_layers=2, num_attention_heads=4, conv_dim=(16, 16),
                                        conv_stride=(5, 2), conv_kernel=(10, 3), num_conv_pos_embeddings=16,
                                        num_conv_pos_embedding_groups=4), "audio"),
    ("CLIP", "CLIPConfig", dict(text_config=dict(_ENC, max_position_embeddings=32),
                                vision_config=dict(_VIT), projection_dim=16), "clip"),
    ("ViT", "ViTConfig", _VIT, "image"),
    ("BEiT (relative position bias)", "BeitConfig", dict(_VIT, use_relative_position_bias=True), "image"),
    ("DINOv2", "Dinov2Config", dict(_VIT, patch_size=8), "image"),
    ("Swin", "SwinConfig", dict(image_size=32, patch_size=2, embed_dim=16, depths=[1, 1], num_heads=[2, 4],
                                window_size=4), "image"),
    ("Swin-v2", "Swinv2Config", dict(image_size=32, patch_size=2, embed_dim=16, depths=[1, 1],
                                     num_heads=[2, 4], window_size=4), "image"),
    ("ConvNeXt", "ConvNextConfig", dict(hidden_sizes=[16, 32], depths=[1, 1], num_stages=2), "image"),
    ("ConvNeXt-v2", "ConvNextV2Config", dict(hidden_sizes=[16, 32], depths=[1, 1], num_stages=2), "image"),
    ("ResNet", "ResNetConfig", dict(embedding_size=16, hidden_sizes=[16, 32], depths=[1, 1],
                                    layer_type="bottleneck"), "image"),
    ("MobileViT", "MobileViTConfig", dict(image_size=64, hidden_sizes=[32, 40, 48],
                                          neck_hidden_sizes=[8, 8, 16, 16, 24, 32, 64]), "image64"),
    ("SegFormer", "SegformerConfig", dict(num_encoder_blocks=2, depths=[1, 1], sr_ratios=[2, 1],
                                          hidden_sizes=[16, 32], num_attention_heads=[1, 2], patch_sizes=[7, 3],
                                          strides=[4, 2], mlp_ratios=[2, 2]), "image64"),
    ("DETR (ResNet backbone from transformers)", "DetrConfig", dict(
        use_timm_backbone=False, use_pretrained_backbone=False, backbone=None,
        backbone_config=dict(model_type="resnet", embedding_size=16, hidden_sizes=[16, 32], depths=[1, 1],
                             layer_type="basic", out_features=["stage2"]),
        d_model=32, encoder_layers=1, decoder_layers=1, encoder_attention_heads=4, decoder_attention_heads=4,
        encoder_ffn_dim=64, decoder_ffn_dim=64, num_queries=8), "image64"),
]


def build(config_name: str, kwargs: dict[str, Any], seed: int = 0) -> torch.nn.Module:
    """The base model (``AutoModel``) of a config, freshly initialised from ``seed``, in eval mode."""
    import transformers

    config = getattr(transformers, config_name)(**kwargs)
    torch.manual_seed(seed)
    model = transformers.AutoModel.from_config(config)
    return model.eval()


def inputs(kind: str, model: torch.nn.Module, seed: int = 0) -> dict[str, torch.Tensor]:
    """Keyword inputs of one example for an input kind (token ids of 16 tokens, a 32x32 or 64x64 image, ...)."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(2, VOCAB, (1, TOKENS), generator=g)
    ones = torch.ones(1, TOKENS, dtype=torch.long)
    if kind == "ids":
        return {"input_ids": ids}
    if kind in ("causal", "encoder"):
        return {"input_ids": ids, "attention_mask": ones}
    if kind == "seq2seq":
        return {"input_ids": ids, "attention_mask": ones, "decoder_input_ids": ids[:, :8]}
    if kind == "whisper":
        cfg = model.config
        frames = 2 * cfg.max_source_positions
        return {"input_features": torch.randn(1, cfg.num_mel_bins, frames, generator=g),
                "decoder_input_ids": ids[:, :8]}
    if kind == "audio":
        return {"input_values": torch.randn(1, 800, generator=g)}
    if kind == "clip":
        return {"input_ids": ids, "attention_mask": ones, "pixel_values": torch.randn(1, 3, 32, 32, generator=g)}
    if kind == "image":
        return {"pixel_values": torch.randn(1, 3, 32, 32, generator=g)}
    if kind == "image64":
        return {"pixel_values": torch.randn(1, 3, 64, 64, generator=g)}
    raise ValueError(f"unknown input kind {kind!r}")
