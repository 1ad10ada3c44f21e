"""Semantic Alignment Transformer, Manifold Projector and the LLM negative sampler
(Eq. 6-10 (v2), Eq. 28 (v2), Eq. 7 (v1)) on hand-made tensors."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from hnlmrec_lib.cf.backbones import build_backbone
from hnlmrec_lib.cf.losses import bpr_loss
from hnlmrec_lib.config import CFConfig, NegativesConfig
from hnlmrec_lib.negatives import LLMNegativeSampler, SemanticAligner, align_loss, select_top_k
from hnlmrec_lib.negatives.aligner import usable_heads

IN_DIM, CF_DIM, K = 8, 4, 3


def _cfg(**kw) -> NegativesConfig:
    base = dict(top_k=1, lambda1=0.5, tau_c=0.2, alpha_mix=1.0, attn_heads=2, projector_hidden=16)
    return NegativesConfig(**{**base, **kw})


def _setup(toy_data, *, bpr_through_projector=False, row_of_user=None, seed=0, **kw):
    torch.manual_seed(seed)
    model = build_backbone("mf", toy_data, CFConfig(dim=CF_DIM))
    bank = torch.randn(toy_data.n_users, K, IN_DIM)
    rows = torch.arange(toy_data.n_users) if row_of_user is None else row_of_user
    sampler = LLMNegativeSampler(toy_data, bank, _cfg(**kw), model.out_dim, bpr_through_projector,
                                 row_of_user=rows, n_label_cands=4)
    return model, sampler


def _batch(toy_data):
    pairs = torch.from_numpy(toy_data.train)
    return pairs[:, 0], pairs[:, 1]


def _losses(model, sampler, toy_data, seed=1):
    users, pos = _batch(toy_data)
    user_emb, item_emb = model.propagate()
    res = sampler.sample(model, users, pos, user_emb, item_emb, torch.Generator().manual_seed(seed))
    u = user_emb[users]
    bpr = bpr_loss((u * item_emb[pos]).sum(-1), (u.unsqueeze(1) * res.neg_emb).sum(-1))
    return res, bpr, user_emb, item_emb


# --- aligner (Eq. 6-7 (v2)) ---------------------------------------------------------------

def test_aligner_shapes_and_heads():
    aligner = SemanticAligner(IN_DIM, CF_DIM, hidden=16, heads=2)
    assert aligner(torch.randn(5, K, IN_DIM)).shape == (5, K, CF_DIM)
    assert aligner(torch.randn(5, 1, IN_DIM)).shape == (5, 1, CF_DIM)
    assert usable_heads(30, 4) == 3 and usable_heads(384, 4) == 4 and usable_heads(7, 4) == 1
    with pytest.raises(ValueError):
        aligner(torch.randn(5, IN_DIM))


def test_candidates_contextualise_each_other_but_k1_is_per_vector():
    torch.manual_seed(0)
    aligner = SemanticAligner(IN_DIM, CF_DIM, hidden=16, heads=2).eval()
    x = torch.randn(2, K, IN_DIM)
    y = x.clone()
    y[:, 2] += 1.0                      # change only the third candidate of each pair
    assert not torch.allclose(aligner(x)[:, 0], aligner(y)[:, 0])
    singles = aligner(x.reshape(-1, 1, IN_DIM)).reshape(2, K, CF_DIM)
    alone = torch.cat([aligner(x[:, j:j + 1]) for j in range(K)], dim=1)
    torch.testing.assert_close(singles, alone)
    block = aligner.transformer                         # the K = 1 shortcut is exact attention
    one = x[:, :1]
    full, _ = block.attn(one, one, one, need_weights=False)
    torch.testing.assert_close(block(one), block.norm(one + full))


# --- Top-k selection (Eq. 28 (v2)) ---------------------------------------------------------

def test_select_top_k_on_hand_made_scores():
    users = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    cands = torch.tensor([[[1.0, 5.0], [3.0, 0.0], [2.0, 9.0]],    # scores 1, 3, 2
                          [[0.0, 4.0], [9.0, -1.0], [0.0, 7.0]]],  # scores 4, -1, 7
                         requires_grad=True)
    top1, slots1 = select_top_k(users, cands, 1)
    assert slots1.tolist() == [[1], [2]]
    torch.testing.assert_close(top1[:, 0], torch.tensor([[3.0, 0.0], [0.0, 7.0]]))
    _, slots2 = select_top_k(users, cands, 2)
    assert slots2.tolist() == [[1, 2], [2, 0]]
    valid = torch.tensor([[True, False, True], [False, True, False]])
    _, masked = select_top_k(users, cands, 2, valid)
    assert masked.tolist() == [[2, 0], [1, 1]]        # row 2 has one valid: repeat its top-1
    top1.sum().backward()
    assert cands.grad[0, 1].abs().sum() > 0 and cands.grad[0, 0].abs().sum() == 0
    with pytest.raises(ValueError):
        select_top_k(users, cands, 4)


# --- L_align (Eq. 9 (v2)) -----------------------------------------------------------------

def test_align_loss_matches_hand_computed_info_nce():
    e_hard = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    items = torch.tensor([[2.0, 0.0], [0.0, 3.0], [5.0, 5.0]])
    labels = torch.tensor([0, 1])
    tau = 0.5
    # cosines: row 0 vs (item0, item1) = (1, 0); row 1 = (1/sqrt2, 1/sqrt2)
    c = 1 / math.sqrt(2)
    l0 = -(1 / tau) + math.log(math.exp(1 / tau) + math.exp(0.0))
    l1 = -(c / tau) + math.log(2 * math.exp(c / tau))
    expected = (l0 + l1) / 2
    assert float(align_loss(e_hard, labels, items, tau)) == pytest.approx(expected, rel=1e-6)
    # V_B is the SET of labels: one repeated label leaves a single class, loss 0
    repeated = align_loss(e_hard, torch.tensor([2, 2]), items, tau)
    assert float(repeated) == pytest.approx(0.0, abs=1e-6)


def test_align_loss_does_not_reach_label_embeddings():
    items = torch.randn(5, 3, requires_grad=True)
    e_hard = torch.randn(4, 3, requires_grad=True)
    align_loss(e_hard, torch.tensor([0, 1, 3, 1]), items, 0.2).backward()
    assert items.grad is None and e_hard.grad.abs().sum() > 0


# --- the sampler: gradients ---------------------------------------------------------------

def test_aux_loss_reaches_every_aligner_parameter_and_not_the_backbone(toy_data):
    model, sampler = _setup(toy_data)
    res, _, _, _ = _losses(model, sampler, toy_data)
    assert res.neg_emb.shape == (len(toy_data.train), 1, CF_DIM) and res.neg_items is None
    res.aux_loss.backward()
    for name, p in sampler.aligner.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert model.user_ego.grad is None and model.item_ego.grad is None


@pytest.mark.parametrize("through", [True, False])
def test_bpr_reaches_projector_only_when_asked(toy_data, through):
    model, sampler = _setup(toy_data, bpr_through_projector=through)
    _, bpr, _, _ = _losses(model, sampler, toy_data)
    bpr.backward()
    grads = [p.grad for p in sampler.aligner.parameters()]
    if through:
        assert all(g is not None and g.abs().sum() > 0 for g in grads)
    else:
        assert all(g is None for g in grads)
    assert model.user_ego.grad is not None            # BPR still trains the backbone


def test_lambda1_zero_gives_zero_aux(toy_data):
    model, sampler = _setup(toy_data, lambda1=0.0, bpr_through_projector=True)
    res, _, _, _ = _losses(model, sampler, toy_data)
    assert float(res.aux_loss) == 0.0 and not res.aux_loss.requires_grad
    with pytest.warns(UserWarning, match="fixed random projection"):
        _setup(toy_data, lambda1=0.0, bpr_through_projector=False)


def test_aux_is_lambda1_times_align_loss_on_the_top1(toy_data):
    model, sampler = _setup(toy_data, lambda1=0.3)
    res, _, user_emb, item_emb = _losses(model, sampler, toy_data)
    users, _ = _batch(toy_data)
    with torch.no_grad():
        e_cand = sampler.aligner(sampler.bank[users])
        e_top, _ = select_top_k(user_emb[users], e_cand, 1)
        expected = 0.3 * align_loss(e_top[:, 0], sampler.last.dns_labels, item_emb, 0.2)
    assert float(res.aux_loss.detach()) == pytest.approx(float(expected), rel=1e-5)


def test_dns_labels_are_top_scored_non_train_candidates(toy_data):
    model, sampler = _setup(toy_data)
    users, pos = _batch(toy_data)
    user_emb, item_emb = model.propagate()
    sampler.sample(model, users, pos, user_emb, item_emb, torch.Generator().manual_seed(3))
    replay = torch.Generator().manual_seed(3)
    sampler.uniform_negatives(users, 1, replay)                 # the random draw comes first
    cand = sampler.uniform_negatives(users, 4, replay)
    scores = (user_emb[users].unsqueeze(1) * item_emb[cand]).sum(-1)
    expected = cand.gather(1, scores.argmax(1, keepdim=True)).squeeze(1)
    assert torch.equal(sampler.last.dns_labels, expected)
    assert not bool(sampler.is_train(users, sampler.last.dns_labels).any())


# --- alpha mix (Eq. 7 (v1)), fallback, lookup ------------------------------------------------

def test_alpha_mix(toy_data):
    model, sampler = _setup(toy_data, alpha_mix=0.3, top_k=2)
    res, _, user_emb, item_emb = _losses(model, sampler, toy_data)
    users, _ = _batch(toy_data)
    with torch.no_grad():
        e_hard, _ = select_top_k(user_emb[users], sampler.aligner(sampler.bank[users]), 2)
        expected = 0.3 * e_hard + 0.7 * item_emb[sampler.last.random_items]
    assert res.neg_emb.shape == (len(users), 2, CF_DIM)
    torch.testing.assert_close(res.neg_emb, expected)
    for bad in (0.0, 1.5, -0.1):
        with pytest.raises(ValueError):
            _setup(toy_data, alpha_mix=bad)


def test_alpha_one_is_the_pure_hard_negative(toy_data):
    model, sampler = _setup(toy_data, alpha_mix=1.0)
    res, _, user_emb, _ = _losses(model, sampler, toy_data)
    users, _ = _batch(toy_data)
    with torch.no_grad():
        e_hard, _ = select_top_k(user_emb[users], sampler.aligner(sampler.bank[users]), 1)
    torch.testing.assert_close(res.neg_emb, e_hard)


def test_users_without_candidates_fall_back_to_uniform_negatives(toy_data):
    rows = torch.tensor([0, -1, 2, -1])
    model, sampler = _setup(toy_data, row_of_user=rows)
    res, _, _, item_emb = _losses(model, sampler, toy_data)
    users, _ = _batch(toy_data)
    trace = sampler.last
    fallback = (users == 1) | (users == 3)
    assert torch.equal(trace.has_candidates, ~fallback)
    torch.testing.assert_close(res.neg_emb[fallback], item_emb[trace.random_items[fallback]])
    assert bool((trace.slots[fallback] == -1).all()) and bool((trace.slots[~fallback] >= 0).all())
    assert not bool(sampler.is_train(users.unsqueeze(1), trace.random_items).any())
    res.aux_loss.backward()                             # L_align over the rows with candidates
    assert sampler.aligner.projector.net[2].weight.grad.abs().sum() > 0


def test_all_fallback_batch_and_invalid_rows(toy_data):
    bank = torch.randn(2, K, IN_DIM)
    valid = torch.tensor([[True, False, False], [False, False, False]])
    sampler = LLMNegativeSampler(toy_data, bank, _cfg(top_k=2), CF_DIM, False,
                                 row_of_user=torch.tensor([1, 1, 0, -1]), bank_valid=valid,
                                 n_label_cands=4)
    assert sampler.row_of_user.tolist() == [-1, -1, 0, -1]     # row 1 has no valid candidate
    model = build_backbone("mf", toy_data, CFConfig(dim=CF_DIM))
    user_emb, item_emb = model.propagate()
    users, pos = torch.tensor([0, 3]), torch.tensor([0, 0])
    res = sampler.sample(model, users, pos, user_emb, item_emb, torch.Generator().manual_seed(0))
    assert float(res.aux_loss) == 0.0 and res.neg_emb.shape == (2, 2, CF_DIM)
    users, pos = torch.tensor([2]), torch.tensor([3])
    sampler.sample(model, users, pos, user_emb, item_emb, torch.Generator().manual_seed(0))
    assert sampler.last.slots.tolist() == [[0, 0]]              # one valid candidate, repeated


def test_pair_rows_take_precedence_over_user_rows(toy_data):
    bank = torch.randn(3, 1, IN_DIM)
    sampler = LLMNegativeSampler(toy_data, bank, _cfg(), CF_DIM, False,
                                 row_of_user=torch.tensor([0, -1, -1, -1]),
                                 pair_rows=torch.tensor([[0, 1, 2], [2, 4, 1]]))
    rows = sampler.rows_for(torch.tensor([0, 0, 2, 2, 1]), torch.tensor([0, 1, 4, 3, 1]))
    assert rows.tolist() == [0, 2, 1, -1, -1]
    with pytest.raises(ValueError):
        LLMNegativeSampler(toy_data, bank, _cfg(), CF_DIM, False,
                           pair_rows=torch.tensor([[0, 1, 2], [0, 1, 0]]))
    with pytest.raises(ValueError):
        LLMNegativeSampler(toy_data, bank, _cfg(), CF_DIM, False, row_of_user=torch.tensor([3]))


def test_nearest_catalogue_item_tracking(toy_data):
    model, sampler = _setup(toy_data)
    sampler.track_nearest = True
    res, _, _, item_emb = _losses(model, sampler, toy_data)
    cos = torch.nn.functional.cosine_similarity(res.neg_emb.detach(), item_emb.detach()[None],
                                                dim=-1)
    assert torch.equal(sampler.last.nearest_items[:, 0], cos.argmax(1))
    torch.testing.assert_close(sampler.last.nearest_cos[:, 0], cos.max(1).values)


# --- the optimizer holds every trainable module (REFERENCE §2: the authors' bug) -------------

def _missing_from_optimizer(optimizer: torch.optim.Optimizer, **modules) -> list[str]:
    held = {id(p) for group in optimizer.param_groups for p in group["params"]}
    return [f"{owner}.{name}" for owner, module in modules.items()
            for name, p in module.named_parameters() if p.requires_grad and id(p) not in held]


def test_missing_check_catches_an_optimizer_without_the_aligner(toy_data):
    model, sampler = _setup(toy_data)
    buggy = torch.optim.Adam(model.parameters(), lr=1e-3)      # the released code's mistake
    missing = _missing_from_optimizer(buggy, model=model, sampler=sampler)
    assert missing and all(m.startswith("sampler.aligner.") for m in missing)


def test_trainer_optimizer_holds_backbone_and_aligner(toy_data, monkeypatch):
    """Uses train.build_optimizer if the trainer exposes it; otherwise records the
    optimizer that train.fit builds (one epoch) and checks the aligner was trained."""
    from hnlmrec_lib import train

    cf = CFConfig(dim=CF_DIM, epochs=1, batch_size=4, topks=(2,), select_metric="ndcg@2")
    model, sampler = _setup(toy_data)
    builder = getattr(train, "build_optimizer", None)
    if builder is not None:
        optimizer = builder(model, sampler, cf)
    else:
        made: list[torch.optim.Optimizer] = []

        class Recording(torch.optim.Adam):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, **kwargs)
                made.append(self)

        monkeypatch.setattr(torch.optim, "Adam", Recording)
        before = [p.detach().clone() for p in sampler.aligner.parameters()]
        train.fit(model, sampler, train.TrainingView.from_data(toy_data), cf, seed=0)
        assert len(made) == 1, "fit should build exactly one optimizer"
        optimizer = made[0]
        after = list(sampler.aligner.parameters())
        assert any(not torch.equal(b, a) for b, a in zip(before, after)), "aligner never updated"
    assert _missing_from_optimizer(optimizer, model=model, sampler=sampler) == []


def test_one_training_step_moves_the_aligner(toy_data):
    model, sampler = _setup(toy_data)
    optimizer = torch.optim.Adam([*model.parameters(), *sampler.parameters()], lr=1e-2)
    before = sampler.aligner.projector.net[0].weight.detach().clone()
    res, bpr, _, _ = _losses(model, sampler, toy_data)
    (bpr + res.aux_loss).backward()
    optimizer.step()
    assert not torch.equal(before, sampler.aligner.projector.net[0].weight)
    assert np.isfinite(float(bpr + res.aux_loss))


def test_mix_variants_register_after_the_alignment_choice(tmp_path):
    import json

    from hnlmrec_lib import experiments
    from hnlmrec_lib.artifacts import ArtifactStore
    from hnlmrec_lib.config import load_preset
    from hnlmrec_lib.negatives import methods
    from hnlmrec_lib.negatives.bank import NegativeBank, save_bank

    cfg = load_preset("smoke", {"artifacts_dir": str(tmp_path)})
    store = ArtifactStore(cfg.artifact_root)
    save_bank(store, NegativeBank("toy", np.zeros((2, 1, 4), np.float16), np.ones((2, 1), bool),
                                  np.array([0, 1]), None, "h", {}))
    assert methods.register_bank("toy", store) == ["toy"]            # no choice yet
    methods.save_choice(store, "toy", False, {})
    assert methods.register_bank("toy", store) == ["toy", "toy+align"]
    plain = experiments.run_inputs(cfg, experiments.RunSpec("lightgcn", "toy+align", 0))
    mixed = experiments.run_inputs(cfg, experiments.RunSpec("lightgcn", methods.mix_method("toy", 0.5), 0))
    assert mixed["method_inputs"]["negatives"]["alpha_mix"] == 0.5
    assert plain["method_inputs"]["negatives"]["alpha_mix"] == cfg.negatives.alpha_mix
    assert {k: v for k, v in mixed["method_inputs"]["negatives"].items() if k != "alpha_mix"} == \
        {k: v for k, v in plain["method_inputs"]["negatives"].items() if k != "alpha_mix"}
    assert mixed["method_inputs"]["bpr_through_projector"] is False  # the selected variant
    with pytest.raises(RuntimeError, match="select_alignment_variant"):
        methods.select_mix_alpha(cfg, None, store, "other")
    (store.root / methods.CHOICE_KIND / "toy.mix.json").write_text(json.dumps({"alpha_mix": 0.01}))
    assert methods.register_bank("toy", store)[-1] == "toy+align+mix"
    assert experiments.resolve("toy+align+mix") == "toy+align+mix0.01"


def test_regularize_hard_puts_e_hard_in_the_l2_term(toy_data):
    users, pos = _batch(toy_data)
    regs = {}
    for flag in (False, True):
        model, sampler = _setup(toy_data, bpr_through_projector=True)
        sampler.regularize_hard = flag
        res, _, user_emb, item_emb = _losses(model, sampler, toy_data)
        regs[flag] = model.reg_loss(users, pos, res, user_emb, item_emb)
        if flag:
            has = sampler.last.has_candidates
            assert torch.equal(res.neg_ego[has], res.neg_emb[has])       # e_hard itself
            assert not has.all() or res.neg_ego.shape == res.neg_emb.shape
            # its gradient reaches the projector through the L2 term alone
            sampler.zero_grad()
            regs[flag].backward()
            assert sampler.aligner.projector.net[-1].weight.grad.abs().sum() > 0
        else:
            assert res.neg_ego is None
    # with MF the L2 term without the flag holds no negative at all (neg_items is None)
    e_hard = res.neg_emb[sampler.last.has_candidates]
    extra = model.reg * e_hard.pow(2).sum() / res.neg_emb.shape[1] / (2.0 * len(users))
    assert torch.allclose(regs[True].detach(), regs[False].detach() + extra.detach(), rtol=1e-5)


def test_match_norm_gives_e_hard_the_norm_of_its_label(toy_data):
    model, sampler = _setup(toy_data, bpr_through_projector=True)
    sampler.match_norm = True
    res, _, _, item_emb = _losses(model, sampler, toy_data)
    has = sampler.last.has_candidates
    label_norm = item_emb[sampler.last.dns_labels[has]].norm(dim=-1)
    assert torch.allclose(res.neg_emb[has][:, 0].norm(dim=-1), label_norm, rtol=1e-5)


def test_bf16_aligner_is_close_to_float32_and_trains_float32_parameters(toy_data):
    """negatives.aligner_dtype = "bfloat16" runs the aligner's matmuls under autocast: the
    negatives and L_align stay float32 and within bf16 rounding of the float32 path."""
    out = {}
    for dtype in ("float32", "bfloat16"):
        model, sampler = _setup(toy_data, aligner_dtype=dtype)
        res, _, _, _ = _losses(model, sampler, toy_data)
        res.aux_loss.backward()
        grads = [p.grad for p in sampler.aligner.parameters()]
        assert res.neg_emb.dtype == torch.float32 and all(g is not None and g.dtype == torch.float32 for g in grads)
        out[dtype] = (res.neg_emb.detach(), float(res.aux_loss))
    assert torch.allclose(out["float32"][0], out["bfloat16"][0], rtol=0.05, atol=0.02)
    assert out["float32"][1] == pytest.approx(out["bfloat16"][1], rel=0.02)
    with pytest.raises(ValueError, match="negatives.aligner_dtype"):
        _setup(toy_data, aligner_dtype="float16")
