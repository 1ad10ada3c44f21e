"""Negative samplers behind one interface (REFERENCE §3), fully batched over users.

A sampler is an ``nn.Module`` so it may own trainable parameters (the trainer puts
``sampler.parameters()`` into the optimizer). ``sample`` gets the current forward pass's
pooled tables (and hop tables, for hop-level samplers) and returns a ``SampleResult``.
Candidates are always drawn uniformly from the items the user has NOT trained on.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from ..config import CFConfig
from .backbones import Backbone, HasTrain


@dataclass
class SampleResult:
    """What a sampler hands to the loss.

    neg_emb: (B, N, d') pooled negative embeddings, with gradient where they have one.
    neg_items: (B, N) item ids, or None for purely synthetic negatives.
    aux_loss: scalar extra loss of the sampler (0 when it has none).
    neg_ego: optional (B, N, d) hop-0 embeddings to regularise instead of ``neg_items``'
        ego rows (MixGCF's mixed hop-0 embedding).
    """

    neg_emb: Tensor
    neg_items: Tensor | None
    aux_loss: Tensor
    neg_ego: Tensor | None = None


def candidate_scores(user_rows: Tensor, item_emb: Tensor, cand: Tensor) -> Tensor:
    """Inner products (B, M) of each user row (B, d') with its candidates' rows."""
    return torch.einsum("bd,bmd->bm", user_rows, item_emb[cand])


def dns_select(cand_scores: Tensor, n_keep: int) -> Tensor:
    """DNS / DNS(M,N): indices (B, n_keep) of the top-scored candidates, best first."""
    return cand_scores.topk(n_keep, dim=1).indices


def ahns_select(pos_scores: Tensor, cand_scores: Tensor, alpha: float, beta: float,
                p: float, eps: float = 1e-6) -> Tensor:
    """AHNS: j* = argmin_j | s(u,j) - beta * (s(u,i) + alpha)^(p+1) |, returns (B,).

    Guard: the base s(u,i) + alpha is clamped to ``eps`` when it is <= eps, so a
    fractional or negative exponent stays finite and real. The target is then the
    limit as the base tends to 0+: with the default p = -2 (exponent -1) it is huge,
    so the rule picks the top-scored (hardest) candidate for a positive the model still
    scores badly, which is the adaptive-hardness trend of the method; for p + 1 > 0
    the target tends to 0.
    """
    base = (pos_scores + alpha).clamp_min(eps)
    target = beta * base.pow(p + 1.0)
    return (cand_scores - target.unsqueeze(1)).abs().argmin(dim=1)


@torch.no_grad()
def mixgcf_select(user_hops: Tensor, pos_hops: Tensor, cand_hops: Tensor, alpha: Tensor) -> Tensor:
    """MixGCF hop mixing: per sample and hop, the index (B, L+1) of the candidate whose
    positively-mixed embedding alpha * e_pos^(l) + (1 - alpha) * e_n^(l) has the largest
    inner product with the user's hop-l query (``Backbone.hop_queries``: the same-hop
    embedding for concat pooling, the pooled user embedding for mean pooling).

    Shapes as in ``mixgcf_mix``. Uses linearity, <u, a p + (1-a) n> = a <u,p> + (1-a) <u,n>,
    so the (B, K, L+1, d) mixed tensor is never built.
    """
    a = alpha.squeeze(-1)                                          # (B, 1, L+1)
    pos_scores = (user_hops * pos_hops).sum(-1).unsqueeze(1)       # (B, 1, L+1)
    cand_scores = (user_hops.unsqueeze(1) * cand_hops).sum(-1)     # (B, K, L+1)
    return (a * pos_scores + (1.0 - a) * cand_scores).argmax(dim=1)


def mixgcf_mix(user_hops: Tensor, pos_hops: Tensor, cand_hops: Tensor,
               alpha: Tensor) -> tuple[Tensor, Tensor]:
    """MixGCF positive mixing then hop mixing.

    user_hops/pos_hops: (B, L+1, d); cand_hops: (B, K, L+1, d); alpha: (B, 1, L+1, 1)
    in [0, 1], one draw per sample and hop shared by its K candidates.
    Mixed e' = alpha * e_pos^(l) + (1 - alpha) * e_n^(l); per hop the candidate whose
    mixed embedding has the largest inner product with the user's hop-l vector in
    ``user_hops`` wins. Returns (chosen (B, L+1, d), winner index per hop (B, L+1)).
    """
    best = mixgcf_select(user_hops, pos_hops, cand_hops, alpha)
    b, _, h, d = cand_hops.shape
    winners = cand_hops.gather(1, best.view(b, 1, h, 1).expand(b, 1, h, d)).squeeze(1)
    a = alpha[:, 0]                                                # (B, L+1, 1)
    return a * pos_hops + (1.0 - a) * winners, best


class NegativeSampler(nn.Module):
    """Base class: owns the train-membership index used for rejection sampling."""

    name = "sampler"
    max_rounds = 200

    def __init__(self, data: HasTrain) -> None:
        super().__init__()
        self.n_items = int(data.n_items)
        train = np.asarray(data.train, dtype=np.int64)
        keys = np.unique(train[:, 0] * self.n_items + train[:, 1])
        if len(keys) and np.bincount(keys // self.n_items).max() >= self.n_items:
            raise ValueError("a user has trained on every item: no negative exists")
        self.register_buffer("train_keys", torch.from_numpy(keys), persistent=False)

    def is_train(self, users: Tensor, items: Tensor) -> Tensor:
        """Boolean mask: is (user, item) a training interaction? Any matching shapes."""
        keys = users * self.n_items + items
        if self.train_keys.numel() == 0:
            return torch.zeros_like(keys, dtype=torch.bool)
        pos = torch.searchsorted(self.train_keys, keys).clamp_max(self.train_keys.numel() - 1)
        return self.train_keys[pos] == keys

    def uniform_negatives(self, users: Tensor, n: int, generator: torch.Generator) -> Tensor:
        """(B, n) items drawn uniformly among each user's non-train items.

        Vectorised rejection sampling: redraw only the rejected cells, round by round.
        """
        cand = torch.randint(0, self.n_items, (users.shape[0], n), generator=generator)
        rows = users.unsqueeze(1).expand_as(cand)
        bad = self.is_train(rows, cand)
        for _ in range(self.max_rounds):
            if not bool(bad.any()):
                return cand
            where = bad.nonzero(as_tuple=True)
            fresh = torch.randint(0, self.n_items, (where[0].numel(),), generator=generator)
            cand[where] = fresh
            bad = torch.zeros_like(bad)
            bad[where] = self.is_train(rows[where], fresh)
        if bool(bad.any()):
            raise RuntimeError("rejection sampling did not find negatives; is the train set "
                               "nearly complete for some user?")
        return cand

    @property
    def n_out(self) -> int:
        """N, the number of negatives per (user, positive) pair trained on."""
        return 1

    def sample(self, model: Backbone, users: Tensor, pos_items: Tensor, user_emb: Tensor,
               item_emb: Tensor, generator: torch.Generator,
               hops: tuple[Tensor, Tensor] | None = None) -> SampleResult:
        """Negatives for a batch. ``user_emb``/``item_emb`` are the full pooled tables of
        the current forward pass; ``hops`` the matching hop tables (computed from
        ``model`` when None and a sampler needs them)."""
        raise NotImplementedError

    def on_epoch_start(self, rng: np.random.Generator) -> None:
        """Hook called by the trainer before each epoch."""

    def _from_items(self, neg_items: Tensor, item_emb: Tensor) -> SampleResult:
        return SampleResult(item_emb[neg_items], neg_items, item_emb.new_zeros(()))


class RNS(NegativeSampler):
    """Random negative sampling: one uniform non-train item per pair."""

    name = "rns"

    def sample(self, model, users, pos_items, user_emb, item_emb, generator, hops=None):
        return self._from_items(self.uniform_negatives(users, 1, generator), item_emb)


class DNS(NegativeSampler):
    """DNS (n_keep = 1) and DNS(M,N): draw ``n_cand`` uniform candidates, train on the
    ``n_keep`` top-scored ones (all of them)."""

    name = "dns"

    def __init__(self, data: HasTrain, n_cand: int, n_keep: int = 1) -> None:
        super().__init__(data)
        if not 1 <= n_keep <= n_cand:
            raise ValueError(f"need 1 <= N <= M, got N={n_keep}, M={n_cand}")
        self.n_cand, self.n_keep = n_cand, n_keep

    @property
    def n_out(self) -> int:
        return self.n_keep

    def sample(self, model, users, pos_items, user_emb, item_emb, generator, hops=None):
        cand = self.uniform_negatives(users, self.n_cand, generator)
        with torch.no_grad():
            idx = dns_select(candidate_scores(user_emb[users], item_emb, cand), self.n_keep)
        return self._from_items(cand.gather(1, idx), item_emb)


class AHNS(NegativeSampler):
    """AHNS: among ``n_cand`` uniform candidates keep the one closest to the adaptive
    target beta * (s(u,i) + alpha)^(p+1); see ``ahns_select`` for the guard."""

    name = "ahns"

    def __init__(self, data: HasTrain, n_cand: int, alpha: float, beta: float, p: float) -> None:
        super().__init__(data)
        self.n_cand, self.alpha, self.beta, self.p = n_cand, alpha, beta, p

    def sample(self, model, users, pos_items, user_emb, item_emb, generator, hops=None):
        cand = self.uniform_negatives(users, self.n_cand, generator)
        with torch.no_grad():
            u = user_emb[users]
            pos_scores = (u * item_emb[pos_items]).sum(-1)
            idx = ahns_select(pos_scores, candidate_scores(u, item_emb, cand),
                              self.alpha, self.beta, self.p)
        return self._from_items(cand.gather(1, idx.unsqueeze(1)), item_emb)


class MixGCF(NegativeSampler):
    """MixGCF: positive mixing per hop, hop mixing, pooled like the backbone.

    Hop mixing scores the hop-l mixed candidates against ``model.hop_queries``: the
    pooled user embedding for LightGCN/SGL (as MixGCF's code does for mean pooling) and
    the same-hop user embedding for NGCF (concat) and MF.

    Returns one synthetic negative per pair. ``neg_items`` is the candidate chosen at
    hop 0 (a real item, useful for logging/FHNS); ``neg_ego`` is the mixed hop-0
    embedding, which the backbone regularises (as MixGCF does). For MF (L = 0) only
    hop 0 exists, so MixGCF reduces to positive mixing plus hardest-candidate choice.
    """

    name = "mixgcf"

    def __init__(self, data: HasTrain, n_cand: int) -> None:
        super().__init__(data)
        self.n_cand = n_cand

    def sample(self, model, users, pos_items, user_emb, item_emb, generator, hops=None):
        user_hops, item_hops = hops if hops is not None else model.hop_embeddings()
        cand = self.uniform_negatives(users, self.n_cand, generator)
        b, h = users.shape[0], user_hops.shape[1]
        alpha = torch.rand(b, 1, h, 1, generator=generator).to(item_hops.dtype)
        pos_hops = item_hops[pos_items]
        queries = model.hop_queries(user_hops[users])
        # the choice needs no gradient: gather the (B, K, L+1, d) candidates off the graph
        best = mixgcf_select(queries, pos_hops, item_hops.detach()[cand], alpha)
        winners = cand.gather(1, best)                             # (B, L+1) item per hop
        neg_hops = item_hops[winners, torch.arange(h)]             # (B, L+1, d), with grad
        a = alpha[:, 0]
        chosen = a * pos_hops + (1.0 - a) * neg_hops
        neg_emb = model.pool(chosen).unsqueeze(1)
        return SampleResult(neg_emb, winners[:, :1], item_emb.new_zeros(()),
                            neg_ego=chosen[:, :1])


SAMPLERS = ("rns", "dns", "dnsmn", "mixgcf", "ahns")


def build_sampler(name: str, data: HasTrain, cfg: CFConfig) -> NegativeSampler:
    """Make a sampler by name: rns | dns | dnsmn | mixgcf | ahns (settings from ``cfg``)."""
    key = name.lower()
    if key == "rns":
        return RNS(data)
    if key == "dns":
        return DNS(data, cfg.n_negs, 1)
    if key == "dnsmn":
        return DNS(data, cfg.dnsmn_m, cfg.dnsmn_n)
    if key == "mixgcf":
        return MixGCF(data, cfg.n_negs)
    if key == "ahns":
        return AHNS(data, cfg.n_negs, cfg.ahns_alpha, cfg.ahns_beta, cfg.ahns_p)
    raise ValueError(f"unknown sampler {name!r}; known: {', '.join(SAMPLERS)}")
