"""LLM-generated hard negatives behind the CF-core sampler interface.

One module serves three methods; only the candidate bank differs:
- "LLM w/o Alignment": text embeddings of naive-prompting negatives, lambda1 = 0;
- "LLM w/ Alignment": the same bank, lambda1 > 0 (L_align, Eq. 9 (v2));
- HNLMRec: SFT hidden states (one per pair, K = 1), lambda1 > 0.

Per batch: candidates of the pair -> SemanticAligner (Eq. 6-7 (v2)) -> Top-k by the
current model's score (Eq. 28 (v2)) -> optional mix with a random negative (Eq. 7 (v1))
-> BPR negative (Eq. 8 (v2)); L_align pulls the top-1 towards the DNS-mined collaborative
label (Eq. 9 (v2)) and is returned as ``aux_loss = lambda1 * L_align`` (Eq. 10 (v2)).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ..cf.backbones import Backbone, HasTrain
from ..cf.samplers import NegativeSampler, SampleResult, candidate_scores, dns_select
from ..config import NegativesConfig, StudyConfig
from ..runtime import resolve_dtype
from .aligner import SemanticAligner

ALIGNER_DTYPES = ("float32", "bfloat16")


def select_top_k(user_emb_b: Tensor, cand_emb: Tensor, k: int,
                 valid: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Top-1 / Top-k selection, Eq. 28 (v2): keep the k candidates with the highest
    score f(u, c) = <e_u, e_c> under the current model, best first.

    user_emb_b (B, d'), cand_emb (B, K, d'), valid (B, K) bool or None. The choice is
    made without gradient; the returned embeddings (B, k, d') keep the gradient of
    ``cand_emb``. Invalid candidates are never ranked above valid ones; if a row has
    fewer than k valid candidates, the missing picks repeat its top-1 (each row must
    hold at least one valid candidate). Also returns the chosen slots (B, k).
    """
    if not 1 <= k <= cand_emb.shape[1]:
        raise ValueError(f"need 1 <= k <= K={cand_emb.shape[1]}, got k={k}")
    with torch.no_grad():
        scores = torch.einsum("bd,bkd->bk", user_emb_b, cand_emb)
        if valid is not None:
            scores = scores.masked_fill(~valid, float("-inf"))
        slots = scores.topk(k, dim=1).indices
        if valid is not None:
            slots = torch.where(valid.gather(1, slots), slots, slots[:, :1])
    picked = cand_emb.gather(1, slots.unsqueeze(-1).expand(-1, -1, cand_emb.shape[-1]))
    return picked, slots


def align_loss(e_hard: Tensor, labels: Tensor, item_emb: Tensor, tau: float) -> Tensor:
    """L_align, Eq. 9 (v2): -mean_b log softmax_{v in V_B}(kappa(e_hard_b, e_v) / tau)
    at v = v_cf^-(b).

    e_hard (B, d') the projected top-1 negatives; labels (B,) the collaborative hard
    negative items v_cf^-; kappa = cosine. V_B is the SET of the batch's labels, so a
    label mined for several rows appears once in the denominator (counting it twice
    would add log(multiplicity) and contrast a row against its own target). The label
    embeddings are detached: they are targets mined by the backbone, so L_align trains
    only the aligner/projector and never drags CF item embeddings towards the (early on,
    random) projector output; the backbone is trained by BPR alone, as in "w/o Alignment".
    """
    items, target = torch.unique(labels, return_inverse=True)
    keys = F.normalize(item_emb[items].detach(), dim=-1)
    logits = F.normalize(e_hard, dim=-1) @ keys.T / tau
    return F.cross_entropy(logits, target)


@dataclass
class LLMBatchTrace:
    """What the last ``sample`` call chose (detached), for logging and FHNS tracking.

    has_candidates (B,): the pair had a bank row; others used a uniform random negative.
    slots (B, k): chosen candidate of the bank row (-1 on fallback rows).
    random_items (B, k): the uniform draws (the fallback negative / the Eq. 7 (v1) mix).
    dns_labels (B,): v_cf^-, the DNS pick used as the L_align target.
    nearest_items / nearest_cos (B, k): catalogue item closest (cosine) to each e_hard,
    -1 / nan on fallback rows; only when ``track_nearest`` is on (it costs B*n_items*d').
    """

    users: Tensor
    has_candidates: Tensor
    slots: Tensor
    random_items: Tensor
    dns_labels: Tensor
    nearest_items: Tensor | None = None
    nearest_cos: Tensor | None = None


class LLMNegativeSampler(NegativeSampler):
    """Sampler whose negatives are aligned LLM candidates (Eq. 6-10 (v2), App. D).

    bank (R, K, in_dim): LLM-side vectors, K candidates per row (K = 1 for SFT pairs);
    any float dtype (fp16 saves memory), cast per batch. A pair (u, v+) finds its row by
    ``pair_rows`` (P, 3) of (user, item, row) first, else ``row_of_user`` (n_users,);
    row -1, no entry, or a row with no valid candidate means "no candidates": that pair
    gets a uniform random non-train negative (the RNS fallback), no L_align term, and
    the ablation stays comparable when the LLM covered only part of the users.
    bank_valid (R, K) bool marks real candidates (failed generations are False).

    bpr_through_projector: whether the BPR gradient reaches the aligner. It is a
    choice, not a detail: Eq. 10 (v2) minimises BPR over all of Theta, but BPR is
    minimised by LOWERING s(u, e_hard), so the projector can reduce it by drifting to
    easy negatives (far from every user), undoing the hardness. With False the BPR
    negative is e_hard.detach() and only L_align trains the aligner; with True both do.
    With lambda1 = 0 ("LLM w/o Alignment") BPR is the aligner's only signal, so False
    leaves it a fixed random map (the released code's untrained adapter): that
    combination warns.

    regularize_hard: put the BPR negative in the backbone's L2 term like any negative's
    embedding (``SampleResult.neg_ego``), i.e. lambda2 ||Theta||^2 of Eq. 10 (v2) applied to
    e_hard. Without it nothing bounds the projector's output norm (L_align is a cosine), and
    e_hard drifts to norms ~100-1000x the item embeddings, an *easy* negative
    (``benchmarks/diag_llm_negatives.py``). NGCF regularises its negatives' final embeddings
    anyway, so the flag changes nothing there.

    match_norm (our variant, not in the papers): rescale each e_hard to the norm of its
    pair's collaborative label item (the DNS pick, detached), so the LLM decides the
    direction of the negative and the CF space its scale.
    """

    name = "llm"

    def __init__(self, data: HasTrain, bank: Tensor, cfg: NegativesConfig, cf_dim: int,
                 bpr_through_projector: bool, *, row_of_user: Tensor | None = None,
                 pair_rows: Tensor | None = None, bank_valid: Tensor | None = None,
                 n_label_cands: int = 16, track_nearest: bool = False,
                 regularize_hard: bool = False, match_norm: bool = False) -> None:
        super().__init__(data)
        if bank.dim() != 3 or not bank.is_floating_point():
            raise ValueError(f"bank must be a float (R, K, in_dim) tensor, got {tuple(bank.shape)}")
        n_rows, k_cand, in_dim = bank.shape
        if n_rows == 0:
            raise ValueError("empty candidate bank")
        if not 1 <= cfg.top_k <= k_cand:
            raise ValueError(f"top_k={cfg.top_k} must lie in [1, K={k_cand}]")
        if not 0.0 < cfg.alpha_mix <= 1.0:
            raise ValueError(f"alpha_mix must lie in (0, 1], got {cfg.alpha_mix}")
        if row_of_user is None and pair_rows is None:
            raise ValueError("give row_of_user and/or pair_rows")
        valid = torch.ones(n_rows, k_cand, dtype=torch.bool) if bank_valid is None \
            else bank_valid.to(torch.bool)
        if valid.shape != (n_rows, k_cand):
            raise ValueError(f"bank_valid must be {(n_rows, k_cand)}, got {tuple(valid.shape)}")
        usable = valid.any(dim=1)
        self.top_k, self.alpha = cfg.top_k, cfg.alpha_mix
        self.lambda1, self.tau = cfg.lambda1, cfg.tau_c
        self.bpr_through_projector = bpr_through_projector
        if cfg.lambda1 == 0 and not bpr_through_projector:
            warnings.warn("lambda1 = 0 and bpr_through_projector = False: no loss reaches the "
                          "aligner, it stays a fixed random projection", stacklevel=2)
        self.n_label_cands, self.track_nearest = n_label_cands, track_nearest
        self.regularize_hard, self.match_norm = regularize_hard, match_norm
        self.aligner = SemanticAligner(in_dim, cf_dim, cfg.projector_hidden, cfg.attn_heads)
        aligner_dtype = resolve_dtype(cfg.aligner_dtype, "negatives.aligner_dtype")
        if aligner_dtype not in ALIGNER_DTYPES:
            raise ValueError(f"negatives.aligner_dtype={cfg.aligner_dtype!r}; use one of "
                             f"{ALIGNER_DTYPES} or auto")
        self.aligner_bf16 = aligner_dtype == "bfloat16"
        self.register_buffer("bank", bank, persistent=False)
        self.register_buffer("bank_valid", valid, persistent=False)
        self.all_valid = bool(valid.all())
        user_rows = torch.empty(0, dtype=torch.long) if row_of_user is None \
            else self._checked_rows(row_of_user.long(), usable)
        self.register_buffer("row_of_user", user_rows, persistent=False)
        keys, vals = self._pair_table(pair_rows, usable)
        self.register_buffer("pair_keys", keys, persistent=False)
        self.register_buffer("pair_vals", vals, persistent=False)
        self.last: LLMBatchTrace | None = None

    @classmethod
    def from_config(cls, data: HasTrain, bank: Tensor, cfg: StudyConfig, cf_dim: int,
                    bpr_through_projector: bool, **maps: Tensor | None) -> "LLMNegativeSampler":
        """Build with ``cfg.negatives`` and the DNS pool size ``cfg.cf.n_negs`` for the labels."""
        return cls(data, bank, cfg.negatives, cf_dim, bpr_through_projector,
                   n_label_cands=cfg.cf.n_negs, **maps)

    @staticmethod
    def _checked_rows(rows: Tensor, usable: Tensor) -> Tensor:
        """Range-check rows and turn rows without a valid candidate into -1."""
        if rows.numel() and (rows.min() < -1 or rows.max() >= usable.numel()):
            raise ValueError(f"bank rows must lie in [-1, {usable.numel()})")
        return rows.masked_fill((rows >= 0) & ~usable[rows.clamp_min(0)], -1)

    def _pair_table(self, pair_rows: Tensor | None, usable: Tensor) -> tuple[Tensor, Tensor]:
        """Sorted keys user * n_items + item and their bank rows, for searchsorted lookup."""
        if pair_rows is None:
            return torch.empty(0, dtype=torch.long), torch.empty(0, dtype=torch.long)
        table = pair_rows.long()
        keys = table[:, 0] * self.n_items + table[:, 1]
        order = keys.argsort()
        keys = keys[order]
        if keys.numel() > 1 and bool((keys[1:] == keys[:-1]).any()):
            raise ValueError("pair_rows holds a (user, item) pair twice")
        return keys, self._checked_rows(table[order, 2], usable)

    @property
    def n_out(self) -> int:
        return self.top_k

    def rows_for(self, users: Tensor, pos_items: Tensor) -> Tensor:
        """Bank row of each (u, v+) pair (B,): pair table, then user table, else -1."""
        rows = torch.full_like(users, -1)
        if self.pair_keys.numel():
            keys = users * self.n_items + pos_items
            at = torch.searchsorted(self.pair_keys, keys).clamp_max(self.pair_keys.numel() - 1)
            rows = torch.where(self.pair_keys[at] == keys, self.pair_vals[at], rows)
        if self.row_of_user.numel():
            rows = torch.where(rows >= 0, rows, self.row_of_user[users])
        return rows

    def dns_labels(self, users: Tensor, user_emb: Tensor, item_emb: Tensor,
                   generator: torch.Generator) -> Tensor:
        """v_cf^- of Eq. 9 (v2): the DNS pick, i.e. the top-scored of ``n_label_cands``
        uniform non-train items under the current model (no gradient). (B,)"""
        cand = self.uniform_negatives(users, self.n_label_cands, generator).to(item_emb.device)
        with torch.no_grad():
            best = dns_select(candidate_scores(user_emb[users], item_emb, cand), 1)
        return cand.gather(1, best).squeeze(1)

    def sample(self, model: Backbone, users: Tensor, pos_items: Tensor, user_emb: Tensor,
               item_emb: Tensor, generator: torch.Generator,
               hops: tuple[Tensor, Tensor] | None = None) -> SampleResult:
        """Negatives (B, top_k, d') for a batch; aux_loss = lambda1 * L_align (Eq. 10 (v2))."""
        random_items = self.uniform_negatives(users, self.top_k, generator).to(item_emb.device)
        labels = self.dns_labels(users, user_emb, item_emb, generator)
        rows = self.rows_for(users, pos_items)
        has = rows >= 0
        neg = item_emb[random_items]
        aux = item_emb.new_zeros(())
        slots = torch.full_like(random_items, -1)
        nearest: tuple[Tensor | None, Tensor | None] = (None, None)
        # the L2 term's view of the negatives: ego rows of the random items, e_hard where used
        neg_ego = model.item_ego[random_items] if self._regularizes(model) else None
        idx = has.nonzero().squeeze(1)
        if idx.numel():
            # a bank row shared by several pairs of the batch goes through the aligner once
            uniq, inv = torch.unique(rows[idx], return_inverse=True)
            pad = None if self.all_valid else ~self.bank_valid[uniq]
            e_cand = self._align(self.bank[uniq].to(item_emb.dtype), pad)[inv]
            valid = None if pad is None else ~pad[inv]
            e_hard, chosen = select_top_k(user_emb[users[idx]], e_cand, self.top_k, valid)
            if self.match_norm:  # scale of the collaborative label: the direction is the LLM's
                scale = item_emb[labels[idx]].detach().norm(dim=-1, keepdim=True).unsqueeze(1)
                e_hard = e_hard * (scale / e_hard.norm(dim=-1, keepdim=True).clamp_min(1e-12))
            bpr_hard = e_hard if self.bpr_through_projector else e_hard.detach()
            if self.alpha < 1.0:  # Eq. 7 (v1): alpha * e_hard + (1 - alpha) * e_random
                bpr_hard = self.alpha * bpr_hard + (1.0 - self.alpha) * neg[idx]
            neg = neg.index_copy(0, idx, bpr_hard)
            if neg_ego is not None:  # the L2 term trains the projector whatever BPR does
                reg_hard = e_hard if self.alpha == 1.0 else self.alpha * e_hard + (1.0 - self.alpha) * neg_ego[idx]
                neg_ego = neg_ego.index_copy(0, idx, reg_hard)
            slots[idx] = chosen.to(slots.device)
            if self.lambda1 > 0:
                aux = self.lambda1 * align_loss(e_hard[:, 0], labels[idx], item_emb, self.tau)
            if self.track_nearest:
                nearest = self._nearest(e_hard.detach(), item_emb.detach(), idx, has.shape[0])
        self.last = LLMBatchTrace(users.detach(), has, slots, random_items, labels, *nearest)
        return SampleResult(neg, None, aux, neg_ego=neg_ego)

    def _align(self, x: Tensor, pad: Tensor | None) -> Tensor:
        """Eq. 6-7 (v2) on the candidates; with ``aligner_dtype`` "bfloat16" the matmuls run
        under autocast (parameters, LayerNorm, softmax and the result stay float32). The
        aligner dominates an LLM-sampler epoch; on a CPU with bf16 units an epoch is 1.1-1.3x
        faster (``benchmarks/results/aligner.json``), on one without them 6-7x slower
        (``dtype.json``), hence ``auto`` (``runtime.native_bf16``)."""
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=self.aligner_bf16):
            out = self.aligner(x, pad)
        return out.to(x.dtype)

    def _regularizes(self, model: Backbone) -> bool:
        """e_hard joins the ego-level L2 term only where it lives in the ego space's width."""
        return self.regularize_hard and model.out_dim == model.item_ego.shape[1]

    def _nearest(self, e_hard: Tensor, item_emb: Tensor, idx: Tensor,
                 batch: int) -> tuple[Tensor, Tensor]:
        """Catalogue item of highest cosine with each e_hard; -1 / nan on fallback rows."""
        cos = F.normalize(e_hard, dim=-1) @ F.normalize(item_emb, dim=-1).T
        best_cos, best = cos.max(dim=-1)
        items = torch.full((batch, self.top_k), -1, dtype=torch.long, device=best.device)
        sims = torch.full((batch, self.top_k), float("nan"), device=best.device)
        items[idx], sims[idx] = best, best_cos
        return items, sims
