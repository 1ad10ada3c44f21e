"""The one object that carries a preprocessed, split dataset through the study."""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd
import scipy.sparse as sp


@dataclass
class InteractionData:
    """Implicit-feedback data after filtering, k-core, remapping and the per-user split.

    ``train``/``valid``/``test`` are int64 arrays of shape (n, 2): (user index, item index).
    ``train_ratings`` holds the original rating of each train row (for user profiles).
    ``items`` is indexed by item index with columns ``raw_id, title, year, genres``
    (genres/categories as a list of strings), ``attributes`` (one text line) and
    ``reviews`` (list of train-only review snippets, possibly empty).
    ``users`` is indexed by user index with ``raw_id``, ``demographics`` (one text line,
    maybe empty) and ``reviews`` (train-only snippets).
    """

    name: str
    n_users: int
    n_items: int
    train: np.ndarray
    valid: np.ndarray
    test: np.ndarray
    train_ratings: np.ndarray
    items: pd.DataFrame
    users: pd.DataFrame
    stats: dict = field(default_factory=dict)   # filtering log: rows after each step

    def matrix(self, split: str = "train") -> sp.csr_matrix:
        """Binary user x item CSR matrix of one split."""
        pairs = getattr(self, split)
        data = np.ones(len(pairs), dtype=np.float32)
        return sp.csr_matrix((data, (pairs[:, 0], pairs[:, 1])), shape=(self.n_users, self.n_items))

    @cached_property
    def train_csr(self) -> sp.csr_matrix:
        return self.matrix("train")

    def positives(self, split: str = "train") -> list[np.ndarray]:
        """Per-user sorted arrays of item indices in ``split``."""
        csr = self.matrix(split)
        return [csr.indices[csr.indptr[u]:csr.indptr[u + 1]] for u in range(self.n_users)]

    @cached_property
    def item_train_counts(self) -> np.ndarray:
        return np.bincount(self.train[:, 1], minlength=self.n_items)

    @property
    def n_interactions(self) -> int:
        return len(self.train) + len(self.valid) + len(self.test)

    @property
    def density(self) -> float:
        return self.n_interactions / float(self.n_users * self.n_items)

    def summary(self) -> dict:
        return {
            "dataset": self.name,
            "users": self.n_users,
            "items": self.n_items,
            "interactions": self.n_interactions,
            "train": len(self.train),
            "valid": len(self.valid),
            "test": len(self.test),
            "density": self.density,
        }
