"""Per-user random train/valid/test split (RecBole "RS 8:1:1, RO, group_by user").

Semantics follow RecBole's ``Dataset.split_by_ratio`` with ``group_by=user`` after a random
shuffle: rows are shuffled with a seeded generator, grouped by user (keeping the shuffled
order), and a user with ``n`` rows gets ``floor(r_valid*n)`` valid and ``floor(r_test*n)``
test rows, train taking the rest. Then, for small users, RecBole's rounding fix applies,
test first: while train holds more than one row, a part whose exact share ``r*n`` lies
strictly between 0 and 1 receives one row from train. Hence with 8:1:1

    n = 1 -> 1/0/0,  n = 2 -> 1/0/1,  n = 3..19 -> n-2/1/1,  n = 20..29 -> n-4/2/2, ...

so every user keeps at least one train row, and valid (then test) is empty only for users
with fewer than 3 (then 2) rows. After a 10-core every user has >= 1 valid and test row.
The random draws differ from RecBole's torch generator; the sizes are identical.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .raw import DataError


@dataclass
class SplitIndex:
    """Row indices (into the interaction frame) of each part, each sorted ascending."""

    train: np.ndarray
    valid: np.ndarray
    test: np.ndarray


def part_sizes(n: np.ndarray, ratios: tuple[float, float, float]) -> np.ndarray:
    """(len(n), 3) array of train/valid/test sizes for groups of ``n`` rows (RecBole rule)."""
    total = float(sum(ratios))
    r = np.array([x / total for x in ratios], dtype=np.float64)
    n = np.asarray(n, dtype=np.int64)
    sizes = (r[None, :] * n[:, None]).astype(np.int64)
    sizes[:, 0] = n - sizes[:, 1:].sum(axis=1)
    for part in (2, 1):  # RecBole visits the last part first
        exact = r[part] * n
        bump = (sizes[:, 0] > 1) & (exact > 0) & (exact < 1)
        sizes[bump, part] += 1
        sizes[bump, 0] -= 1
    return sizes


def shuffle_within_users(users: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows grouped by user in a seeded random order within each user.

    Returns ``order`` (row indices), the ``rank`` of each ordered row within its user and
    the row count ``size`` of that user, all aligned with ``order``.
    """
    users = np.asarray(users, dtype=np.int64)
    order = np.random.default_rng(seed).permutation(len(users))
    order = order[np.argsort(users[order], kind="stable")]
    grouped = users[order]
    starts = np.flatnonzero(np.r_[True, grouped[1:] != grouped[:-1]])[: len(grouped)]
    counts = np.diff(np.r_[starts, len(grouped)])
    rank = np.arange(len(grouped)) - np.repeat(starts, counts)
    return order, rank, np.repeat(counts, counts)


def split_by_user(users: np.ndarray, ratios: tuple[float, float, float],
                  seed: int) -> SplitIndex:
    """Split row indices per user; ``users`` holds the user index of each row."""
    if len(ratios) != 3 or min(ratios) < 0 or sum(ratios) <= 0 or ratios[0] <= 0:
        raise DataError(f"data.split={tuple(ratios)} must be three non-negative shares, train > 0")
    order, rank, size = shuffle_within_users(users, seed)
    sizes = part_sizes(size, ratios)
    train_end = sizes[:, 0]
    valid_end = train_end + sizes[:, 1]
    part = np.where(rank < train_end, 0, np.where(rank < valid_end, 1, 2))
    return SplitIndex(*(np.sort(order[part == p]) for p in range(3)))
