"""Negative banks: the LLM-side vectors the LLM sampler draws from, saved by name.

A bank holds, for each row, K candidate vectors (text embeddings of generated negatives for
naive prompting, Eq. 5 (v2); SFT hidden states for HNLMRec, K = 1) and the maps from users
or (user, item) pairs to rows. It is saved as ``negative_banks/<name>.pkl`` together with
the hash of the inputs that made it; that hash enters the cache key of every run trained on
it, so a regenerated bank retrains its runs.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..artifacts import ArtifactStore

BANK_KIND = "negative_banks"


@dataclass
class NegativeBank:
    name: str
    vectors: np.ndarray                 # (R, K, D) float16/float32
    valid: np.ndarray                   # (R, K) bool: a real candidate
    row_of_user: np.ndarray | None      # (n_users,) row or -1
    pair_rows: np.ndarray | None        # (P, 3) user, item, row
    inputs_hash: str
    info: dict = field(default_factory=dict)

    @property
    def coverage(self) -> float:
        """Share of rows with at least one valid candidate."""
        return float(self.valid.any(axis=1).mean()) if len(self.valid) else 0.0


def bank_path(store: ArtifactStore, name: str) -> Path:
    return store.root / BANK_KIND / f"{name}.pkl"


def save_bank(store: ArtifactStore, bank: NegativeBank) -> Path:
    path = bank_path(store, bank.name)
    store.save(path, bank)
    return path


def load_bank(store: ArtifactStore, name: str) -> NegativeBank:
    path = bank_path(store, name)
    if not path.exists():
        raise FileNotFoundError(f"negative bank {name!r} not found at {path}; run the notebook "
                                "that builds it (02 for naive prompting, 03 for HNLMRec)")
    return store.load(path)


def list_banks(store: ArtifactStore) -> list[str]:
    return sorted(p.stem for p in (store.root / BANK_KIND).glob("*.pkl"))
