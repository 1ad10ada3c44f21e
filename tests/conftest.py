"""Shared test set-up: deliberate thread counts and small fixtures."""
from __future__ import annotations

import os

# An idle OpenMP thread busy-waits and steals its partner core on a shared 2-core machine.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np
import pandas as pd
import pytest
import torch

torch.set_num_threads(2)


@pytest.fixture
def toy_data():
    """A tiny hand-made InteractionData: 4 users, 6 items."""
    from hnlmrec_lib.data.dataset import InteractionData

    train = np.array([[0, 0], [0, 1], [1, 1], [1, 2], [2, 3], [2, 4], [3, 0], [3, 5]], dtype=np.int64)
    valid = np.array([[0, 2], [1, 3], [2, 5], [3, 1]], dtype=np.int64)
    test = np.array([[0, 3], [1, 4], [2, 0], [3, 2]], dtype=np.int64)
    items = pd.DataFrame({
        "raw_id": [f"i{i}" for i in range(6)],
        "title": ["Toy Story", "Heat", "Fargo", "Alien", "Babe", "Clueless"],
        "year": [1995, 1995, 1996, 1979, 1995, 1995],
        "genres": [["Animation"], ["Action"], ["Crime"], ["Horror"], ["Comedy"], ["Comedy"]],
        "attributes": ["", "", "", "", "", ""],
        "reviews": [[] for _ in range(6)],
    })
    users = pd.DataFrame({
        "raw_id": [f"u{u}" for u in range(4)],
        "demographics": ["age 24, M, student"] * 4,
        "reviews": [[] for _ in range(4)],
    })
    return InteractionData(
        name="toy", n_users=4, n_items=6, train=train, valid=valid, test=test,
        train_ratings=np.full(len(train), 5.0), items=items, users=users,
    )
