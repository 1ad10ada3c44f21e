"""Full-ranking metrics against rankings worked out by hand."""
from __future__ import annotations

import time

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from hnlmrec_lib.metrics import evaluate


def _csr(pairs: list[tuple[int, int]], shape: tuple[int, int]) -> sp.csr_matrix:
    rows, cols = zip(*pairs) if pairs else ((), ())
    return sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=shape)


@pytest.fixture
def table():
    """Scores are given directly: user_emb = score table, item_emb = identity.

    user 0: scores 0.9 .. 0.5 on items 0..4, train {0}, truth {1, 3} -> ranking 1,2,3,4
    user 1: scores 0.1 .. 0.5, train {4}, valid {3} (masked), truth {2} -> ranking 2,1,0
    user 2: no truth item -> not averaged
    """
    scores = torch.tensor([[0.9, 0.8, 0.7, 0.6, 0.5],
                           [0.1, 0.2, 0.3, 0.4, 0.5],
                           [0.5, 0.4, 0.3, 0.2, 0.1]])
    shape = (3, 5)
    train = _csr([(0, 0), (1, 4)], shape)
    valid = _csr([(1, 3)], shape)
    truth = _csr([(0, 1), (0, 3), (1, 2)], shape)
    return scores, torch.eye(5), truth, [train, valid]


def test_hand_computed_overall(table):
    scores, items, truth, masks = table
    got = evaluate(scores, items, truth, masks, topks=(1, 3))
    # user 0: K=1 hit item 1 -> recall 1/2, ndcg 1/1 (IDCG over min(2,1)=1 slot);
    #         K=3 hits at ranks 1 and 3 -> recall 1, ndcg (1 + 1/2) / (1 + 0.63093) = 0.91972
    # user 1: item 2 first -> recall 1, ndcg 1 at both K
    assert got["recall@1"] == pytest.approx(0.75)
    assert got["ndcg@1"] == pytest.approx(1.0)
    assert got["recall@3"] == pytest.approx(1.0)
    assert got["ndcg@3"] == pytest.approx(0.95986, abs=1e-5)


def test_valid_mask_matters(table):
    scores, items, truth, masks = table
    got = evaluate(scores, items, truth, masks[:1], topks=(1,))
    # without the valid mask user 1 ranks item 3 first: no hit at K=1
    assert got["recall@1"] == pytest.approx(0.25)
    assert got["ndcg@1"] == pytest.approx(0.5)


def test_per_group(table):
    scores, items, truth, masks = table
    groups = np.array(["A", "A", "B", "B", "B"])
    got = evaluate(scores, items, truth, masks, topks=(1, 3), item_groups=groups)
    # group A: only user 0 (truth {1}) -> perfect at both K
    assert got["recall@1|A"] == pytest.approx(1.0)
    assert got["ndcg@3|A"] == pytest.approx(1.0)
    # group B: user 0 truth {3} (rank 3: ndcg 1/log2(4) = 0.5), user 1 truth {2} (rank 1)
    assert got["recall@1|B"] == pytest.approx(0.5)
    assert got["ndcg@1|B"] == pytest.approx(0.5)
    assert got["recall@3|B"] == pytest.approx(1.0)
    assert got["ndcg@3|B"] == pytest.approx(0.75)
    assert got["ndcg@3"] == pytest.approx(0.95986, abs=1e-5)


def test_empty_group_is_nan(table):
    scores, items, truth, masks = table
    got = evaluate(scores, items, truth, masks, topks=(1,), item_groups=np.array(list("AABBC")))
    assert np.isnan(got["ndcg@1|C"]) and np.isnan(got["recall@1|C"])


def test_batching_and_numpy_inputs_agree(table):
    scores, items, truth, masks = table
    whole = evaluate(scores, items, truth, masks, topks=(1, 3))
    split = evaluate(scores.numpy(), items.numpy(), truth, masks, topks=(1, 3), batch_users=1)
    assert whole == pytest.approx(split)


def test_full_movielens_size_is_fast():
    gen = torch.Generator().manual_seed(0)
    n_users, n_items = 943, 1682
    ue, ie = torch.randn(n_users, 64, generator=gen), torch.randn(n_items, 64, generator=gen)
    rng = np.random.default_rng(0)
    train = sp.random(n_users, n_items, density=0.05, format="csr", random_state=rng)
    truth = sp.random(n_users, n_items, density=0.01, format="csr", random_state=rng)
    evaluate(ue, ie, truth, [train], topks=(10, 20))  # warm-up
    start = time.perf_counter()
    got = evaluate(ue, ie, truth, [train], topks=(10, 20))
    elapsed = time.perf_counter() - start
    assert set(got) == {"recall@10", "ndcg@10", "recall@20", "ndcg@20"}
    assert elapsed < 1.0, f"full evaluation took {elapsed:.2f}s"
