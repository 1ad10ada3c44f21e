"""HNLMRec end to end: teacher labels -> contrastive LoRA SFT (Eq. 11-12 (v2)) -> pair
embeddings e_llm -> a negative bank for the aligned LLM sampler (Eq. 6-10 (v2)).

After SFT, Eq. 4-5 are replaced by the fine-tuned LLM's last-layer hidden state at [EOS]; the
text embedder is no longer used (Sec. 3.2 (v2)). Every step is cached: the adapter and psi as
safetensors checkpoints that resume, pair embeddings in chunks that resume, and the bank.
"""
from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass

import numpy as np

from ..artifacts import ArtifactStore, stable_hash
from ..config import StudyConfig
from ..data.dataset import InteractionData
from ..profiles import Profiles, profile_inputs
from .bank import NegativeBank
from .prompting import prompted_pairs
from .teacher import collaborative_labels

BANK_NAME = "hnlmrec"


@dataclass
class SFTPlan:
    """What SFT trains on and what it will encode."""

    triples: np.ndarray        # (n, 3) user, positive, teacher label (training)
    heldout: np.ndarray        # (m, 3) for the retrieval check, never trained on
    bank_pairs: np.ndarray     # (P, 2) pairs whose e_llm forms the bank
    key: str                   # hash of everything that determines the adapter


def plan_sft(cfg: StudyConfig, data: InteractionData, profiles: Profiles, teacher: dict) -> SFTPlan:
    """Pick SFT pairs (``sft.pairs_per_user`` per user, capped), label them, hold 10 % out."""
    pairs = prompted_pairs(data, "user_budget", cfg.sft.pairs_per_user, cfg.seed + 1)
    labels = collaborative_labels(teacher["user_emb"], teacher["item_emb"], pairs,
                                  data.train_csr, cfg.cf.n_negs, cfg.seed)
    triples = np.column_stack([pairs, labels])
    rng = np.random.default_rng(cfg.seed)
    triples = triples[rng.permutation(len(triples))]
    n_held = max(1, len(triples) // 10)
    heldout, train = triples[:n_held], triples[n_held:]
    if cfg.sft.max_train_pairs is not None:
        train = train[: cfg.sft.max_train_pairs]
    bank_pairs = prompted_pairs(data, cfg.negatives.unit, cfg.negatives.pairs_per_user, cfg.seed)
    # the teacher's embeddings, not only its name: a retrained teacher gets a fresh SFT folder
    teacher_emb = hashlib.sha256(np.ascontiguousarray(teacher["user_emb"]).tobytes()
                                 + np.ascontiguousarray(teacher["item_emb"]).tobytes()).hexdigest()
    key = stable_hash({"profiles": profile_inputs(cfg, data), "sft": dataclasses.asdict(cfg.sft),
                       "teacher": teacher["label"], "teacher_emb": teacher_emb[:16],
                       "triples": train.tolist()})
    return SFTPlan(train, heldout, bank_pairs, key)


def pair_bank(cfg: StudyConfig, data: InteractionData, pairs: np.ndarray, e_llm: np.ndarray,
              inputs_hash: str) -> NegativeBank:
    """One row per pair (``unit: pair``) or per user (``user_budget``: the user's pairs as K)."""
    if cfg.negatives.unit == "pair":
        vectors = e_llm[:, None, :].astype(np.float16)
        valid = np.ones(vectors.shape[:2], dtype=bool)
        return NegativeBank(BANK_NAME, vectors, valid, None,
                            np.column_stack([pairs, np.arange(len(pairs))]), inputs_hash,
                            {"unit": "pair", "rows": len(pairs)})
    users, first = np.unique(pairs[:, 0], return_index=True)
    width = int(np.bincount(pairs[:, 0]).max())
    vectors = np.zeros((len(users), width, e_llm.shape[1]), dtype=np.float16)
    valid = np.zeros((len(users), width), dtype=bool)
    row_of_user = np.full(data.n_users, -1, dtype=np.int64)
    row_of_user[users] = np.arange(len(users))
    slot = np.zeros(len(users), dtype=int)
    for i, u in enumerate(pairs[:, 0]):
        r = row_of_user[u]
        vectors[r, slot[r]], valid[r, slot[r]] = e_llm[i], True
        slot[r] += 1
    return NegativeBank(BANK_NAME, vectors, valid, row_of_user, None, inputs_hash,
                        {"unit": "user_budget", "rows": len(users), "width": width})


def sft_dir(store: ArtifactStore, plan: SFTPlan):
    return store.root / "sft" / plan.key


def retrieval_report(sft, tok, corpus, heldout: np.ndarray, cfg: StudyConfig) -> tuple[dict, np.ndarray]:
    """Rank of each held-out query's label among all catalogue items, and the label embeddings."""
    from .sft import encode_labels, encode_pairs, retrieval_check

    label_emb = encode_labels(sft, tok, corpus.label_texts, cfg.sft)
    q = encode_pairs(sft, None, tok, heldout[:, :2], corpus.user_emb, corpus.item_emb,
                     (corpus.user_profiles, corpus.item_profiles), cfg.sft, None,
                     instruction=corpus.instruction, template=corpus.template)
    return retrieval_check(q, heldout[:, 2], label_emb), label_emb
