"""What a count divides by (spec section 3, "Examples"): the batch dimension of the first input is 0 unless it
goes first into a sequence-first module, ``batch_dim=`` overrides, per-token rule sets divide by tokens."""

import pytest
import torch
from torch import nn

import micronet_score as ms
from micronet_score.models.lstm_lm import lstm_lm_wikitext103

# nn.MultiheadAttention(32, 4), 10 tokens, self-attention, per example:
#   in-projection q, k, v: 3 x 10 tokens x 32 x 32                 = 30,720
#   q scaling by 1/sqrt(8): 10 x 32                                  =    320
#   scores q k^T: 4 heads x 10 x 10 x 8                              =  3,200
#   softmax: 4 heads x 10 rows x (10 exp + 10 mults)                 =    800
#   weights x v: 4 heads x 10 x 10 x 8                               =  3,200
#   out-projection: 10 x 32 x 32                                     = 10,240
#   head-averaged attention weights (need_weights): 10 x 10          =    100
#   total                                                            = 48,580 mults
MHA_MULTS = 30_720 + 320 + 3_200 + 800 + 3_200 + 10_240 + 100


@pytest.mark.parametrize("batch_first", [False, True])
def test_multihead_attention_counts_the_same_per_example_in_both_layouts(batch_first):
    model = nn.MultiheadAttention(32, 4, batch_first=batch_first)
    x = torch.randn(3, 10, 32) if batch_first else torch.randn(10, 3, 32)
    report = ms.count(model, (x, x, x))
    assert MHA_MULTS == 48_580
    assert report.mults == MHA_MULTS
    assert (report.examples, report.batch_dim) == (3, 0 if batch_first else 1)
    assert ("sequence-first" in report.examples_from) != batch_first
    assert ms.Report.from_json(report.to_json()).examples_from == report.examples_from


def test_lstm_with_default_batch_first_false():
    # LSTM(5, 7) per step and example: 4*7*(5+7) = 336 MACs + 11 per unit x 7 = 413 mults; 392 adds
    # (tests/counting/test_rnn.py). 4 steps, batch 3 at dimension 1.
    model = nn.LSTM(5, 7)
    state = (torch.randn(1, 3, 7), torch.randn(1, 3, 7))
    report = ms.count(model, (torch.randn(4, 3, 5), state))
    assert (report.mults, report.adds) == (4 * 413, 4 * 392)
    assert (report.examples, report.batch_dim) == (3, 1)


def test_token_ids_through_an_embedding_into_a_sequence_first_lstm():
    class LM(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb, self.lstm = nn.Embedding(20, 5), nn.LSTM(5, 7)

        def forward(self, ids):
            return self.lstm(self.emb(ids))[0]

    report = ms.count(LM(), torch.zeros(4, 2, dtype=torch.long))  # 4 steps, batch 2
    assert (report.examples, report.batch_dim) == (2, 1)


def test_convolutional_models_and_the_override():
    conv = ms.count(nn.Conv2d(3, 4, 3), (2, 3, 8, 8))
    assert (conv.examples, conv.batch_dim) == (2, 0)
    model = nn.LSTM(5, 7)
    x = torch.randn(4, 3, 5)
    forced = ms.count(model, x, batch_dim=0)  # the user says dimension 0: 4 "examples" of 3 steps
    assert (forced.examples, forced.batch_dim, forced.examples_from) == (4, 0, "dimension 0 of the first input "
                                                                          "(4): batch_dim=0 given")
    with pytest.raises(ms.InputError, match="batch_dim=3 but the first input has shape"):
        ms.count(model, x, batch_dim=3)


def test_unbatched_input_into_a_sequence_first_module_is_one_example():
    model = nn.MultiheadAttention(32, 4)
    x = torch.randn(10, 32)
    report = ms.count(model, (x, x, x))
    assert report.examples == 1 and report.mults == MHA_MULTS


def test_wikitext103_rule_set_counts_per_token():
    # lstm-lm-wikitext103 per token (tests/models/test_lstm_lm.py): 159,122,944 mults + 159,116,288 adds
    # = 318,239,232 ops. Batch 1 stepping 4 tokens from a given state: 4 tokens, the same per token.
    with torch.device("meta"):
        model = lstm_lm_wikitext103()
    _, state = model.example_inputs()
    tokens = torch.zeros(1, 4, dtype=torch.long, device="meta")
    report = ms.count(model, (tokens, state), rules="micronet-2019-wikitext103")
    assert report.convention == "micronet-per-token"
    assert (report.examples, report.batch_dim) == (4, 0)
    assert "4 tokens" in report.examples_from
    assert (report.mults, report.adds) == (159_122_944, 159_116_288)
    assert abs((report.mults + report.adds) / 318e6 - 1) < 0.001
    plain = ms.count(model, (tokens, state))  # the micronet convention: per sequence
    assert plain.examples == 1 and plain.mults == 4 * 159_122_944


def test_per_token_refuses_an_input_that_holds_no_tokens():
    with pytest.raises(ms.InputError, match="not a batch of token sequences"):
        ms.count(nn.Conv2d(3, 4, 3), (1, 3, 8, 8), rules="micronet-2019-wikitext103")
    # a float sequence into a sequence module is tokens: (batch 2, 5 steps) -> 10 examples
    report = ms.count(nn.LSTM(4, 4, batch_first=True), torch.randn(2, 5, 4), rules="micronet-2019-wikitext103")
    assert report.examples == 10
