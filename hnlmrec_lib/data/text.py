"""Text fields for the LLM stages: item title and attributes line, user demographics, and
a bounded, seeded sample of review snippets per item and per user.

Reviews come from TRAIN interactions only, so no valid/test text reaches a prompt.
MovieLens has no reviews, so its lists are empty.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from .split import shuffle_within_users


def truncate(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters at a word boundary, with "…" if cut."""
    text = " ".join(str(text).split())
    if len(text) <= limit:
        return text
    if limit <= 1:
        return text[:limit]
    head = text[: limit - 1]
    space = head.rfind(" ")
    if space >= limit // 2:
        head = head[:space]
    return head.rstrip(" ,.;:") + "…"


def attributes_line(genres: Sequence[str], year: object, details: str,
                    genre_label: str = "Genres") -> str:
    """One line such as "Genres: Animation, Comedy; Year: 1995; Brand: Lego"."""
    parts = []
    if len(genres):
        parts.append(f"{genre_label}: {', '.join(genres)}")
    if year is not None and not pd.isna(year):
        parts.append(f"Year: {int(year)}")
    if details:
        parts.append(details)
    return "; ".join(parts)


def sample_reviews(owner: np.ndarray, texts: Sequence[str], n_owners: int, max_count: int,
                   max_chars: int, seed: int) -> list[list[str]]:
    """Up to ``max_count`` random non-empty snippets (each <= ``max_chars``) per owner index."""
    out: list[list[str]] = [[] for _ in range(n_owners)]
    texts = np.asarray(texts, dtype=object)
    filled = np.flatnonzero([isinstance(t, str) and bool(t.strip()) for t in texts])
    if max_count <= 0 or len(filled) == 0:
        return out
    order, rank, _ = shuffle_within_users(np.asarray(owner)[filled], seed)
    chosen = filled[order[rank < max_count]]
    for row in chosen:
        out[int(owner[row])].append(truncate(texts[row], max_chars))
    return out


def item_frame(meta: pd.DataFrame, item_ids: np.ndarray, reviews: list[list[str]],
               genre_label: str) -> pd.DataFrame:
    """Items table indexed by item index: raw_id, title, year, genres, attributes, reviews.

    Items missing from the metadata get an empty title, no year and no genres.
    """
    meta = meta.drop_duplicates("item").set_index("item")
    meta = meta.reindex(pd.Index(item_ids, dtype=object))
    titles = meta["title"].fillna("").astype(str).to_numpy()
    years = pd.array([None if pd.isna(y) else int(y) for y in meta["year"]], dtype="Int64")
    genres = [list(g) if isinstance(g, (list, tuple)) else [] for g in meta["genres"]]
    details = meta["details"].fillna("").astype(str).to_numpy()
    attributes = [attributes_line(g, y, d, genre_label) for g, y, d in zip(genres, years, details)]
    return pd.DataFrame({"raw_id": np.asarray(item_ids, dtype=object), "title": titles,
                         "year": years, "genres": genres, "attributes": attributes,
                         "reviews": reviews})


def user_frame(meta: pd.DataFrame, user_ids: np.ndarray, reviews: list[list[str]]) -> pd.DataFrame:
    """Users table indexed by user index: raw_id, demographics, reviews."""
    meta = meta.drop_duplicates("user").set_index("user")
    demographics = meta["demographics"].reindex(pd.Index(user_ids, dtype=object))
    return pd.DataFrame({"raw_id": np.asarray(user_ids, dtype=object),
                         "demographics": demographics.fillna("").astype(str).to_numpy(),
                         "reviews": reviews})
