"""Backbones against dense numpy references on the toy graph, plus the losses."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from hnlmrec_lib.cf import (SampleResult, build_backbone, bpr_loss, info_nce,
                            normalized_adjacency, sym_spmm)
from hnlmrec_lib.config import CFConfig


def _dense_norm_adj(data) -> np.ndarray:
    n = data.n_users + data.n_items
    adj = np.zeros((n, n))
    for u, i in data.train:
        adj[u, data.n_users + i] = adj[data.n_users + i, u] = 1.0
    deg = adj.sum(1)
    inv = np.where(deg > 0, 1.0 / np.sqrt(np.maximum(deg, 1e-12)), 0.0)
    return inv[:, None] * adj * inv[None, :]


def _ego(model) -> np.ndarray:
    return torch.cat([model.user_ego, model.item_ego]).detach().double().numpy()


def test_normalized_adjacency_matches_dense(toy_data):
    adj = normalized_adjacency(toy_data.n_users, toy_data.n_items, toy_data.train)
    adj = adj.to_dense().numpy()
    expected = _dense_norm_adj(toy_data)
    np.testing.assert_allclose(adj, expected, atol=1e-6)
    assert np.all(np.diag(adj) == 0)


def test_lightgcn_propagation_equals_dense(toy_data):
    torch.manual_seed(0)
    model = build_backbone("lightgcn", toy_data, CFConfig(dim=8, layers=3))
    a, e = _dense_norm_adj(toy_data), _ego(model)
    layers = [e]
    for _ in range(3):
        layers.append(a @ layers[-1])
    final = np.mean(layers, axis=0)
    users, items = model.propagate()
    np.testing.assert_allclose(users.detach().numpy(), final[:4], atol=1e-5)
    np.testing.assert_allclose(items.detach().numpy(), final[4:], atol=1e-5)
    user_hops, _ = model.hop_embeddings()
    np.testing.assert_allclose(user_hops[:, 2].detach().numpy(), layers[2][:4], atol=1e-5)


def test_sym_spmm_gradient_matches_dense(toy_data):
    adj = normalized_adjacency(toy_data.n_users, toy_data.n_items, toy_data.train)
    x = torch.randn(10, 3, requires_grad=True)
    w = torch.randn(10, 3)
    (sym_spmm(adj, x) * w).sum().backward()
    x2 = x.detach().clone().requires_grad_(True)
    (adj.to_dense() @ x2 * w).sum().backward()
    torch.testing.assert_close(x.grad, x2.grad)


def test_mf_is_identity_pooling(toy_data):
    model = build_backbone("mf", toy_data, CFConfig(dim=4))
    users, items = model.propagate()
    torch.testing.assert_close(users, model.user_ego)
    assert model.hop_embeddings()[1].shape == (6, 1, 4)


def test_ngcf_first_layer_equals_dense(toy_data):
    torch.manual_seed(0)
    model = build_backbone("ngcf", toy_data, CFConfig(dim=4, layers=2)).eval()
    a, e = _dense_norm_adj(toy_data), _ego(model)
    w1, b1 = (t.detach().double().numpy() for t in (model.w_sum[0].weight, model.w_sum[0].bias))
    w2, b2 = (t.detach().double().numpy() for t in (model.w_bi[0].weight, model.w_bi[0].bias))
    leaky = lambda z: np.where(z > 0, z, 0.2 * z)  # noqa: E731
    side = a @ e
    e1 = leaky((side + e) @ w1.T + b1) + leaky((side * e) @ w2.T + b2)
    e1 /= np.linalg.norm(e1, axis=1, keepdims=True)
    user_hops, item_hops = model.hop_embeddings()
    np.testing.assert_allclose(user_hops[:, 1].detach().numpy(), e1[:4], atol=1e-5)
    users, _ = model.propagate()
    assert users.shape == (4, 12) and model.out_dim == 12
    np.testing.assert_allclose(users[:, :4].detach().numpy(), e[:4], atol=1e-6)  # ego first


def test_ngcf_dropout_only_in_training(toy_data):
    model = build_backbone("ngcf", toy_data, CFConfig(dim=4, layers=1, ngcf_dropout=0.5))
    model.eval()
    torch.testing.assert_close(model.propagate()[0], model.propagate()[0])
    model.train()
    assert not torch.equal(model.propagate()[0], model.propagate()[0])


def test_sgl_views_and_infonce(toy_data):
    torch.manual_seed(0)
    model = build_backbone("sgl", toy_data, CFConfig(dim=4, sgl_drop_ratio=0.5, sgl_weight=0.1))
    model.on_epoch_start(np.random.default_rng(1))
    v1, v2 = model.views
    assert v1._nnz() < 2 * len(toy_data.train) and not torch.equal(v1.to_dense(), v2.to_dense())
    users, items = torch.tensor([0, 1, 1]), torch.tensor([0, 1, 2])
    loss = model.auxiliary_loss(users, items)
    assert loss.item() > 0 and math.isfinite(loss.item())
    loss.backward()
    assert model.user_ego.grad is not None and model.user_ego.grad.abs().sum() > 0
    # identical views (no dropout): the loss is the plain InfoNCE of one view with itself
    same = build_backbone("sgl", toy_data, CFConfig(dim=4, sgl_drop_ratio=0.0, sgl_weight=1.0, sgl_tau=0.2))
    same.on_epoch_start(np.random.default_rng(0))
    u, i = same.propagate()
    expected = info_nce(u[[0, 1]], u[[0, 1]], 0.2) + info_nce(i[[0, 1, 2]], i[[0, 1, 2]], 0.2)
    torch.testing.assert_close(same.auxiliary_loss(users, items), expected)


@pytest.mark.parametrize("name", ["mf", "lightgcn", "ngcf"])
def test_hop_queries_decompose_the_pooled_score(toy_data, name):
    """<pool(u), pool(n)> = c * sum_l <q_l, n_l>: c = 1/(L+1) for mean pooling, else 1."""
    model = build_backbone(name, toy_data, CFConfig(dim=4, layers=2)).eval()
    user_hops, item_hops = model.hop_embeddings()
    pooled = model.pool(user_hops) @ model.pool(item_hops).T
    per_hop = torch.einsum("uld,ild->ui", model.hop_queries(user_hops), item_hops)
    scale = 1.0 / 3 if name == "lightgcn" else 1.0
    torch.testing.assert_close(pooled, scale * per_hop)
    if name == "lightgcn":  # MixGCF's convention for mean pooling: the pooled user
        torch.testing.assert_close(model.hop_queries(user_hops)[:, 2], model.pool(user_hops))


def test_lightgcn_reg_loss_by_hand(toy_data):
    model = build_backbone("mf", toy_data, CFConfig(dim=2, reg=0.5))
    with torch.no_grad():
        model.user_ego.fill_(1.0)   # ||u0||^2 = 2 per user
        model.item_ego.fill_(2.0)   # ||i0||^2 = 8 per item
    users, pos = torch.tensor([0, 1]), torch.tensor([0, 1])
    neg = SampleResult(torch.zeros(2, 2, 2), torch.tensor([[2, 3], [4, 5]]), torch.zeros(()))
    u, i = model.propagate()
    # 0.5 * (2*2 + 2*8 + 4*8/2) / (2*2) = 0.5 * 36 / 4
    assert model.reg_loss(users, pos, neg, u, i).item() == pytest.approx(4.5)


def test_backbone_lr_and_ngcf_reg(toy_data):
    cfg = CFConfig(lr=1e-3, backbone_lr={"ngcf": 3e-4, "lightgcn": 5e-3}, ngcf_reg=2e-5)
    model = build_backbone("ngcf", toy_data, cfg)
    assert (model.lr, model.reg) == (3e-4, 2e-5)
    assert build_backbone("lightgcn", toy_data, cfg).lr == 5e-3
    assert build_backbone("mf", toy_data, cfg).lr == 1e-3          # not named: cfg.lr
    with pytest.raises(ValueError, match="unknown backbone"):
        build_backbone("gcn", toy_data, cfg)


def test_bpr_loss_by_hand():
    # -log sigmoid(1 - 0) = log(1 + e^-1) = 0.313262; -log sigmoid(1 - 3) = 2.126928
    loss = bpr_loss(torch.tensor([1.0]), torch.tensor([[0.0, 3.0]]))
    assert loss.item() == pytest.approx((0.313262 + 2.126928) / 2, abs=1e-5)
    assert bpr_loss(torch.tensor([1e4]), torch.tensor([-1e4])).item() == 0.0


def test_info_nce_matches_softmax_and_is_stable():
    a, p = torch.randn(5, 3), torch.randn(5, 3)
    norm = torch.nn.functional.normalize
    logits = norm(a, dim=1) @ norm(p, dim=1).T / 0.5
    expected = -torch.log_softmax(logits, dim=1).diag().mean()
    torch.testing.assert_close(info_nce(a, p, 0.5), expected)
    assert math.isfinite(info_nce(a * 1e3, p * 1e3, 1e-4, normalize=False).item())
    extra = torch.randn(4, 3)
    assert info_nce(a, p, 0.5, extra_negatives=extra) > info_nce(a, p, 0.5)
