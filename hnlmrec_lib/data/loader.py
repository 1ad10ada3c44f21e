"""``load_dataset``: raw files -> filtered, split, text-annotated ``InteractionData``.

Steps: open the source named by ``cfg.data.dataset`` (files under
``cfg.data.raw_dir/<dataset>/``), filter (rating, dates, duplicates, optional user subset,
k-core), remap ids, split per user, attach item/user text from TRAIN rows only and the
popularity group of each item. With a store, the result is cached under ``dataset/``,
keyed by the DataConfig, the reader version and the raw files' names and sizes.
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np

from ..artifacts import ArtifactStore
from ..config import DataConfig, StudyConfig, resolve_path
from . import amazon, movielens, yelp
from .dataset import InteractionData
from .groups import add_pop_groups
from .preprocess import preprocess
from .raw import DataError, RawSource
from .split import split_by_user
from .text import item_frame, sample_reviews, user_frame

READER_VERSION = 1
DATASETS = ("ml-100k", "amazon2018", "amazon2023", "yelp")


def open_source(cfg: DataConfig) -> RawSource:
    """The ``RawSource`` for ``cfg.dataset``; errors name the setting or the missing file."""
    raw_dir = resolve_path(cfg.raw_dir)
    # one extra character lets ``truncate`` see that a snippet was cut
    chars = cfg.max_review_chars + 1 if max(cfg.max_reviews_per_item,
                                            cfg.max_reviews_per_user) > 0 else 0
    if cfg.dataset == "ml-100k":
        return movielens.source(raw_dir)
    if cfg.dataset == "amazon2018":
        return amazon.source_2018(raw_dir, cfg.source, chars)
    if cfg.dataset == "amazon2023":
        return amazon.source_2023(raw_dir, cfg.source, chars)
    if cfg.dataset == "yelp":
        return yelp.source(raw_dir, chars)
    raise DataError(f"data.dataset={cfg.dataset!r} is unknown; choose one of {', '.join(DATASETS)}")


def file_signature(files: list[Path]) -> list[list]:
    """Name and size of each raw file: a replaced file changes the cache key."""
    return [[p.name, p.stat().st_size] for p in files]


def build_dataset(cfg: DataConfig, source: RawSource) -> InteractionData:
    """Run the whole data pipeline on one source (no caching)."""
    began = time.perf_counter()
    pre = preprocess(source.chunks(), cfg)
    frame = pre.frame
    n_users, n_items = len(pre.user_ids), len(pre.item_ids)
    parts = split_by_user(frame["uid"].to_numpy(), tuple(cfg.split), cfg.split_seed)
    pairs = frame[["uid", "iid"]].to_numpy(dtype=np.int64)
    train = frame.iloc[parts.train]
    item_reviews = sample_reviews(train["iid"].to_numpy(), train["review"].to_numpy(), n_items,
                                  cfg.max_reviews_per_item, cfg.max_review_chars, cfg.split_seed)
    user_reviews = sample_reviews(train["uid"].to_numpy(), train["review"].to_numpy(), n_users,
                                  cfg.max_reviews_per_user, cfg.max_review_chars,
                                  cfg.split_seed + 1)
    items = item_frame(source.items(set(pre.item_ids)), pre.item_ids, item_reviews,
                       source.genre_label)
    users = user_frame(source.users(set(pre.user_ids)), pre.user_ids, user_reviews)
    data = InteractionData(
        name=source.name, n_users=n_users, n_items=n_items,
        train=pairs[parts.train], valid=pairs[parts.valid], test=pairs[parts.test],
        train_ratings=train["rating"].to_numpy(dtype=np.float64), items=items, users=users,
    )
    add_pop_groups(data, cfg.popular_share, cfg.unpopular_share)
    data.stats = {
        **pre.stats,
        "split": {"train": len(parts.train), "valid": len(parts.valid), "test": len(parts.test),
                  "ratios": list(cfg.split), "seed": cfg.split_seed},
        "items_without_title": int((items["title"] == "").sum()),
        "files": [str(p) for p in source.files],
        "reader_version": READER_VERSION,
        "build_seconds": round(time.perf_counter() - began, 3),
    }
    return data


def load_dataset(cfg: StudyConfig, store: ArtifactStore | None = None) -> InteractionData:
    """Load ``cfg.data`` as an ``InteractionData``, cached in ``store`` when given."""
    source = open_source(cfg.data)
    if store is None:
        return build_dataset(cfg.data, source)
    inputs = {"data": dataclasses.asdict(cfg.data), "reader_version": READER_VERSION,
              "files": file_signature(source.files)}
    return store.cached("dataset", inputs, lambda: build_dataset(cfg.data, source))
