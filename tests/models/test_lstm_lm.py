"""The WikiText-103 baseline LSTM language model against the challenge's 159M parameters and 318M ops per token.

Hand arithmetic at the defaults (vocabulary V = 267,735, embedding E = 512, hidden H = 2048), one token at
batch 1 with the state as an input:

Parameters
  embedding table V*E                    267,735 * 512            = 137,080,320
  LSTM W_ih 4H*E + W_hh 4H*H             8192*512 + 8192*2048     =  20,971,520
       b_ih + b_hh                       2 * 8192                 =      16,384
  projection 2048 -> 512, no bias        2048 * 512               =   1,048,576
  output layer: weight tied (the table), bias V                   =     267,735
  total                                                           = 159,384,535
  The challenge's 159M is embedding + LSTM + projection = 159,116,800 (0.07% over 159e6); the output bias we
  keep adds 267,735 (0.17%): 159,384,535 is 0.24% over 159e6.

Operations per token (spec section 3)
  embedding lookup                       free                     =           0
  LSTM mults: 4H(E+H) = 20,971,520 MACs + 11 per unit (3 sigmoids at 2, 2 tanh, 3 products) 11*2048 = 22,528
                                                                  =  20,994,048
  LSTM adds: 20,971,520 - 8192 (one fewer per gate row) + 2*8192 (b_ih, b_hh) + 4 per unit (3 sigmoids,
             c = f*c + i*g) 4*2048                                =  20,987,904
  projection: 1,048,576 mults, 512 * 2047 adds                    =   2,096,640
  output: 137,080,320 mults, 267,735 * 511 + 267,735 (bias) adds  = 274,160,640
  total: 159,122,944 mults + 159,116,288 adds                     = 318,239,232
  The challenge's 318M is 2 x the MACs: 2 * (20,971,520 + 1,048,576 + 137,080,320) = 318,200,832. Ours is
  38,400 more: the LSTM's 22,528 gate mults and 16,384 extra adds (biases and unit adds less one per row),
  less 512 (the projection has no bias to make up its one-fewer add per dot product); 0.075% over 318e6.
"""

from __future__ import annotations

import pytest
import torch

import micronet_score as ms
from micronet_score import models
from micronet_score.models.lstm_lm import LSTMLanguageModel, lstm_lm_wikitext103


def test_baseline_within_one_percent_of_159m_params_and_318m_ops_per_token():
    with torch.device("meta"):
        model = lstm_lm_wikitext103()
    r = ms.count(model, model.example_inputs(), strict=True)
    assert r.params == 137_080_320 + 20_971_520 + 16_384 + 1_048_576 + 267_735 == 159_384_535
    assert r.mults == 20_994_048 + 1_048_576 + 137_080_320 == 159_122_944
    assert r.adds == 20_987_904 + 512 * 2047 + 267_735 * 511 + 267_735 == 159_116_288
    assert abs(r.params / 159e6 - 1) < 0.01
    assert abs((r.mults + r.adds) / 318e6 - 1) < 0.01
    assert r.mults + r.adds - 2 * (20_971_520 + 1_048_576 + 137_080_320) == 22_528 + 16_384 - 512


def test_without_output_bias_matches_the_challenge_parameter_figure():
    with torch.device("meta"):
        model = lstm_lm_wikitext103(output_bias=False)
    r = ms.count(model, model.example_inputs())
    assert r.params == 159_116_800  # 0.07% over 159e6
    assert r.adds == 159_116_288 - 267_735


def small() -> LSTMLanguageModel:
    return lstm_lm_wikitext103(num_classes=50, embed_dim=6, hidden_size=10)


def test_small_model_counts_by_hand_on_real_and_meta_weights():
    # V = 50, E = 6, H = 10: LSTM 40*(6+10) = 640 MACs; mults 640 + 110 = 750, adds 640 + 80 = 720.
    # Projection 10 -> 6: 60 mults, 6*9 = 54 adds. Output 6 -> 50: 300 mults, 50*5 + 50 = 300 adds.
    # Parameters: 300 (table) + 640 + 80 (LSTM) + 60 (projection) + 50 (bias) = 1130.
    model = small()
    with torch.no_grad():
        model.output.bias.fill_(0.5)  # non-zero, so no format question arises for the fresh zero bias
    expected = (1130, 750 + 60 + 300, 720 + 54 + 300)
    real = ms.count(model, model.example_inputs(), strict=True)
    assert (real.params, real.mults, real.adds) == expected
    with torch.device("meta"):
        meta_model = small()
    meta = ms.count(meta_model, meta_model.example_inputs(), strict=True)
    assert (meta.params, meta.mults, meta.adds) == expected
    for mkldnn in (True, False):  # real activations: the fused CPU kernel, then the decomposition
        with torch.backends.mkldnn.flags(enabled=mkldnn):
            r = ms.count(model, model.example_inputs(), shapes_only=False, strict=True)
        assert (r.params, r.mults, r.adds) == expected


def test_steps_one_token_at_a_time_and_leaves_the_model_unchanged():
    model = small().eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    tokens = torch.tensor([[3, 7, 1]])
    with torch.no_grad():
        whole, _ = model(tokens)
        state = model.initial_state()
        steps = []
        for t in range(3):
            logits, state = model(tokens[:, t:t + 1], state)
            steps.append(logits)
    torch.testing.assert_close(torch.cat(steps, 1), whole)
    assert whole.shape == (1, 3, 50)
    ms.count(model, model.example_inputs())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert model.output.weight is model.embedding.weight


def test_registered_with_its_input_and_arguments():
    spec = models.spec("lstm-lm-wikitext103")
    assert spec.input_size == (1, 1)
    assert spec.default_kwargs["num_classes"] == 267_735
    with pytest.raises(ValueError, match="vocabulary size"):
        models.build("lstm-lm-wikitext103", num_classes=0)
    with pytest.raises(ValueError, match="output_bias"):
        models.build("lstm-lm-wikitext103", num_classes=5, output_bias="yes")


def test_seeded_builds_are_deterministic():
    a, b = small(), small()
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_a_shape_as_input_is_a_clear_error():
    with pytest.raises(ms.InputError, match="integer token ids.*example_inputs"):
        ms.count(small(), models.input_size("lstm-lm-wikitext103"))
