"""The published MicroNet 2019 final leaderboards shipped as data."""

from __future__ import annotations

import pytest

import micronet_score as ms
from micronet_score.organizer import SubmissionError


def test_published_leaderboards_as_on_the_site():
    # leaderboard.md at micronet-challenge.github.io commit b487872: 30 CIFAR-100, 20 ImageNet, 5 WikiText-103 rows
    cifar = ms.published("micronet-2019-cifar100")
    imagenet = ms.published("micronet-2019-imagenet")
    wiki = ms.published("micronet-2019-wikitext103")
    assert (len(cifar), len(imagenet), len(wiki)) == (30, 20, 5)
    assert (cifar[0].team, cifar[0].score, cifar[0].verified) == ("RIAIR", 0.0044, True)
    assert (imagenet[0].team, imagenet[0].score) == ("RIAIR", 0.1295)
    assert (wiki[0].team, wiki[0].score, wiki[0].compute_efficient) == ("MIT-HAN-Lab", 0.0475, True)
    assert [e.team for e in cifar if not e.met_threshold] == ["PunyNet"]  # 53.39% top-1
    assert [e.score for e in imagenet if not e.met_threshold] == [0.5067]  # DQStarter, 74.962% top-1
    assert all(e.param_term is None for e in cifar)  # the site publishes the score only


def test_unknown_published_leaderboard():
    with pytest.raises(SubmissionError, match="known: micronet-2019-cifar100"):
        ms.published("micronet-2020")
