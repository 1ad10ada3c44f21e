"""Full-ranking top-K evaluation: Recall@K and NDCG@K, overall and per item group.

Protocol (REFERENCE §1): every item is ranked; the items of ``mask_csrs`` (the user's
train items, plus valid items when scoring test) are removed from the ranking; only
users with at least one ground-truth item are averaged. Recall@K = hits / |truth|;
NDCG@K = DCG / IDCG with IDCG over min(|truth|, K) ideal hits.

Per group g (e.g. popularity): the same ranking, but only the truth items of group g
count as relevant, and users without such items are skipped. Keys: ``"ndcg@20|Popular"``.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor


def _tensor(x: Tensor | np.ndarray) -> Tensor:
    t = x.detach() if isinstance(x, Tensor) else torch.from_numpy(np.asarray(x))
    return t.float()


def _rows_cols(csr: sp.csr_matrix, users: np.ndarray) -> tuple[Tensor, Tensor]:
    """Batch-local row ids and item ids of the non-zeros of ``csr[users]``."""
    sub = csr[users]
    rows = np.repeat(np.arange(len(users)), np.diff(sub.indptr))
    return torch.from_numpy(rows), torch.from_numpy(sub.indices.astype(np.int64))


class _Accumulator:
    """Running sums of per-user metrics, keyed by metric name (suffix = group)."""

    def __init__(self, topks: Sequence[int], kmax: int) -> None:
        self.topks, self.kmax = tuple(topks), kmax
        self.discount = 1.0 / torch.log2(torch.arange(2, kmax + 2, dtype=torch.float64))
        self.ideal = torch.cumsum(self.discount, 0)
        self.sums: dict[str, float] = {}
        self.users: dict[str, int] = {}

    def add(self, hits: Tensor, n_rel: Tensor, suffix: str) -> None:
        """hits: (b, kmax) bool relevance of the ranked list; n_rel: (b,) truth sizes > 0."""
        keep = n_rel > 0
        hits, n_rel = hits[keep].double(), n_rel[keep].double()
        self.users[suffix] = self.users.get(suffix, 0) + int(keep.sum())
        for k_req in self.topks:
            k = min(k_req, self.kmax)
            h = hits[:, :k]
            recall = h.sum(1) / n_rel
            idcg = self.ideal[(n_rel.clamp(max=k) - 1).long()]
            ndcg = (h * self.discount[:k]).sum(1) / idcg
            for name, vals in (("recall", recall), ("ndcg", ndcg)):
                key = f"{name}@{k_req}{suffix}"
                self.sums[key] = self.sums.get(key, 0.0) + float(vals.sum())

    def result(self) -> dict[str, float]:
        out = {}
        for key, total in self.sums.items():
            suffix = key[key.index("|"):] if "|" in key else ""
            n = self.users[suffix]
            out[key] = total / n if n else float("nan")
        return out


def evaluate(user_emb: Tensor | np.ndarray, item_emb: Tensor | np.ndarray,
             truth_csr: sp.spmatrix, mask_csrs: Sequence[sp.spmatrix],
             topks: Sequence[int] = (10, 20), item_groups: Sequence | np.ndarray | None = None,
             batch_users: int = 4096) -> dict[str, float]:
    """Recall@K / NDCG@K for K in ``topks`` by inner-product full ranking.

    ``item_groups`` is an item -> group label array (e.g. "Popular"); when given, the
    result also holds ``"<metric>@K|<label>"`` for every label (NaN if no user has a
    truth item in that group). Scores are computed in batches of ``batch_users`` users.
    """
    ue, ie = _tensor(user_emb), _tensor(item_emb)
    n_items = ie.shape[0]
    truth = sp.csr_matrix(truth_csr)
    truth.sum_duplicates()
    masks = [sp.csr_matrix(m) for m in mask_csrs]
    n_truth = np.diff(truth.indptr)
    users = np.flatnonzero(n_truth > 0)
    kmax = min(max(topks), n_items)
    acc = _Accumulator(topks, kmax)
    labels: np.ndarray = np.array([])
    codes: Tensor | None = None
    if item_groups is not None:
        labels, inverse = np.unique(np.asarray(item_groups).astype(str), return_inverse=True)
        codes = torch.from_numpy(inverse.astype(np.int64))
    item_t = ie.T.contiguous()
    for start in range(0, len(users), batch_users):
        batch = users[start:start + batch_users]
        scores = ue[torch.from_numpy(batch)] @ item_t
        for mask in masks:
            rows, cols = _rows_cols(mask, batch)
            scores[rows, cols] = -torch.inf
        top = scores.topk(kmax, dim=1).indices
        rows, cols = _rows_cols(truth, batch)
        relevant = torch.zeros(len(batch), n_items, dtype=torch.bool)
        relevant[rows, cols] = True
        hits = relevant.gather(1, top)
        acc.add(hits, torch.from_numpy(n_truth[batch]), "")
        if codes is not None:
            top_codes, truth_codes = codes[top], codes[cols]
            for g, label in enumerate(labels):
                n_rel = torch.bincount(rows[truth_codes == g], minlength=len(batch))
                acc.add(hits & (top_codes == g), n_rel, f"|{label}")
    result = acc.result()
    for suffix in ["", *(f"|{label}" for label in labels)]:  # stable keys, NaN if no user
        for k in topks:
            for name in ("recall", "ndcg"):
                result.setdefault(f"{name}@{k}{suffix}", float("nan"))
    return result
