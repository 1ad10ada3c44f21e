"""Semantic profiles of items and users, Eq. 2-3 (v2), from an LLM.

Item profile P_v = LLM(S_v, D_v) with D_v = {title, attributes, reviews}.
User profile P_u = LLM(S_u, D_u) with D_u = {the user's reviews, P_v of interacted items},
built from TRAIN interactions only: a profile that saw a valid or test item would leak the
answer into every later stage. An answer that is not valid JSON after the retries is
counted and replaced by a plain template built from the same inputs (``ok=False``), so the
study goes on with failures marked.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .artifacts import ArtifactStore
from .config import StudyConfig
from .data.dataset import InteractionData
from .prompts import Prompt, item_profile_prompt, user_profile_prompt

PROFILE_KIND = "profiles"
PROFILE_VERSION = 2


@dataclass
class Profiles:
    """One text per item and per user, with where it came from."""

    item_text: list[str]
    item_source: np.ndarray          # "llm" | "fallback" (LLM failed) | "template" (not asked)
    user_text: list[str]
    user_source: np.ndarray
    item_raw: list[str] = field(default_factory=list)
    user_raw: list[str] = field(default_factory=list)
    item_attempts: np.ndarray | None = None
    user_attempts: np.ndarray | None = None
    model_id: str = ""
    seconds: dict = field(default_factory=dict)

    def report(self) -> pd.DataFrame:
        """JSON success and retries per profile kind (only the prompts actually asked).

        Generation time is not shown here: a resumed build only times what it generated;
        ``benchmarks/bench_profiles.py`` sums the time recorded with every cached call.
        """
        rows = []
        for kind, source, attempts in (("item", self.item_source, self.item_attempts),
                                       ("user", self.user_source, self.user_attempts)):
            asked = source != "template"
            rows.append({
                "profiles": kind, "asked": int(asked.sum()),
                "json_ok": int((source == "llm").sum()),
                "json_ok_rate": float((source[asked] == "llm").mean()) if asked.any() else np.nan,
                "mean_attempts": float(attempts[asked].mean()) if attempts is not None and asked.any() else np.nan,
            })
        return pd.DataFrame(rows).set_index("profiles")


def item_info(data: InteractionData, item: int) -> dict:
    """D_v without reviews: what the prompt says about an item."""
    row = data.items.iloc[item]
    info = {"title": row["title"]}
    if data.name == "ml-100k":
        info["year"] = None if pd.isna(row["year"]) else int(row["year"])
        info["genres"] = ", ".join(row["genres"])
    else:
        info["categories"] = ", ".join(row["genres"])
    return info


def item_template(data: InteractionData, item: int) -> str:
    """Plain-text stand-in for a failed item profile, from the same inputs."""
    row = data.items.iloc[item]
    genres = ", ".join(row["genres"]) or "general"
    return f"People who like {genres} titles such as {row['title']}."


def user_template(data: InteractionData, liked_titles: list[str]) -> str:
    return "Likes " + "; ".join(liked_titles[:5]) + "." if liked_titles else "No history."


def user_history(data: InteractionData, user: int, max_items: int, seed: int) -> np.ndarray:
    """Row indices into ``data.train`` of the user's items shown in the prompt (train only).

    The highest-rated train items come first; ties broken by a seeded shuffle.
    """
    rows = np.flatnonzero(data.train[:, 0] == user)
    rng = np.random.default_rng([seed, user])
    rows = rng.permutation(rows)
    order = np.argsort(-data.train_ratings[rows], kind="stable")
    return rows[order][:max_items]


def user_prompt_for(data: InteractionData, user: int, item_text: list[str], max_items: int,
                    seed: int, description_words: int = 12) -> Prompt:
    """S_u input of one user: demographics and up to ``max_items`` rated train movies, each with
    the first ``description_words`` words of its item profile P_v.

    The budget bounds the prompt's own tokens, which every user prefills (the instruction
    and example are shared, ``llm.generate``): 10 movies with 25-word descriptions averaged
    708 tokens, 8 with 12 words 564 and a cold build of all profiles took 1,012 s on 2 cores;
    6 with 12 words average 491 (``benchmarks/bench_profiles.py``).
    """
    rows = user_history(data, user, max_items, seed)
    liked = []
    for r in rows:
        item = int(data.train[r, 1])
        entry = {"title": data.items.iloc[item]["title"], "description": _short(item_text[item], description_words)}
        if data.name == "ml-100k":
            entry["rating"] = int(data.train_ratings[r])
        liked.append(entry)
    reviews = list(data.users.iloc[user]["reviews"])
    if reviews:
        liked.append({"title": "(the user's own reviews)", "description": " | ".join(reviews)})
    return user_profile_prompt(data.name, str(data.users.iloc[user]["demographics"]), liked)


def _short(text: str, words: int) -> str:
    parts = str(text).split()
    return " ".join(parts[:words]) + ("…" if len(parts) > words else "")


def _subset(n: int, limit: int | None, seed: int) -> np.ndarray:
    """Which indices get an LLM profile (all, or a seeded subset for the smoke preset)."""
    if limit is None or limit >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=limit, replace=False))


def _answers_to_text(answers, idx, fallback) -> tuple[list[str], list[str], list[int], list[str]]:
    texts, sources, attempts, raws = [], [], [], []
    for i, ans in zip(idx, answers):
        summary = (ans.parsed or {}).get("summarization") if ans.ok else None
        if isinstance(summary, str) and summary.strip() and summary.strip().lower() != "none":
            texts.append(summary.strip()), sources.append("llm")
        else:
            texts.append(fallback(i)), sources.append("fallback")
        attempts.append(ans.attempts), raws.append(ans.raw)
    return texts, sources, attempts, raws


def profile_inputs(cfg: StudyConfig, data: InteractionData) -> dict:
    return {"version": PROFILE_VERSION, "data": dataclasses.asdict(cfg.data),
            "llm": dataclasses.asdict(cfg.llm), "profiles": dataclasses.asdict(cfg.profiles),
            "seed": cfg.seed}


def build_profiles(cfg: StudyConfig, data: InteractionData, store: ArtifactStore,
                   model=None, tok=None) -> Profiles:
    """All item then user profiles (cached artifact; LLM calls cached one by one)."""
    def compute() -> Profiles:
        import time

        from .llm.cache import LLMCallCache
        from .llm.loading import load_causal_lm, model_identity
        from .llm_requests import ask

        nonlocal model, tok
        if model is None:
            model, tok = load_causal_lm(cfg.llm.model, store, tiny_random=cfg.llm.tiny_random,
                                        load_in_4bit=cfg.llm.load_in_4bit,
                                        load_in_8bit=cfg.llm.load_in_8bit, dtype=cfg.llm.dtype)
        cache = LLMCallCache(store, name="profiles")
        llm_cfg = cfg.llm if cfg.profiles.max_new_tokens is None else \
            dataclasses.replace(cfg.llm, max_new_tokens=cfg.profiles.max_new_tokens)

        item_text = [item_template(data, i) for i in range(data.n_items)]
        item_source = np.full(data.n_items, "template", dtype=object)
        item_attempts = np.zeros(data.n_items, dtype=int)
        item_raw = [""] * data.n_items
        items = _subset(data.n_items, cfg.profiles.max_items, cfg.seed)
        t0 = time.perf_counter()
        prompts = [item_profile_prompt(data.name, item_info(data, i), list(data.items.iloc[i]["reviews"]))
                   for i in items]
        answers = ask(model, tok, prompts, llm_cfg, cache)
        texts, sources, attempts, raws = _answers_to_text(answers, items, lambda i: item_template(data, i))
        for i, t, s, a, r in zip(items, texts, sources, attempts, raws):
            item_text[i], item_source[i], item_attempts[i], item_raw[i] = t, s, a, r
        item_seconds = time.perf_counter() - t0

        def user_fallback(u: int) -> str:
            rows = user_history(data, u, cfg.profiles.max_items_per_user, cfg.seed)
            return user_template(data, [data.items.iloc[int(data.train[r, 1])]["title"] for r in rows])

        user_text = [user_fallback(u) for u in range(data.n_users)]
        user_source = np.full(data.n_users, "template", dtype=object)
        user_attempts = np.zeros(data.n_users, dtype=int)
        user_raw = [""] * data.n_users
        users = _subset(data.n_users, cfg.profiles.max_users, cfg.seed)
        t0 = time.perf_counter()
        prompts = [user_prompt_for(data, u, item_text, cfg.profiles.max_items_per_user, cfg.seed,
                                   cfg.profiles.description_words) for u in users]
        answers = ask(model, tok, prompts, llm_cfg, cache)
        texts, sources, attempts, raws = _answers_to_text(answers, users, user_fallback)
        for u, t, s, a, r in zip(users, texts, sources, attempts, raws):
            user_text[u], user_source[u], user_attempts[u], user_raw[u] = t, s, a, r
        return Profiles(item_text, item_source.astype(str), user_text, user_source.astype(str),
                        item_raw, user_raw, item_attempts, user_attempts, model_identity(model),
                        {"item": item_seconds, "user": time.perf_counter() - t0})

    return store.cached(PROFILE_KIND, profile_inputs(cfg, data), compute)


def profile_embeddings(cfg: StudyConfig, profiles: Profiles, store: ArtifactStore,
                       embedder=None) -> tuple[np.ndarray, np.ndarray]:
    """Unit-norm text embeddings of every item and user profile (cached per text)."""
    from .llm.embedder import TextEmbedder

    embedder = embedder or TextEmbedder(cfg.llm.embedder, batch_size=cfg.llm.embed_batch_size)
    both = embedder.embed_cached(list(profiles.item_text) + list(profiles.user_text), store)
    n = len(profiles.item_text)
    return both[:n], both[n:]
