"""Collaborative-filtering backbones behind one small interface (REFERENCE §4).

Every backbone exposes per-hop embeddings ``(n, L+1, d)`` and a ``pool`` that turns
hops into the final scoring embedding, so hop-level samplers (MixGCF) work on any of
them. Graph propagation uses ``torch.sparse`` only; no dense N x N matrix is built.
"""
from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Protocol

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import CFConfig
from .losses import info_nce

if TYPE_CHECKING:
    from .samplers import SampleResult


class HasTrain(Protocol):
    """What a backbone needs from the data: train pairs and the sizes."""

    n_users: int
    n_items: int
    train: np.ndarray


def normalized_adjacency(n_users: int, n_items: int, pairs: np.ndarray) -> Tensor:
    """Symmetric D^-1/2 A D^-1/2 of the user-item bipartite graph, no self loops.

    Nodes are users ``0..n_users-1`` then items. Duplicate pairs count once; isolated
    nodes get a zero row. Returns a sparse CSR float32 tensor of shape (n, n),
    n = n_users + n_items.
    """
    n = n_users + n_items
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    rows = np.concatenate([pairs[:, 0], pairs[:, 1] + n_users])
    cols = np.concatenate([pairs[:, 1] + n_users, pairs[:, 0]])
    adj = sp.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(n, n))
    adj.sum_duplicates()
    adj.data[:] = 1.0
    deg = np.asarray(adj.sum(axis=1)).ravel()
    with np.errstate(divide="ignore"):
        inv_sqrt = np.where(deg > 0, deg ** -0.5, 0.0).astype(np.float32)
    norm = sp.csr_matrix(sp.diags(inv_sqrt) @ adj @ sp.diags(inv_sqrt), dtype=np.float32)
    norm.sort_indices()
    with warnings.catch_warnings():  # "sparse CSR support is in beta"
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(torch.from_numpy(norm.indptr.astype(np.int64)),
                                       torch.from_numpy(norm.indices.astype(np.int64)),
                                       torch.from_numpy(norm.data), (n, n),
                                       check_invariants=True)


class _SymmetricSpMM(torch.autograd.Function):
    """y = A x for a symmetric sparse A; the gradient A^T g is again A g.

    Written out because autograd through ``torch.sparse.mm`` transposes and re-coalesces
    A on every backward, which dominated a LightGCN step on CPU.
    """

    @staticmethod
    def forward(ctx, adj: Tensor, dense: Tensor) -> Tensor:  # type: ignore[override]
        ctx.adj = adj
        return adj @ dense

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[None, Tensor]:  # type: ignore[override]
        return None, ctx.adj @ grad


def sym_spmm(adj: Tensor, dense: Tensor) -> Tensor:
    """Differentiable (in ``dense``) product of a symmetric sparse matrix and a dense one."""
    return _SymmetricSpMM.apply(adj, dense)


class Backbone(nn.Module):
    """Common interface. Subclasses implement ``hop_embeddings`` and ``pool``.

    ``reg`` is the L2 weight of ``reg_loss``; ``lr`` the learning rate the trainer uses.
    """

    name = "backbone"

    def __init__(self, n_users: int, n_items: int, dim: int, reg: float, lr: float) -> None:
        super().__init__()
        self.n_users, self.n_items, self.dim = n_users, n_items, dim
        self.reg, self.lr = reg, lr
        self.user_ego = nn.Parameter(torch.empty(n_users, dim))
        self.item_ego = nn.Parameter(torch.empty(n_items, dim))
        nn.init.xavier_uniform_(self.user_ego)
        nn.init.xavier_uniform_(self.item_ego)

    @property
    def n_hops(self) -> int:
        """Number of propagation layers L (hop embeddings have L+1 slices)."""
        return 0

    @property
    def out_dim(self) -> int:
        """Width d' of the pooled (scoring) embedding."""
        return self.dim

    def hop_embeddings(self) -> tuple[Tensor, Tensor]:
        """(user_hops (n_users, L+1, d), item_hops (n_items, L+1, d))."""
        raise NotImplementedError

    def pool(self, hops: Tensor) -> Tensor:
        """(B, L+1, d) -> (B, d'), pooled the way this backbone builds its final embedding."""
        raise NotImplementedError

    def hop_queries(self, user_hops: Tensor) -> Tensor:
        """Per-hop user vectors q (B, L+1, d) with <pool(u), pool(n)> proportional to
        sum_l <q_l, n_l>: how one hop of an item contributes to the final score.

        Default (concat / single hop): the same-hop user embedding. Mean pooling
        overrides it with the pooled user embedding on every hop, as MixGCF's code
        scores its hop mixing for LightGCN.
        """
        return user_hops

    def propagate(self) -> tuple[Tensor, Tensor]:
        """Final (user_emb (n_users, d'), item_emb (n_items, d')) used for scoring."""
        user_hops, item_hops = self.hop_embeddings()
        return self.pool(user_hops), self.pool(item_hops)

    def reg_loss(self, users: Tensor, pos_items: Tensor, negatives: "SampleResult",
                 user_emb: Tensor, item_emb: Tensor) -> Tensor:
        """reg * (||u0||^2 + ||p0||^2 + ||n0||^2) / (2B) on ego (hop-0) embeddings.

        The negatives' term is averaged over the N negatives so its scale does not grow
        with N (BPR is averaged the same way). ``negatives.neg_ego`` (e.g. MixGCF's
        synthetic hop-0 embedding) takes precedence over looking up ``neg_items``; with
        neither the negatives are not regularised (a projector-made negative is expected
        to regularise its own parameters through ``aux_loss``).
        """
        total = self.user_ego[users].pow(2).sum() + self.item_ego[pos_items].pow(2).sum()
        neg = negatives.neg_ego
        if neg is None and negatives.neg_items is not None:
            neg = self.item_ego[negatives.neg_items]
        if neg is not None:
            total = total + neg.pow(2).sum() / neg.shape[1]
        return self.reg * total / (2.0 * users.shape[0])

    def auxiliary_loss(self, users: Tensor, pos_items: Tensor) -> Tensor:
        """Extra self-supervised loss of the backbone (SGL); zero otherwise."""
        return self.user_ego.new_zeros(())

    def on_epoch_start(self, rng: np.random.Generator) -> None:
        """Hook called by the trainer before each epoch (SGL resamples its views)."""


class MF(Backbone):
    """MF-BPR: the inner product of ID embeddings; a single hop (L = 0)."""

    name = "mf"

    def hop_embeddings(self) -> tuple[Tensor, Tensor]:
        return self.user_ego.unsqueeze(1), self.item_ego.unsqueeze(1)

    def pool(self, hops: Tensor) -> Tensor:
        return hops[:, 0]


class LightGCN(Backbone):
    """LightGCN: E^(k+1) = D^-1/2 A D^-1/2 E^(k); final = mean over layers 0..K."""

    name = "lightgcn"

    def __init__(self, data: HasTrain, dim: int, layers: int, reg: float, lr: float) -> None:
        super().__init__(data.n_users, data.n_items, dim, reg, lr)
        self.layers = layers
        self.register_buffer("adj", normalized_adjacency(data.n_users, data.n_items, data.train),
                             persistent=False)

    @property
    def n_hops(self) -> int:
        return self.layers

    def _hops_on(self, adj: Tensor) -> tuple[Tensor, Tensor]:
        emb = torch.cat([self.user_ego, self.item_ego], 0)
        hops = [emb]
        for _ in range(self.layers):
            emb = sym_spmm(adj, emb)
            hops.append(emb)
        stacked = torch.stack(hops, dim=1)
        return stacked[: self.n_users], stacked[self.n_users:]

    def hop_embeddings(self) -> tuple[Tensor, Tensor]:
        return self._hops_on(self.adj)

    def pool(self, hops: Tensor) -> Tensor:
        return hops.mean(dim=1)

    def hop_queries(self, user_hops: Tensor) -> Tensor:
        return self.pool(user_hops).unsqueeze(1).expand_as(user_hops)


class NGCF(Backbone):
    """NGCF: per layer LeakyReLU(W1 (L+I) E) + LeakyReLU(W2 (L E * E)), message dropout,
    L2-normalised layer outputs, and the concatenation of all layers (ego included).

    ``reg_loss`` regularises the final (concatenated) embeddings, as NGCF does.
    """

    name = "ngcf"

    def __init__(self, data: HasTrain, dim: int, layers: int, reg: float, lr: float,
                 dropout: float) -> None:
        super().__init__(data.n_users, data.n_items, dim, reg, lr)
        self.layers = layers
        self.w_sum = nn.ModuleList(nn.Linear(dim, dim) for _ in range(layers))
        self.w_bi = nn.ModuleList(nn.Linear(dim, dim) for _ in range(layers))
        for lin in [*self.w_sum, *self.w_bi]:
            nn.init.xavier_uniform_(lin.weight)
            nn.init.zeros_(lin.bias)
        self.dropout = nn.Dropout(dropout)
        self.register_buffer("adj", normalized_adjacency(data.n_users, data.n_items, data.train),
                             persistent=False)

    @property
    def n_hops(self) -> int:
        return self.layers

    @property
    def out_dim(self) -> int:
        return self.dim * (self.layers + 1)

    def hop_embeddings(self) -> tuple[Tensor, Tensor]:
        ego = torch.cat([self.user_ego, self.item_ego], 0)
        hops = [ego]
        for w_sum, w_bi in zip(self.w_sum, self.w_bi):
            side = sym_spmm(self.adj, ego)
            ego = F.leaky_relu(w_sum(side + ego), 0.2) + F.leaky_relu(w_bi(side * ego), 0.2)
            ego = self.dropout(ego)
            hops.append(F.normalize(ego, dim=1))
        stacked = torch.stack(hops, dim=1)
        return stacked[: self.n_users], stacked[self.n_users:]

    def pool(self, hops: Tensor) -> Tensor:
        return hops.reshape(hops.shape[0], -1)

    def reg_loss(self, users: Tensor, pos_items: Tensor, negatives: "SampleResult",
                 user_emb: Tensor, item_emb: Tensor) -> Tensor:
        neg = negatives.neg_emb
        total = (user_emb[users].pow(2).sum() + item_emb[pos_items].pow(2).sum()
                 + neg.pow(2).sum() / neg.shape[1])
        return self.reg * total / (2.0 * users.shape[0])


class SGL(LightGCN):
    """SGL-ED: a LightGCN encoder plus InfoNCE between two edge-dropout views.

    Both views drop ``drop_ratio`` of the train edges and are resampled each epoch
    (``on_epoch_start``); the auxiliary loss is ``weight * (InfoNCE_users + InfoNCE_items)``
    on L2-normalised view embeddings of the batch's unique users and positive items.
    """

    name = "sgl"

    def __init__(self, data: HasTrain, dim: int, layers: int, reg: float, lr: float,
                 drop_ratio: float, tau: float, weight: float) -> None:
        super().__init__(data, dim, layers, reg, lr)
        self.drop_ratio, self.tau, self.weight = drop_ratio, tau, weight
        self._train = np.asarray(data.train)
        self.views: tuple[Tensor, Tensor] | None = None

    def on_epoch_start(self, rng: np.random.Generator) -> None:
        self.views = (self._edge_dropout(rng), self._edge_dropout(rng))

    def _edge_dropout(self, rng: np.random.Generator) -> Tensor:
        keep = rng.random(len(self._train)) >= self.drop_ratio
        return normalized_adjacency(self.n_users, self.n_items, self._train[keep])

    def auxiliary_loss(self, users: Tensor, pos_items: Tensor) -> Tensor:
        if self.weight == 0:
            return self.user_ego.new_zeros(())
        if self.views is None:
            self.on_epoch_start(np.random.default_rng(0))
        (u1, i1), (u2, i2) = (self._hops_on(view) for view in self.views)
        u_idx, i_idx = torch.unique(users), torch.unique(pos_items)
        loss_u = info_nce(self.pool(u1[u_idx]), self.pool(u2[u_idx]), self.tau)
        loss_i = info_nce(self.pool(i1[i_idx]), self.pool(i2[i_idx]), self.tau)
        return self.weight * (loss_u + loss_i)


BACKBONES = ("mf", "lightgcn", "ngcf", "sgl")


def build_backbone(name: str, data: HasTrain, cfg: CFConfig) -> Backbone:
    """Make a backbone by name with the hyper-parameters of ``cfg``.

    The learning rate is ``cfg.lr_for(name)``; NGCF takes ``cfg.ngcf_reg``, the others ``cfg.reg``.
    Parameters are drawn from torch's global RNG: seed it first for reproducibility.
    """
    key = name.lower()
    if key == "mf":
        return MF(data.n_users, data.n_items, cfg.dim, cfg.reg, cfg.lr_for(key))
    if key == "lightgcn":
        return LightGCN(data, cfg.dim, cfg.layers, cfg.reg, cfg.lr_for(key))
    if key == "ngcf":
        return NGCF(data, cfg.dim, cfg.layers, cfg.ngcf_reg, cfg.lr_for(key), cfg.ngcf_dropout)
    if key == "sgl":
        return SGL(data, cfg.dim, cfg.layers, cfg.reg, cfg.lr_for(key),
                   cfg.sgl_drop_ratio, cfg.sgl_tau, cfg.sgl_weight)
    raise ValueError(f"unknown backbone {name!r}; known: {', '.join(BACKBONES)}")
