"""Item popularity groups (v2 App. E) and train-sparsity subsets.

Popularity uses TRAIN clicks only. Items are ranked by train count, most clicked first,
ties broken by item index (lower index ranks higher). The first
``floor(popular_share * n)`` items (at least one) are "Popular", the last
``floor(unpopular_share * n)`` are "Unpopular" and the rest "Normal".

A sparsity subset keeps ``max(1, floor(ratio * n_u))`` of each user's ``n_u`` train rows,
chosen by a seeded shuffle; valid and test are untouched. With one seed the shuffle is the
same for every ratio, so subsets are nested (20% inside 40% inside ...).
"""
from __future__ import annotations

import dataclasses

import numpy as np

from .dataset import InteractionData
from .raw import DataError
from .split import shuffle_within_users

POPULAR, NORMAL, UNPOPULAR = "Popular", "Normal", "Unpopular"
GROUP_ORDER = (UNPOPULAR, NORMAL, POPULAR)
_EPS = 1e-9


def popularity_groups(counts: np.ndarray, popular_share: float = 0.05,
                      unpopular_share: float = 0.80) -> np.ndarray:
    """Group name of each item from its train click count."""
    if not (0 <= popular_share <= 1 and 0 <= unpopular_share <= 1
            and popular_share + unpopular_share <= 1):
        raise DataError(f"data.popular_share={popular_share} and data.unpopular_share="
                        f"{unpopular_share} must lie in [0, 1] and sum to at most 1")
    counts = np.asarray(counts)
    n = len(counts)
    n_pop = int(np.floor(popular_share * n + _EPS))
    if popular_share > 0 and n > 0:
        n_pop = max(n_pop, 1)
    n_unpop = min(int(np.floor(unpopular_share * n + _EPS)), n - n_pop)
    rank = np.lexsort((np.arange(n), -counts))    # most clicked first
    groups = np.full(n, NORMAL, dtype=object)
    groups[rank[:n_pop]] = POPULAR
    groups[rank[n - n_unpop:]] = UNPOPULAR
    return groups


def add_pop_groups(data: InteractionData, popular_share: float,
                   unpopular_share: float) -> InteractionData:
    """Set ``data.items["pop_group"]`` from train clicks (in place) and return ``data``."""
    counts = np.bincount(data.train[:, 1], minlength=data.n_items)
    data.items["pop_group"] = popularity_groups(counts, popular_share, unpopular_share)
    return data


def keep_per_user(users: np.ndarray, ratio: float, seed: int) -> np.ndarray:
    """Sorted row indices keeping ``max(1, floor(ratio * n_u))`` random rows per user."""
    if not 0 < ratio <= 1:
        raise DataError(f"sparsity ratio {ratio} must lie in (0, 1]")
    order, rank, size = shuffle_within_users(users, seed)
    keep_n = np.maximum(1, np.floor(ratio * size + _EPS).astype(np.int64))
    return np.sort(order[rank < keep_n])


def sparsity_subset(data: InteractionData, ratio: float, seed: int = 0) -> InteractionData:
    """A copy of ``data`` whose train keeps ``ratio`` of each user's rows (at least one)."""
    rows = keep_per_user(data.train[:, 0], ratio, seed)
    stats = {**data.stats, "sparsity": {"ratio": ratio, "seed": seed,
                                        "train_before": int(len(data.train)),
                                        "train_after": int(len(rows))}}
    return dataclasses.replace(data, train=data.train[rows], train_ratings=data.train_ratings[rows],
                               items=data.items.copy(), users=data.users.copy(), stats=stats)
