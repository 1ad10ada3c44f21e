"""Register the LLM-based negative-sampling methods for every negative bank in the store.

For a bank ``B`` (``naive-<llm>`` from notebook 02, ``hnlmrec`` from notebook 03):

- ``B`` without alignment: lambda1 = 0 ("LLMs w/o Alignment", Table 2 (v2); "w/o Align",
  Table 3 (v1)). BPR is then the aligner's only training signal, so its gradient flows
  through the projector.
- ``B+align@bpr`` / ``B+align@nobpr``: lambda1 > 0 (Eq. 10 (v2)), with and without the BPR
  gradient reaching the projector. The papers do not say which; notebook 02 trains both on the
  main backbone, selects on **valid** NDCG@20 and records the choice.
- ``B+align``: the selected variant (an alias that shares its runs).
- ``B+align+l2``: the selected variant with e_hard in the L2 term (lambda2 of Eq. 10 (v2))
  like any negative's embedding; shown for the banks of ``VARIANT_BANKS``.
- ``B+align+norm`` (ours): the selected variant with each e_hard rescaled to the norm of its
  collaborative label item; shown for the banks of ``VARIANT_BANKS``.
- ``B+align+mix<a>``: the selected variant with the v1 mix of Eq. 7 (v1), the BPR negative
  a * e_hard + (1 - a) * e_random, for a in ``MIX_ALPHAS``; ``select_mix_alpha`` picks a on
  **valid** and registers the alias ``B+align+mix``. A projected e_hard is not an item, so
  with a = 1 no item embedding is ever pushed down as a negative; the mix restores that.
"""
from __future__ import annotations

import dataclasses
import json
from functools import lru_cache

import numpy as np
import torch

from .. import experiments
from ..artifacts import ArtifactStore, atomic_write_text
from ..config import StudyConfig
from .bank import NegativeBank, list_banks, load_bank

CHOICE_KIND = "negatives_choice"
VARIANT_BANKS = ("hnlmrec",)   # banks whose +l2 / +norm rows the tables show (runs cost CPU)
MIX_ALPHAS = (0.5, 0.01)   # Eq. 7 (v1) candidates: an even mix; the release's value on Toys


def choice_path(store: ArtifactStore, bank: str):
    return store.root / CHOICE_KIND / f"{bank}.json"


def save_choice(store: ArtifactStore, bank: str, bpr_through_projector: bool, evidence: dict) -> None:
    atomic_write_text(choice_path(store, bank), json.dumps(
        {"bpr_through_projector": bpr_through_projector, "evidence": evidence}, indent=1))


def load_choice(store: ArtifactStore, bank: str) -> bool | None:
    path = choice_path(store, bank)
    return json.loads(path.read_text())["bpr_through_projector"] if path.exists() else None


def _mix_path(store: ArtifactStore, bank: str):
    return store.root / CHOICE_KIND / f"{bank}.mix.json"


def load_mix_choice(store: ArtifactStore, bank: str) -> float | None:
    path = _mix_path(store, bank)
    return json.loads(path.read_text())["alpha_mix"] if path.exists() else None


def mix_method(bank: str, alpha: float) -> str:
    return f"{bank}+align+mix{alpha:g}"


@lru_cache(maxsize=8)
def _cached_bank(root: str, name: str, inputs_hash: str) -> NegativeBank:
    return load_bank(ArtifactStore(root), name)


def _bank_hash(store: ArtifactStore, name: str) -> str:
    return load_bank(store, name).inputs_hash


def sampler_factory(bank_name: str, align: bool, bpr_through_projector: bool,
                    alpha_mix: float | None = None, regularize_hard: bool = False,
                    match_norm: bool = False):
    """factory(view, cfg, store, model) -> LLMNegativeSampler over the named bank
    (``alpha_mix`` replaces ``negatives.alpha_mix`` when given)."""
    from .llm_sampler import LLMNegativeSampler

    def factory(view, cfg: StudyConfig, store: ArtifactStore, model):
        bank = _cached_bank(str(store.root), bank_name, _bank_hash(store, bank_name))
        neg_cfg = cfg.negatives if align else dataclasses.replace(cfg.negatives, lambda1=0.0)
        if alpha_mix is not None:
            neg_cfg = dataclasses.replace(neg_cfg, alpha_mix=alpha_mix)
        maps = {}
        if bank.row_of_user is not None:
            maps["row_of_user"] = torch.from_numpy(bank.row_of_user.astype(np.int64))
        if bank.pair_rows is not None:
            maps["pair_rows"] = torch.from_numpy(bank.pair_rows.astype(np.int64))
        return LLMNegativeSampler(view, torch.from_numpy(bank.vectors.astype(np.float32)), neg_cfg,
                                  model.out_dim, bpr_through_projector,
                                  bank_valid=torch.from_numpy(bank.valid), n_label_cands=cfg.cf.n_negs,
                                  regularize_hard=regularize_hard, match_norm=match_norm, **maps)
    return factory


def _inputs(bank_name: str, align: bool, flag: bool, alpha_mix: float | None = None,
            regularize_hard: bool = False, match_norm: bool = False):
    def inputs(cfg: StudyConfig) -> dict:
        neg = dataclasses.asdict(cfg.negatives)
        if not align:
            neg["lambda1"] = 0.0
        if alpha_mix is not None:
            neg["alpha_mix"] = alpha_mix
        if regularize_hard:  # only when set, so the other methods' keys stay as they were
            neg["regularize_hard"] = True
        if match_norm:
            neg["match_norm"] = True
        return {"bank": bank_name, "bank_hash": _bank_hash(_store_of(cfg), bank_name),
                "negatives": neg, "align": align, "bpr_through_projector": flag}
    return inputs


def _store_of(cfg: StudyConfig) -> ArtifactStore:
    return ArtifactStore(cfg.artifact_root)


def register_bank(bank_name: str, store: ArtifactStore) -> list[str]:
    """Register the methods of one bank; return the names to show in tables."""
    experiments.register_method(bank_name, sampler_factory(bank_name, False, True),
                                _inputs(bank_name, False, True))
    for flag, tag in ((True, "bpr"), (False, "nobpr")):
        experiments.register_method(f"{bank_name}+align@{tag}", sampler_factory(bank_name, True, flag),
                                    _inputs(bank_name, True, flag))
    shown = [bank_name]
    chosen = load_choice(store, bank_name)
    if chosen is not None:
        experiments.register_alias(f"{bank_name}+align", f"{bank_name}+align@{'bpr' if chosen else 'nobpr'}")
        shown.append(f"{bank_name}+align")
        for alpha in MIX_ALPHAS:
            experiments.register_method(mix_method(bank_name, alpha),
                                        sampler_factory(bank_name, True, chosen, alpha),
                                        _inputs(bank_name, True, chosen, alpha))
        experiments.register_method(f"{bank_name}+align+l2",
                                    sampler_factory(bank_name, True, chosen, regularize_hard=True),
                                    _inputs(bank_name, True, chosen, regularize_hard=True))
        experiments.register_method(f"{bank_name}+align+norm",
                                    sampler_factory(bank_name, True, chosen, match_norm=True),
                                    _inputs(bank_name, True, chosen, match_norm=True))
        if bank_name in VARIANT_BANKS:
            shown += [f"{bank_name}+align+l2", f"{bank_name}+align+norm"]
        alpha = load_mix_choice(store, bank_name)
        if alpha is not None:
            experiments.register_alias(f"{bank_name}+align+mix", mix_method(bank_name, alpha))
            shown.append(f"{bank_name}+align+mix")
    return shown


def register_available(cfg: StudyConfig, store: ArtifactStore) -> list[str]:
    """Register every bank in the store; return the table-ready method names."""
    names: list[str] = []
    for bank_name in list_banks(store):
        names += register_bank(bank_name, store)
    return names


def select_alignment_variant(cfg: StudyConfig, data, store: ArtifactStore, bank_name: str) -> dict:
    """Train ``bank+align`` with and without the BPR gradient reaching the projector on the
    main backbone (``cf.seeds``), keep the one with the higher mean VALID selection metric,
    record the choice, and register the alias ``bank+align``."""
    register_bank(bank_name, store)
    specs = [experiments.RunSpec(cfg.cf.main_backbone, f"{bank_name}+align@{tag}", s)
             for tag in ("bpr", "nobpr") for s in cfg.cf.seeds]
    valid = experiments.records_frame(experiments.run_grid(cfg, data, store, specs, desc=bank_name),
                                      split="valid")
    by_flag = valid.groupby("method")[cfg.cf.select_metric].mean()
    chosen = str(by_flag.idxmax()).endswith("@bpr")
    save_choice(store, bank_name, chosen, {k: float(v) for k, v in by_flag.items()})
    register_bank(bank_name, store)
    return {"bpr_through_projector": chosen,
            **{f"valid {cfg.cf.select_metric} {k}": float(v) for k, v in by_flag.items()}}


def select_mix_alpha(cfg: StudyConfig, data, store: ArtifactStore, bank_name: str,
                     alphas: tuple[float, ...] = MIX_ALPHAS) -> dict:
    """Train ``bank+align`` (the selected variant) with the Eq. 7 (v1) mix for each alpha on
    the main backbone (``cf.seeds``), keep the alpha with the higher mean VALID selection
    metric, record it and register the alias ``bank+align+mix``. Needs the alignment choice."""
    if load_choice(store, bank_name) is None:
        raise RuntimeError(f"select_alignment_variant({bank_name!r}) must run before select_mix_alpha")
    register_bank(bank_name, store)
    specs = [experiments.RunSpec(cfg.cf.main_backbone, mix_method(bank_name, a), s)
             for a in alphas for s in cfg.cf.seeds]
    valid = experiments.records_frame(experiments.run_grid(cfg, data, store, specs,
                                                           desc=f"{bank_name} alpha mix"), split="valid")
    by_method = valid.groupby("method")[cfg.cf.select_metric].mean()
    best = str(by_method.idxmax())
    alpha = next(a for a in alphas if mix_method(bank_name, a) == best)
    evidence = {k: float(v) for k, v in by_method.items()}
    atomic_write_text(_mix_path(store, bank_name), json.dumps({"alpha_mix": alpha, "evidence": evidence},
                                                              indent=1))
    register_bank(bank_name, store)
    return {"alpha_mix": alpha, **{f"valid {cfg.cf.select_metric} {k}": v for k, v in evidence.items()}}
