"""Naive prompting for hard negatives: Eq. 4-5 (v2), K candidates per prompt (Eq. 27 (v2)).

For a pair (u, v+) the LLM receives S_H with D_H = {(u, v+), P_u, P_v} and names K items
that are semantically close to the user's taste but behaviourally not of interest. The
names are grounded in the catalogue (to measure the false-hard-negative trap in the text
domain), embedded with the text embedder (Eq. 5 (v2)) and stored as a negative bank.

Prompting unit (``negatives.unit``):
- ``pair``: one prompt per training pair, as the paper (the ``paper`` preset);
- ``user_budget``: ``pairs_per_user`` prompts per user, for seeded random train items of the
  user; every pair of that user then draws on the user's pooled candidates, and the Top-1 /
  Top-k selection of Eq. 28 (v2) picks per pair at training time.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field

import numpy as np

from ..artifacts import ArtifactStore, stable_hash
from ..config import StudyConfig
from ..data.dataset import InteractionData
from ..profiles import Profiles, profile_inputs
from ..prompts import hard_negative_prompt
from .bank import NegativeBank
from .grounding import fhns_text_stats, ground_generations, is_failed

TEXT_NEG_KIND = "text_negatives"
KEY = "hard negative items"


@dataclass
class TextNegatives:
    """Raw and grounded generations for the prompted pairs."""

    llm: str
    pairs: np.ndarray                       # (P, 2) user, item
    names: list[list[str] | None]           # None = failed generation
    raw: list[str]
    attempts: np.ndarray
    grounded: list[list[int | None]] = field(default_factory=list)
    seconds: float = 0.0
    inputs_hash: str = ""

    def stats(self, data: InteractionData, k: int) -> dict:
        """Failure, grounding and false-hard-negative shares over all requested candidates."""
        gens = [g if names is not None else [None] * k for g, names in zip(self.grounded, self.names)]
        out = fhns_text_stats(gens, data.positives("train"), data.positives("valid"),
                              data.positives("test"), self.pairs[:, 1], self.pairs[:, 0])
        out["json_ok_rate"] = float(np.mean([n is not None for n in self.names])) if self.names else 0.0
        out["mean_attempts"] = float(self.attempts.mean()) if len(self.attempts) else 0.0
        return out


def prompted_pairs(data: InteractionData, unit: str, pairs_per_user: int, seed: int) -> np.ndarray:
    """The (user, item) train pairs that get a prompt."""
    if unit == "pair":
        return data.train.copy()
    if unit != "user_budget":
        raise ValueError(f"negatives.unit={unit!r}: expected 'pair' or 'user_budget'")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(data.train))
    users = data.train[order, 0]
    ranks = np.empty(len(order), dtype=np.int64)
    sort = np.argsort(users, kind="stable")
    starts = np.searchsorted(users[sort], users[sort], side="left")
    ranks[sort] = np.arange(len(sort)) - starts
    chosen = order[ranks < pairs_per_user]
    pairs = data.train[chosen]
    return pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))]


def _names(obj: dict | None, k: int) -> list[str] | None:
    """The candidate names of a parsed answer (a list, or one string), or None."""
    if obj is None:
        return None
    value = obj.get(KEY)
    if isinstance(value, str):
        value = [v for v in value.replace(";", ",").split(",")] if "," in value or ";" in value else [value]
    if not isinstance(value, list):
        return None
    names = [str(v).strip() for v in value if not is_failed(v) and str(v).strip()]
    return names[:k] or None


def _validate(obj: dict) -> str | None:
    return None if _names(obj, 99) else "no candidate names"


def text_negative_inputs(cfg: StudyConfig, data: InteractionData, llm: str) -> dict:
    return {"version": 1, "profiles": profile_inputs(cfg, data), "llm": llm,
            "llm_cfg": dataclasses.asdict(cfg.llm), "negatives": {
                k: getattr(cfg.negatives, k) for k in ("unit", "pairs_per_user", "k_candidates",
                                                       "fuzzy_threshold")}}


def generate_text_negatives(cfg: StudyConfig, data: InteractionData, profiles: Profiles,
                            store: ArtifactStore, llm: str, model=None, tok=None) -> TextNegatives:
    """Prompt ``llm`` for K hard negatives per prompted pair (cached artifact)."""
    inputs = text_negative_inputs(cfg, data, llm)

    def compute() -> TextNegatives:
        from ..llm.cache import LLMCallCache
        from ..llm.loading import load_causal_lm
        from ..llm_requests import ask

        nonlocal model, tok
        if model is None:
            model, tok = load_causal_lm(llm, store, tiny_random=cfg.llm.tiny_random,
                                        load_in_4bit=cfg.llm.load_in_4bit,
                                        load_in_8bit=cfg.llm.load_in_8bit, dtype=cfg.llm.dtype)
        k = cfg.negatives.k_candidates
        pairs = prompted_pairs(data, cfg.negatives.unit, cfg.negatives.pairs_per_user, cfg.seed)
        titles = data.items["title"].tolist()
        prompts = [hard_negative_prompt(data.name, profiles.user_text[u], titles[i],
                                        profiles.item_text[i], k) for u, i in pairs]
        t0 = time.perf_counter()
        answers = ask(model, tok, prompts, cfg.llm, LLMCallCache(store, name="hard_negatives"),
                      validate=_validate)
        names = [_names(a.parsed, k) if a.ok else None for a in answers]
        neg = TextNegatives(llm, pairs, names, [a.raw for a in answers],
                            np.array([a.attempts for a in answers]), seconds=time.perf_counter() - t0,
                            inputs_hash=stable_hash(inputs))
        neg.grounded = ground_generations(names, titles, cfg.negatives.fuzzy_threshold,
                                          catalogue_years=data.items["year"].tolist())
        return neg

    return store.cached(TEXT_NEG_KIND, inputs, compute)


def build_text_bank(name: str, cfg: StudyConfig, data: InteractionData, neg: TextNegatives,
                    store: ArtifactStore, embedder=None) -> NegativeBank:
    """Embed the generated names (Eq. 5 (v2)) into a bank: a row per user or per pair."""
    from ..llm.embedder import TextEmbedder

    k = cfg.negatives.k_candidates
    embedder = embedder or TextEmbedder(cfg.llm.embedder, batch_size=cfg.llm.embed_batch_size)
    flat = sorted({n for names in neg.names if names for n in names})
    vectors = dict(zip(flat, embedder.embed_cached(flat, store))) if flat else {}
    dim = embedder.dim
    if cfg.negatives.unit == "pair":
        groups = [[i] for i in range(len(neg.pairs))]
        pair_rows = np.column_stack([neg.pairs, np.arange(len(neg.pairs))])
        row_of_user = None
        width = k
    else:
        owners = {}
        for i, u in enumerate(neg.pairs[:, 0]):
            owners.setdefault(int(u), []).append(i)
        users = sorted(owners)
        groups = [owners[u] for u in users]
        row_of_user = np.full(data.n_users, -1, dtype=np.int64)
        row_of_user[users] = np.arange(len(users))
        pair_rows = None
        width = k * max(len(g) for g in groups)
    bank = np.zeros((len(groups), width, dim), dtype=np.float16)
    valid = np.zeros((len(groups), width), dtype=bool)
    for r, members in enumerate(groups):
        names = [n for i in members for n in (neg.names[i] or [])]
        for j, n in enumerate(names[:width]):
            bank[r, j], valid[r, j] = vectors[n], True
    return NegativeBank(name, bank, valid, row_of_user, pair_rows,
                        inputs_hash=stable_hash({"neg": neg.inputs_hash, "embedder": embedder.model_id}),
                        info={"llm": neg.llm, "unit": cfg.negatives.unit, "k": k,
                              "rows": len(groups), "width": width})
