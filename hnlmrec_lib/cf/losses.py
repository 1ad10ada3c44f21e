"""Training objectives shared by the backbones, the samplers and the HNLMRec modules."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def bpr_loss(pos_scores: Tensor, neg_scores: Tensor) -> Tensor:
    """BPR, Eq. 1 (v2): mean over the batch and over the N negatives of -log sigma(s+ - s-).

    ``pos_scores`` is (B,); ``neg_scores`` is (B,) or (B, N). Written with softplus,
    since -log sigma(x) = softplus(-x), which neither overflows nor underflows.
    """
    if neg_scores.dim() == 1:
        neg_scores = neg_scores.unsqueeze(1)
    return F.softplus(neg_scores - pos_scores.unsqueeze(1)).mean()


def info_nce(anchor: Tensor, positive: Tensor, tau: float, *,
             normalize: bool = True, extra_negatives: Tensor | None = None) -> Tensor:
    """In-batch InfoNCE: row i of ``anchor`` should pick row i of ``positive``.

    loss = mean_i [ -s(a_i, p_i)/tau + logsumexp_j s(a_i, c_j)/tau ], where the candidates
    c_j are all rows of ``positive`` (the other rows act as in-batch negatives) followed by
    the rows of ``extra_negatives`` (M, d) if given. ``s`` is cosine similarity when
    ``normalize`` (SGL views, Eq. 9 (v2) with kappa = cosine) and the plain inner product
    otherwise (Eq. 12 (v2) on already normalised LLM states). Computed with logsumexp,
    so large 1/tau does not overflow.
    """
    if normalize:
        anchor = F.normalize(anchor, dim=-1)
        positive = F.normalize(positive, dim=-1)
        if extra_negatives is not None:
            extra_negatives = F.normalize(extra_negatives, dim=-1)
    candidates = positive if extra_negatives is None else torch.cat([positive, extra_negatives], 0)
    logits = anchor @ candidates.T / tau
    target = (anchor * positive).sum(-1) / tau
    return (torch.logsumexp(logits, dim=1) - target).mean()
