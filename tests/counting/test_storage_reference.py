"""The official counter's EfficientNet-B0 figures (spec section 5), reproduced by a fresh build at the defaults."""

import pytest

import micronet_score as ms


@pytest.fixture(scope="module")
def efficientnet_b0():
    return ms.count(ms.models.build("efficientnet-b0"), (1, 3, 224, 224))


def test_fresh_efficientnet_b0_storage_matches_the_official_counter(efficientnet_b0):
    r = efficientnet_b0
    # 5,267,540 stored values (batch norms folded into biases), all dense: a fresh model's zero biases are
    # stored values, never sparse; 5,267,540 x 16 bits / 32 = 2,633,770 scoring parameters.
    assert r.params == 5_267_540
    assert r.mask_bits == 0
    assert r.param_storage == 2_633_770
    # 406,623,188 mults at 16 bits + 394,550,748 adds at 32 bits (real skip-add size) = 597,862,342.
    assert (r.mults, r.adds, r.math_ops) == (406_623_188, 394_550_748, 597_862_342)


def test_fresh_efficientnet_b0_scores_the_official_figure(efficientnet_b0):
    # 2,633,770 / 6.9e6 + 597,862,342 / 1.17e9 = 0.892699
    assert round(ms.score(efficientnet_b0, rules="micronet-2019-imagenet").value, 6) == 0.892699


def test_fresh_efficientnet_b0_roles_come_from_the_engine(efficientnet_b0):
    # every stored tensor is classified by the operator that reads it (no fallback to its shape): the conv and
    # classifier weights are weights, every bias (folded batch norms, SE, classifier) a dense vector
    rows = efficientnet_b0.tensors
    assert not [t.name for t in rows if t.reason.startswith("not classified")]
    assert {t.role for t in rows if len(t.shape) >= 2} == {"weight"}
    assert {(t.role, t.format) for t in rows if len(t.shape) == 1} == {("vector", "dense")}
