"""The trainer: test is unreachable during selection, seeds reproduce, stopping works."""
from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from hnlmrec_lib.cf import RNS, SampleResult, build_backbone, build_sampler
from hnlmrec_lib.config import CFConfig
from hnlmrec_lib.data.dataset import InteractionData
from hnlmrec_lib.train import TrainingView, evaluate_test, evaluate_valid, fit, train_run


def clustered_data(n_users: int = 80, n_items: int = 60, per_user: int = 12,
                   seed: int = 0) -> InteractionData:
    """Users and items in 4 clusters; 90% of a user's items come from its own cluster."""
    rng = np.random.default_rng(seed)
    item_cluster = np.arange(n_items) % 4
    rows = []
    for u in range(n_users):
        own = np.flatnonzero(item_cluster == u % 4)
        other = np.flatnonzero(item_cluster != u % 4)
        n_own = int(per_user * 0.9)
        picks = np.concatenate([rng.choice(own, n_own, replace=False),
                                rng.choice(other, per_user - n_own, replace=False)])
        rows += [(u, i) for i in rng.permutation(picks)]
    pairs = np.array(rows, dtype=np.int64).reshape(n_users, per_user, 2)
    train, valid, test = (pairs[:, cut].reshape(-1, 2)
                          for cut in (slice(None, -4), slice(-4, -2), slice(-2, None)))
    groups = np.where(np.arange(n_items) < 6, "Popular", "Unpopular")
    items = pd.DataFrame({"raw_id": np.arange(n_items), "pop_group": groups})
    users = pd.DataFrame({"raw_id": np.arange(n_users)})
    return InteractionData("clustered", n_users, n_items, train, valid, test,
                           np.full(len(train), 5.0), items, users)


class SealedTest(InteractionData):
    """An InteractionData whose test split raises on any access."""

    def __getattribute__(self, name: str):
        if name == "test":
            raise RuntimeError("test was read")
        return super().__getattribute__(name)


def sealed(data: InteractionData) -> SealedTest:
    fields = {f.name: getattr(data, f.name) for f in dataclasses.fields(data)}
    return SealedTest(**fields)


FAST = CFConfig(dim=16, layers=2, lr=0.01, batch_size=256, epochs=6, patience=3,
                n_negs=4, dnsmn_m=4, dnsmn_n=2, threads=2)


def test_training_view_has_no_test():
    view = TrainingView.from_data(sealed(clustered_data()))
    assert not hasattr(view, "test")
    with pytest.raises(KeyError):
        view.matrix("test")
    with pytest.raises(dataclasses.FrozenInstanceError):
        view.test = np.zeros((1, 2))  # type: ignore[misc]


def test_fit_refuses_full_data():
    data = clustered_data()
    model, sampler = build_backbone("mf", data, FAST), build_sampler("rns", data, FAST)
    with pytest.raises(TypeError, match="TrainingView"):
        fit(model, sampler, data, FAST, seed=0)  # type: ignore[arg-type]


def test_selection_never_reads_test():
    data = sealed(clustered_data())
    seen: list[int] = []
    with pytest.raises(RuntimeError, match="test was read"):
        train_run(data, FAST, "lightgcn", "rns", seed=0,
                  epoch_callback=lambda epoch, model, info: seen.append(epoch))
    assert len(seen) >= 1 + FAST.patience     # fit finished before test was touched
    # the same through fit directly: completes without error
    view = TrainingView.from_data(data)
    model, sampler = build_backbone("mf", view, FAST), build_sampler("rns", view, FAST)
    result = fit(model, sampler, view, FAST, seed=0)
    assert result.best_epoch >= 1 and "ndcg@20" in result.valid


def test_same_seed_identical_twice():
    """Same seed, same run. With 2 threads MKL's GEMM may differ in the last bit between
    calls (alignment-dependent), so embeddings are compared to 1e-6, not bitwise."""
    data = clustered_data()
    cfg = dataclasses.replace(FAST, epochs=3)
    timing = ["train_seconds", "eval_seconds", "seconds"]
    for backbone, sampler in (("ngcf", "mixgcf"), ("sgl", "dnsmn"), ("lightgcn", "ahns")):
        a = train_run(data, cfg, backbone, sampler, seed=3)
        b = train_run(data, cfg, backbone, sampler, seed=3)
        pd.testing.assert_frame_equal(a.curves.drop(columns=timing), b.curves.drop(columns=timing),
                                      check_exact=False, rtol=1e-6)
        np.testing.assert_allclose(a.user_emb, b.user_emb, atol=1e-6)
        assert a.best_epoch == b.best_epoch and a.test == pytest.approx(b.test, abs=1e-6)
    c = train_run(data, cfg, "lightgcn", "ahns", seed=4)
    assert np.abs(c.user_emb - b.user_emb).max() > 1e-3


def test_learns_and_reports_groups():
    data = clustered_data()
    cfg = dataclasses.replace(FAST, epochs=25, patience=5)
    result = train_run(data, cfg, "lightgcn", "rns", seed=0)
    # random ranking gives recall@10 ~ 10/52; clusters of 15 items make ~0.5+ reachable
    assert result.valid["recall@10"] > 0.4
    assert {"ndcg@20|Popular", "ndcg@20|Unpopular", "ndcg@20"} <= set(result.test)
    assert result.user_emb.shape == (80, 16) and result.item_emb.shape == (60, 16)
    assert result.best_epoch <= result.epochs_run == len(result.curves)
    assert {"epoch", "loss", "bpr", "reg", "aux", "seconds", "valid_ndcg@20"} <= set(result.curves)
    assert result.peak_mem_mb > 0 and result.config["backbone"] == "lightgcn"


def test_early_stopping_and_best_state_restore():
    data = clustered_data()
    view = TrainingView.from_data(data)
    frozen = dataclasses.replace(FAST, lr=0.0, epochs=50, patience=3, min_epochs=0)
    model, sampler = build_backbone("mf", view, frozen), build_sampler("rns", view, frozen)
    result = fit(model, sampler, view, frozen, seed=0)
    assert (result.best_epoch, result.epochs_run) == (1, 4)   # never improves after epoch 1
    warm = dataclasses.replace(frozen, min_epochs=9)          # patience waits for min_epochs
    model, sampler = build_backbone("mf", view, warm), build_sampler("rns", view, warm)
    assert fit(model, sampler, view, warm, seed=0).epochs_run == 9
    wild = dataclasses.replace(FAST, lr=0.3, epochs=12, patience=2, min_epochs=0)
    torch.manual_seed(0)
    model, sampler = build_backbone("lightgcn", view, wild), build_sampler("rns", view, wild)
    result = fit(model, sampler, view, wild, seed=1)
    assert result.best_epoch < result.epochs_run          # later epochs were worse
    assert evaluate_valid(model, view, wild) == pytest.approx(result.valid)  # best restored


class NaNSampler(RNS):
    def sample(self, model, users, pos_items, user_emb, item_emb, generator, hops=None):
        out = super().sample(model, users, pos_items, user_emb, item_emb, generator, hops)
        return SampleResult(out.neg_emb, out.neg_items, torch.tensor(float("nan")))


def test_nan_loss_names_epoch_and_run():
    data = clustered_data()
    with pytest.raises(FloatingPointError, match=r"clustered/mf/nan/seed0.*epoch 1"):
        train_run(data, FAST, "mf", "nan", seed=0,
                  sampler_factory=lambda view, cfg, model: NaNSampler(view))


class LearnedOffset(RNS):
    """A sampler with a trainable parameter pulled towards 1 by its aux loss."""

    def __init__(self, data) -> None:
        super().__init__(data)
        self.offset = nn.Parameter(torch.zeros(()))

    def sample(self, model, users, pos_items, user_emb, item_emb, generator, hops=None):
        out = super().sample(model, users, pos_items, user_emb, item_emb, generator, hops)
        return SampleResult(out.neg_emb, out.neg_items, (self.offset - 1.0) ** 2)


def test_sampler_parameters_are_trained_and_callback_sees_negatives():
    data = clustered_data()
    infos: list[dict] = []
    result = train_run(data, dataclasses.replace(FAST, epochs=2), "mf", "learned", seed=0,
                       sampler_factory=lambda view, cfg, model: LearnedOffset(view),
                       epoch_callback=lambda epoch, model, info: infos.append(info))
    assert result.sampler.offset.item() != 0.0
    first = infos[0]
    n = len(data.train)
    assert first["users"].shape == (n,) and first["neg_items"].shape == (n, 1)
    assert first["neg_emb"].shape == (n, 1, 16) and first["row"]["epoch"] == 1


def test_valid_and_test_scoring_mask_what_the_protocol_says():
    """One-hot items; each user scores its train (and valid) items 1 and its target
    split's items 0.5. Only with the right masks do the targets fill the top 5."""
    data = clustered_data()
    cfg = dataclasses.replace(FAST, dim=data.n_items, topks=(5,))
    model = build_backbone("mf", data, cfg)
    train, valid, test = (data.matrix(s).toarray() for s in ("train", "valid", "test"))
    with torch.no_grad():
        model.item_ego.copy_(torch.eye(data.n_items))
        model.user_ego.copy_(torch.from_numpy(train + 0.5 * valid))
    assert evaluate_valid(model, TrainingView.from_data(data), cfg)["recall@5"] == 1.0
    with torch.no_grad():
        model.user_ego.copy_(torch.from_numpy(train + valid + 0.5 * test))
    metrics = evaluate_test(model, data, cfg)
    assert metrics["recall@5"] == 1.0 and metrics["ndcg@5"] == pytest.approx(1.0)
    assert {"recall@5|Popular", "ndcg@5|Unpopular"} <= set(metrics)
