"""Semantic Alignment Transformer (Eq. 6 (v2)) and Manifold Projector (Eq. 7 (v2)).

The two modules turn LLM-side vectors of generated hard negatives (text embeddings of
naive-prompting candidates, or SFT hidden states) into vectors in the CF latent space.
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


def usable_heads(dim: int, heads: int) -> int:
    """Largest head count <= ``heads`` that divides ``dim`` (MultiheadAttention needs
    dim % heads == 0); e.g. dim 1536 keeps 4 heads, dim 30 with 4 heads gets 3."""
    for h in range(max(1, min(heads, dim)), 0, -1):
        if dim % h == 0:
            return h
    return 1


class SemanticAlignmentTransformer(nn.Module):
    """Eq. 6 (v2): e_hat = Self-Attention(e_llm), one lightweight post-norm block
    LayerNorm(x + MHA(x, x, x)).

    The sequence attended over is the K candidates generated for ONE (u, v+) pair, so
    the candidates of a pair contextualise each other. With K = 1 the softmax is over a
    single key, so the block reduces to a learned per-vector map LayerNorm(x + W_o W_v x),
    computed directly (a third of the projection cost). ``pad_mask`` (B, K) marks
    missing candidates (True = ignore); every sequence must keep at least one candidate.
    """

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = usable_heads(dim, heads)
        self.attn = nn.MultiheadAttention(dim, self.heads, batch_first=True)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: Tensor, pad_mask: Tensor | None = None) -> Tensor:
        if x.shape[1] == 1:  # one key: attention weights are 1, only W_v and W_o act
            d = x.shape[-1]
            v = F.linear(x, self.attn.in_proj_weight[2 * d:], self.attn.in_proj_bias[2 * d:])
            out = self.attn.out_proj(v)
        else:
            out, _ = self.attn(x, x, x, key_padding_mask=pad_mask, need_weights=False)
        return self.norm(x + out)


class ManifoldProjector(nn.Module):
    """Eq. 7 (v2): e_hard = W2 ReLU(W1 e_hat + b1) + b2, from the LLM/text dim to d'."""

    def __init__(self, in_dim: int, hidden: int, out_dim: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, out_dim))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class SemanticAligner(nn.Module):
    """Eq. 6 then Eq. 7 (v2): (B, K, in_dim) -> (B, K, out_dim).

    ``out_dim`` is the width of the backbone's scoring embedding (``Backbone.out_dim``:
    d for MF/LightGCN/SGL, d(L+1) for NGCF). Attention costs O(in_dim^2) parameters
    (4 in_dim^2), small for the 384-640-d vectors of this study, ~67M for 4096-d.
    """

    def __init__(self, in_dim: int, out_dim: int, hidden: int, heads: int) -> None:
        super().__init__()
        self.in_dim, self.out_dim = in_dim, out_dim
        self.transformer = SemanticAlignmentTransformer(in_dim, heads)
        self.projector = ManifoldProjector(in_dim, hidden, out_dim)

    def forward(self, x: Tensor, pad_mask: Tensor | None = None) -> Tensor:
        if x.dim() != 3 or x.shape[-1] != self.in_dim:
            raise ValueError(f"expected (B, K, {self.in_dim}), got {tuple(x.shape)}")
        return self.projector(self.transformer(x, pad_mask))


def count_parameters(module: nn.Module) -> int:
    """Number of trainable scalars of ``module`` (for the efficiency table)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


__all__ = ["SemanticAligner", "SemanticAlignmentTransformer", "ManifoldProjector",
           "usable_heads", "count_parameters"]
