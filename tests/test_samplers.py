"""Each sampler's pick on hand-made score tables, and RNS never returning a positive."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from hnlmrec_lib.cf import (AHNS, DNS, RNS, SAMPLERS, MixGCF, ahns_select, build_backbone,
                            build_sampler, dns_select, mixgcf_mix)
from hnlmrec_lib.config import CFConfig


class _Pairs:
    """Minimal data: the fields samplers and backbones read."""

    def __init__(self, n_users: int, n_items: int, train: np.ndarray) -> None:
        self.n_users, self.n_items, self.train = n_users, n_items, train


def _dense_users(seed: int = 0) -> _Pairs:
    rng = np.random.default_rng(seed)
    rows = [(u, i) for u in range(40) for i in rng.choice(30, size=26, replace=False)]
    return _Pairs(40, 30, np.array(rows, dtype=np.int64))


def _fixed(sampler, cand: list[list[int]]):
    """Make ``sampler`` draw exactly these candidates (a hand-made table)."""
    sampler.uniform_negatives = lambda users, n, gen: torch.tensor(cand)
    return sampler


def test_rns_never_returns_a_train_positive():
    data = _dense_users()
    sampler = RNS(data)
    users = torch.arange(40).repeat_interleave(50)
    gen = torch.Generator().manual_seed(0)
    cand = sampler.uniform_negatives(users, 20, gen)
    train = {(int(u), int(i)) for u, i in data.train}
    pairs = {(int(u), int(i)) for u, row in zip(users, cand) for i in row}
    assert not pairs & train
    # every user has 4 non-train items and draws 1000 times: all of them appear
    assert len(pairs) == 40 * 4
    out = sampler.sample(None, users, users, torch.zeros(40, 3), torch.zeros(30, 3), gen)
    assert out.neg_items.shape == (2000, 1) and out.neg_emb.shape == (2000, 1, 3)
    assert not {(int(u), int(i)) for u, i in zip(users, out.neg_items[:, 0])} & train


def test_rns_rejects_a_user_with_every_item():
    with pytest.raises(ValueError, match="every item"):
        RNS(_Pairs(1, 3, np.array([[0, 0], [0, 1], [0, 2]])))


def _one_dim_tables(item_scores: list[float]):
    """d = 1, user embedding 1: s(u, j) is the item's own number."""
    return torch.ones(1, 1), torch.tensor(item_scores).unsqueeze(1)


def test_dns_keeps_the_top_scored_candidate(toy_data):
    user_emb, item_emb = _one_dim_tables([0.1, 0.9, 0.3, 0.7, 0.5, 0.2])
    sampler = _fixed(DNS(toy_data, n_cand=4, n_keep=1), [[2, 5, 3, 4]])
    out = sampler.sample(None, torch.tensor([0]), torch.tensor([0]), user_emb, item_emb, None)
    assert out.neg_items.tolist() == [[3]]          # 0.7 is the best of 0.3, 0.2, 0.7, 0.5
    assert out.neg_emb.tolist() == [[[pytest.approx(0.7)]]]
    assert dns_select(torch.tensor([[0.3, 0.2, 0.7, 0.5]]), 1).tolist() == [[2]]


def test_dns_mn_trains_on_the_top_n(toy_data):
    user_emb, item_emb = _one_dim_tables([0.1, 0.9, 0.3, 0.7, 0.5, 0.2])
    sampler = _fixed(DNS(toy_data, n_cand=4, n_keep=2), [[2, 5, 3, 4]])
    out = sampler.sample(None, torch.tensor([0]), torch.tensor([0]), user_emb, item_emb, None)
    assert sampler.n_out == 2
    assert out.neg_items.tolist() == [[3, 4]]        # 0.7 then 0.5
    with pytest.raises(ValueError):
        DNS(toy_data, n_cand=2, n_keep=3)


def test_ahns_rule_by_hand():
    cand = torch.tensor([[0.1, 0.35, 0.5, 0.9]])
    # p = -2: target = 0.4 / (0.9 + 0.1) = 0.4 -> |diffs| 0.3, 0.05, 0.1, 0.5 -> index 1
    assert ahns_select(torch.tensor([0.9]), cand, 0.1, 0.4, -2.0).tolist() == [1]
    # s(u,i) = 0.3: target = 0.4 / 0.4 = 1.0 -> closest is 0.9 -> index 3
    assert ahns_select(torch.tensor([0.3]), cand, 0.1, 0.4, -2.0).tolist() == [3]
    # p = 0: target = 0.4 * (0.9 + 0.1) = 0.4 -> index 1
    assert ahns_select(torch.tensor([0.9]), cand, 0.1, 0.4, 0.0).tolist() == [1]


def test_ahns_guard_when_base_is_not_positive():
    cand = torch.tensor([[0.1, 0.35, 0.5, 0.9]])
    pos = torch.tensor([-0.5])                       # s(u,i) + alpha = -0.4 <= 0
    # base clamped to eps: exponent -1 -> huge target -> the hardest candidate
    assert ahns_select(pos, cand, 0.1, 0.4, -2.0).tolist() == [3]
    # fractional exponent -0.5 would be NaN without the guard; still the hardest
    assert ahns_select(pos, cand, 0.1, 0.4, -1.5).tolist() == [3]
    # positive exponent: target -> 0, so the easiest candidate
    assert ahns_select(pos, cand, 0.1, 0.4, 0.0).tolist() == [0]


def test_ahns_sampler_uses_the_positive_score(toy_data):
    user_emb, item_emb = _one_dim_tables([0.9, 0.1, 0.35, 0.5, 0.9, 0.2])
    sampler = _fixed(AHNS(toy_data, 4, alpha=0.1, beta=0.4, p=-2.0), [[1, 2, 3, 4]])
    out = sampler.sample(None, torch.tensor([0]), torch.tensor([0]), user_emb, item_emb, None)
    assert out.neg_items.tolist() == [[2]]          # positive 0.9 -> target 0.4 -> item 2 (0.35)


def test_mixgcf_per_hop_selection_by_hand():
    user = torch.tensor([[[1.0], [-1.0]]])                  # (B=1, hops=2, d=1)
    pos = torch.zeros(1, 2, 1)
    cand = torch.tensor([[[[1.0], [-3.0]], [[2.0], [-2.0]]]])  # (B, K=2, hops, d)
    alpha = torch.full((1, 1, 2, 1), 0.5)
    chosen, best = mixgcf_mix(user, pos, cand, alpha)
    # mixed c0 = (0.5, -1.5), c1 = (1, -1); hop 0: 0.5 vs 1 -> c1; hop 1: 1.5 vs 1 -> c0
    assert best.tolist() == [[1, 0]]
    assert chosen.flatten().tolist() == [1.0, -1.5]


def test_mixgcf_mixed_embedding_lies_between_pos_and_neg():
    gen = torch.Generator().manual_seed(0)
    user, pos = torch.randn(64, 4, 8, generator=gen), torch.randn(64, 4, 8, generator=gen)
    cand = torch.randn(64, 16, 4, 8, generator=gen)
    alpha = torch.rand(64, 1, 4, 1, generator=gen)
    chosen, best = mixgcf_mix(user, pos, cand, alpha)
    winner = cand.gather(1, best[:, None, :, None].expand(64, 1, 4, 8)).squeeze(1)
    low, high = torch.minimum(pos, winner), torch.maximum(pos, winner)
    assert bool(((chosen >= low - 1e-6) & (chosen <= high + 1e-6)).all())
    scores = (user.unsqueeze(1) * (alpha * pos.unsqueeze(1) + (1 - alpha) * cand)).sum(-1)
    assert torch.equal(best, scores.argmax(dim=1))


@pytest.mark.parametrize("backbone", ["mf", "lightgcn", "ngcf"])
def test_mixgcf_sampler_pools_like_the_backbone(toy_data, backbone):
    torch.manual_seed(0)
    model = build_backbone(backbone, toy_data, CFConfig(dim=4, layers=2)).eval()
    sampler = MixGCF(toy_data, n_cand=3)
    users, pos = torch.tensor([0, 1, 2, 3]), torch.tensor([0, 1, 3, 5])
    user_emb, item_emb = model.propagate()
    out = sampler.sample(model, users, pos, user_emb, item_emb, torch.Generator().manual_seed(0))
    assert out.neg_emb.shape == (4, 1, model.out_dim) and out.neg_items.shape == (4, 1)
    assert out.neg_ego.shape == (4, 1, 4)
    train = {(int(u), int(i)) for u, i in toy_data.train}
    assert not {(int(u), int(i)) for u, i in zip(users, out.neg_items[:, 0])} & train
    out.neg_emb.sum().backward()
    assert model.item_ego.grad.abs().sum() > 0      # gradients reach the mixed items
    # the sampler's fast path equals the reference mixing on the same draws
    cand = [[1, 2, 4], [0, 3, 5], [0, 1, 2], [1, 2, 3]]
    _fixed(sampler, cand)
    with torch.no_grad():
        out = sampler.sample(model, users, pos, user_emb, item_emb,
                             torch.Generator().manual_seed(5))
        hops_u, hops_i = model.hop_embeddings()
        alpha = torch.rand(4, 1, hops_u.shape[1], 1, generator=torch.Generator().manual_seed(5))
        queries = model.hop_queries(hops_u[users])
        chosen, best = mixgcf_mix(queries, hops_i[pos], hops_i[torch.tensor(cand)], alpha)
    torch.testing.assert_close(out.neg_emb[:, 0], model.pool(chosen))
    assert out.neg_items[:, 0].tolist() == [c[i] for c, i in zip(cand, best[:, 0].tolist())]


@pytest.mark.parametrize("name", SAMPLERS)
@pytest.mark.parametrize("backbone", ["lightgcn", "ngcf"])
def test_every_sampler_shape(toy_data, name, backbone):
    cfg = CFConfig(dim=4, layers=2, n_negs=3, dnsmn_m=4, dnsmn_n=2)
    model = build_backbone(backbone, toy_data, cfg)
    sampler = build_sampler(name, toy_data, cfg)
    users, pos = torch.tensor([0, 1, 2]), torch.tensor([0, 1, 3])
    hops = model.hop_embeddings()
    user_emb, item_emb = model.pool(hops[0]), model.pool(hops[1])
    out = sampler.sample(model, users, pos, user_emb, item_emb,
                         torch.Generator().manual_seed(0), hops=hops)
    assert out.neg_emb.shape == (3, sampler.n_out, model.out_dim)
    assert out.aux_loss.shape == ()


def test_build_sampler_unknown(toy_data):
    with pytest.raises(ValueError, match="unknown sampler"):
        build_sampler("pns", toy_data, CFConfig())
