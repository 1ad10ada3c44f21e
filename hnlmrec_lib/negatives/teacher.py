"""The collaborative teacher of HNLMRec and its hard-negative labels (Sec. 3.2 (v2)).

The paper supervises the LLM with "hard negatives produced by the pre-trained CF model"
(MixGCF by default). MixGCF's synthesised negative is a vector, not an item, so it cannot be
written as label text. The label item used here is the teacher's **DNS pick**: among
``n_candidates`` items drawn uniformly from those the user has not trained on (seeded per
pair), the one the trained teacher scores highest for the user. It is the catalogue item
closest to what a hard-negative sampler would choose under the teacher, and it is the same
rule the aligner's L_align label uses at training time (Eq. 9 (v2)), so the two stages agree.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def collaborative_labels(user_emb: np.ndarray, item_emb: np.ndarray, pairs: np.ndarray,
                         train: sp.csr_matrix, n_candidates: int, seed: int) -> np.ndarray:
    """v_cf^- for each (user, item) pair: the teacher's top-scored non-train candidate."""
    rng = np.random.default_rng(seed)
    users = pairs[:, 0]
    n_items = item_emb.shape[0]
    cand = rng.integers(0, n_items, size=(len(pairs), n_candidates))
    for _ in range(100):  # redraw candidates that are train positives (vectorised)
        bad = np.asarray(train[np.repeat(users, n_candidates), cand.ravel()]).reshape(cand.shape) > 0
        if not bad.any():
            break
        cand[bad] = rng.integers(0, n_items, size=int(bad.sum()))
    scores = np.einsum("bd,bkd->bk", user_emb[users], item_emb[cand])
    return cand[np.arange(len(pairs)), scores.argmax(axis=1)]
