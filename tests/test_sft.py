"""Hybrid prompts with soft tokens (Eq. 11 v2), contrastive SFT (Eq. 12 v2), e_llm cache."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from hnlmrec_lib.config import SFTConfig
from hnlmrec_lib.llm.loading import load_causal_lm
from hnlmrec_lib.negatives.hybrid_prompt import (
    DEFAULT_INSTRUCTION, build_hybrid_batch, encode_prompt, inject_soft_tokens, label_batch,
    placeholder_id, shared_prefix_len,
)
from hnlmrec_lib.negatives.sft import (
    ContrastiveSFT, SFTCorpus, encode_labels, encode_pairs, load_adapter, make_batch,
    retrieval_check, save_adapter, sft_info_nce, sft_retrieval, train_sft,
)

USERS = ["likes action movies and thrillers", "a student who rated comedies",
         "enjoys documentaries", "likes dramas, (1995) movies and helpful reviews",
         "age 24, male", "likes Toy Story"]
ITEMS = ["Toy Story (1995)", "Heat (1995)", "Fargo", "Alien", "Babe", "Clueless",
         "The documentary", "An action thriller"]
CFG = SFTConfig(lora_r=4, lora_alpha=8, lora_dropout=0.0, psi_hidden=16, batch_size=4,
                max_prompt_tokens=96, max_label_tokens=24, lr=5e-3, checkpoint_every=2,
                max_train_pairs=None, encode_batch_size=3, encode_chunk_size=3)


@pytest.fixture(autouse=True)
def one_thread():
    """The tiny model's ops are too small to share; a second OpenMP thread only waits."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny(tmp: Path, family: str = "gemma3-270m"):
    """A fresh tiny random model (same seeded weights every call) and its tokenizer."""
    return load_causal_lm(family, tmp, tiny_random=True)


def wrapped(tmp: Path, family: str = "gemma3-270m", seed: int = 0):
    model, tok = tiny(tmp, family)
    torch.manual_seed(seed)
    return ContrastiveSFT.wrap(model, 8, CFG), tok


@pytest.fixture
def corpus() -> SFTCorpus:
    rng = np.random.default_rng(0)
    triples = np.array([[u % 6, (u * 3) % 8, (u * 5 + 1) % 8] for u in range(8)])
    return SFTCorpus(triples=triples, user_emb=rng.normal(size=(6, 8)).astype(np.float32),
                     item_emb=rng.normal(size=(8, 8)).astype(np.float32), user_profiles=USERS,
                     item_profiles=ITEMS, label_texts=[f"{t}\nA movie." for t in ITEMS])


def test_prompt_ids_are_built_in_segments(tmp_path):
    _, tok = tiny(tmp_path)
    batch = build_hybrid_batch(tok, DEFAULT_INSTRUCTION, ["short", USERS[3] * 5],
                               ["x", ITEMS[0]], max_tokens=80)
    ids, mask, soft = batch
    assert ids.shape[1] <= 80 and (ids[:, -1] == tok.eos_token_id).all()  # left padded
    assert (mask[0, : ids.shape[1] - int(mask[0].sum())] == 0).all()
    rows = torch.arange(2)[:, None]
    assert (ids[rows, soft] == placeholder_id(tok)).all() and (mask[rows, soft] == 1).all()
    n_prefix = shared_prefix_len(tok, DEFAULT_INSTRUCTION, 80)
    one = encode_prompt(tok, DEFAULT_INSTRUCTION, "short", "x", 80)
    assert one.soft[0] == n_prefix and one.ids[0] == tok.bos_token_id
    right = build_hybrid_batch(tok, DEFAULT_INSTRUCTION, ["short"], ["x"], 80,
                               padding_side="right", skip_prefix=n_prefix)
    assert right.input_ids[0].tolist() == one.ids[n_prefix:] and right.soft_positions[0, 0] == 0
    profile_first = "{user_profile} <user_cf> {item_profile} <item_cf>"
    assert shared_prefix_len(tok, DEFAULT_INSTRUCTION, 80, profile_first) == 1  # just [BOS]


@pytest.mark.parametrize("family", ["gemma3-270m", "smollm2-135m-instruct"])
def test_soft_tokens_land_at_markers_and_carry_gradient(tmp_path, family):
    sft, tok = wrapped(tmp_path, family)
    ids, mask, soft = build_hybrid_batch(tok, DEFAULT_INSTRUCTION, USERS[:3], ITEMS[:3], 96)
    cf = torch.randn(3, 2, 8)
    vectors = sft.psi(cf)
    embed = sft.model.get_input_embeddings()
    embeds = inject_soft_tokens(embed, ids, soft, vectors)
    rows = torch.arange(3)[:, None]
    assert torch.equal(embeds[rows, soft], vectors)
    others = torch.ones_like(ids, dtype=torch.bool)
    others[rows, soft] = False
    assert torch.equal(embeds[others], embed(ids)[others])
    sft.query_embed(ids, mask, soft, cf).pow(2).sum().backward()
    grads = [p.grad for p in sft.psi.parameters() if p.requires_grad]
    assert all(g is not None and g.abs().sum() > 0 for g in grads)


def test_eos_pooling_under_left_and_right_padding(tmp_path):
    sft, tok = wrapped(tmp_path)
    cf = torch.randn(3, 2, 8)
    profiles = (["a", USERS[3], USERS[1] * 3], ["Heat", ITEMS[7], "b"])
    with torch.no_grad():
        left = sft.query_embed(*build_hybrid_batch(tok, DEFAULT_INSTRUCTION, *profiles, 96), cf)
        right = sft.query_embed(*build_hybrid_batch(tok, DEFAULT_INSTRUCTION, *profiles, 96,
                                                    padding_side="right"), cf)
        alone = torch.cat([sft.query_embed(*build_hybrid_batch(
            tok, DEFAULT_INSTRUCTION, [profiles[0][i]], [profiles[1][i]], 96), cf[i:i + 1])
            for i in range(3)])
        lab_l = sft.label_embed(*label_batch(tok, ITEMS[:3], 24))
        lab_r = sft.label_embed(*label_batch(tok, ITEMS[:3], 24, padding_side="right"))
    assert torch.allclose(left, alone, atol=1e-5) and torch.allclose(right, alone, atol=1e-5)
    assert torch.allclose(lab_l, lab_r, atol=1e-5)
    assert not torch.allclose(alone[0], alone[1])


def test_sft_info_nce_hand_computed():
    q = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    n = torch.tensor([[3.0, 0.0], [1.0, 1.0]])  # cosines [[1, 1/sqrt2], [0, 1/sqrt2]]
    tau, r = 0.5, 1 / math.sqrt(2)
    row0 = -math.log(math.exp(1 / tau) / (math.exp(1 / tau) + math.exp(r / tau)))
    row1 = -math.log(math.exp(r / tau) / (math.exp(0.0) + math.exp(r / tau)))
    assert sft_info_nce(q, n, tau).item() == pytest.approx((row0 + row1) / 2, rel=1e-6)
    same_label = sft_info_nce(q, n, tau, label_items=torch.tensor([5, 5]))
    assert same_label.item() == pytest.approx(0.0, abs=1e-7)  # no negatives left


def test_sft_steps_lower_the_loss(tmp_path, corpus):
    sft, tok = wrapped(tmp_path)
    batch = make_batch(tok, corpus, np.arange(4), CFG)
    opt = torch.optim.AdamW([p for p in sft.parameters() if p.requires_grad], lr=5e-3)
    sft.train()
    losses = []
    for _ in range(10):
        opt.zero_grad()
        loss = sft.step(batch)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses


def test_train_sft_resumes_to_the_same_result(tmp_path, corpus):
    cfg = SFTConfig(**{**CFG.__dict__, "epochs": 2})  # 2 batches x 2 epochs = 4 steps
    full, tok = wrapped(tmp_path)
    h_full = train_sft(full, tok, corpus, cfg, tmp_path / "a")
    part, _ = wrapped(tmp_path)
    assert len(train_sft(part, tok, corpus, cfg, tmp_path / "b", max_steps=2)["loss"]) == 2
    again, _ = wrapped(tmp_path, seed=1)  # a new process: other init, restored from disk
    h_resumed = train_sft(again, tok, corpus, cfg, tmp_path / "b")
    assert h_resumed["resumed_from"] == 2 and h_full["total_steps"] == 4
    assert np.allclose(h_resumed["loss"], h_full["loss"], atol=1e-5)
    assert again.weights_fingerprint() == full.weights_fingerprint() or all(
        torch.allclose(a, b, atol=1e-6) for a, b in zip(again.parameters(), full.parameters()))
    done = train_sft(again, tok, corpus, cfg, tmp_path / "b")
    assert done["resumed_from"] == 4 and len(done["loss"]) == 4


def test_adapter_round_trip(tmp_path, corpus):
    sft, tok = wrapped(tmp_path)
    with torch.no_grad():
        for name, p in sft.model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    batch = make_batch(tok, corpus, np.arange(4), CFG)
    with torch.no_grad():
        before = sft.query_embed(*batch[:4])
    save_adapter(sft, tmp_path / "adapter")
    save_adapter(sft, tmp_path / "adapter")  # replacing an existing folder works
    base, _ = tiny(tmp_path)
    loaded = load_adapter(base, tmp_path / "adapter")
    with torch.no_grad():
        after = loaded.query_embed(*batch[:4])
    assert torch.equal(before, after)
    assert loaded.weights_fingerprint() == sft.weights_fingerprint()


def test_encode_pairs_cache_resumes_missing_chunks(tmp_path, corpus):
    sft, tok = wrapped(tmp_path)
    pairs, cache = corpus.triples[:, :2], tmp_path / "e_llm"
    args = (tok, pairs, corpus.user_emb, corpus.item_emb, (USERS, ITEMS), CFG)
    stats: dict = {}
    first = encode_pairs(sft, None, *args, cache, stats=stats)
    assert first.shape == (8, 64) and stats["computed"] == [0, 1, 2]
    (cache / "chunk_000002.npy").unlink()  # as if killed while chunk 2 was computed
    again = encode_pairs(sft, None, *args, cache, stats=stats)
    assert stats["computed"] == [2] and stats["reused"] == [0, 1]
    assert np.array_equal(first, again)
    plain = encode_pairs(sft, None, *args, None, prefix_cache=False, sort_by_length=False)
    assert np.allclose(first, plain, atol=1e-5)
    with torch.no_grad():
        next(sft.psi.parameters()).add_(1.0)
    with pytest.raises(ValueError, match="other inputs"):
        encode_pairs(sft, None, *args, cache)


def test_retrieval_check_ranks_labels(tmp_path, corpus):
    items = np.eye(4, dtype=np.float32)
    q = np.array([[1, 0.1, 0, 0], [0, 0, 0.2, 1], [0.9, 1, 0, 0]], dtype=np.float32)
    out = retrieval_check(q, np.array([0, 3, 0]), items)
    assert out["hit@1"] == pytest.approx(2 / 3) and out["mrr"] == pytest.approx((1 + 1 + 0.5) / 3)
    flat = retrieval_check(np.ones((2, 4)), np.array([0, 1]), np.ones((4, 4)))
    assert flat["mean_rank"] == 4.0  # ties count against the label
    sft, tok = wrapped(tmp_path)
    labels = encode_labels(sft, tok, corpus.label_texts, CFG)
    assert labels.shape == (8, 64) and np.isfinite(labels).all()


def test_training_moves_queries_to_their_labels(tmp_path, corpus):
    sft, tok = wrapped(tmp_path)
    before = sft_retrieval(sft, tok, corpus, CFG)
    cfg = SFTConfig(**{**CFG.__dict__, "epochs": 8, "checkpoint_every": 100})
    history = train_sft(sft, tok, corpus, cfg, tmp_path / "run")
    after = sft_retrieval(sft, tok, corpus, cfg)
    assert len(history["loss"]) == 16 and np.mean(history["loss"][-4:]) < history["loss"][0]
    assert after["mrr"] > before["mrr"] + 0.2, (before, after)


@pytest.mark.gpu
def test_qlora_4bit_step_on_cuda(tmp_path, corpus):
    if not torch.cuda.is_available():
        pytest.skip("4-bit QLoRA needs CUDA (bitsandbytes); none is visible")
    model, tok = tiny(tmp_path)
    model.save_pretrained(tmp_path / "tiny")
    tok.save_pretrained(tmp_path / "tiny")
    q4, tok = load_causal_lm(str(tmp_path / "tiny"), tmp_path, load_in_4bit=True)
    sft = ContrastiveSFT.wrap(q4, 8, CFG)
    loss = sft.step(make_batch(tok, corpus, np.arange(4), CFG))
    loss.backward()
    assert torch.isfinite(loss)
