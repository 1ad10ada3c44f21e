"""BPR training with early stopping on VALID, and a single read of TEST afterwards.

Choosing the epoch never sees the held-out split, by construction: ``fit`` only accepts a
``TrainingView``, which copies train and valid out of the dataset and has no test
attribute at all. ``train_run`` calls ``fit`` and only then ``evaluate_test`` once.
"""
from __future__ import annotations

import dataclasses
import resource
import time
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Callable

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from torch import Tensor

from .cf.backbones import Backbone, build_backbone
from .cf.losses import bpr_loss
from .cf.samplers import NegativeSampler, build_sampler
from .config import CFConfig
from .data.dataset import InteractionData
from .metrics import evaluate

EpochCallback = Callable[[int, Backbone, dict], None]
SamplerFactory = Callable[["TrainingView", CFConfig, Backbone], NegativeSampler]


@dataclass(frozen=True)
class TrainingView:
    """Everything training and epoch choice may read: train and valid, never the test split."""

    name: str
    n_users: int
    n_items: int
    train: np.ndarray
    valid: np.ndarray
    train_ratings: np.ndarray | None = None
    items: pd.DataFrame | None = None
    users: pd.DataFrame | None = None

    @classmethod
    def from_data(cls, data: InteractionData) -> "TrainingView":
        """Copy the train/valid parts of ``data`` (test is not read)."""
        return cls(name=data.name, n_users=int(data.n_users), n_items=int(data.n_items),
                   train=np.asarray(data.train, dtype=np.int64),
                   valid=np.asarray(data.valid, dtype=np.int64),
                   train_ratings=getattr(data, "train_ratings", None),
                   items=getattr(data, "items", None), users=getattr(data, "users", None))

    def matrix(self, split: str = "train") -> sp.csr_matrix:
        """Binary user x item CSR matrix of ``train`` or ``valid``."""
        if split not in ("train", "valid"):
            raise KeyError(f"a TrainingView holds only 'train' and 'valid', not {split!r}")
        pairs = getattr(self, split)
        ones = np.ones(len(pairs), dtype=np.float32)
        csr = sp.csr_matrix((ones, (pairs[:, 0], pairs[:, 1])), shape=(self.n_users, self.n_items))
        csr.sum_duplicates()
        csr.data[:] = 1.0
        return csr

    @cached_property
    def train_csr(self) -> sp.csr_matrix:
        return self.matrix("train")

    @cached_property
    def item_train_counts(self) -> np.ndarray:
        return np.bincount(self.train[:, 1], minlength=self.n_items)

    def positives(self, split: str = "train") -> list[np.ndarray]:
        """Per-user sorted arrays of item indices in ``split``."""
        csr = self.matrix(split)
        return [csr.indices[csr.indptr[u]:csr.indptr[u + 1]] for u in range(self.n_users)]


@dataclass
class FitResult:
    """What ``fit`` returns: the curve and the selected (restored) epoch."""

    curves: pd.DataFrame
    best_epoch: int
    valid: dict[str, float]
    epochs_run: int
    train_seconds: float


@dataclass
class RunResult:
    """One trained run. ``test`` was computed once, after selection on valid."""

    config: dict[str, Any]
    curves: pd.DataFrame
    best_epoch: int
    valid: dict[str, float]
    test: dict[str, float]
    train_seconds: float
    epochs_run: int
    peak_mem_mb: float
    user_emb: np.ndarray
    item_emb: np.ndarray
    model: Backbone | None = field(default=None, repr=False, compare=False)
    sampler: NegativeSampler | None = field(default=None, repr=False, compare=False)


@torch.no_grad()
def final_embeddings(model: Backbone) -> tuple[Tensor, Tensor]:
    """Pooled (user, item) embeddings in eval mode (no dropout)."""
    model.eval()
    user_emb, item_emb = model.propagate()
    return user_emb.detach(), item_emb.detach()


def evaluate_valid(model: Backbone, view: TrainingView, cfg: CFConfig) -> dict[str, float]:
    """Valid metrics: valid items are the truth, train items are masked."""
    user_emb, item_emb = final_embeddings(model)
    return evaluate(user_emb, item_emb, view.matrix("valid"), [view.train_csr], cfg.topks,
                    batch_users=cfg.eval_batch_users)


def evaluate_test(model: Backbone, data: InteractionData,
                  cfg: CFConfig | None = None) -> dict[str, float]:
    """Test metrics (train and valid masked), per ``items.pop_group`` too when present.

    Call once, after the epoch is chosen. This is the only place the test split is read.
    """
    cfg = cfg or CFConfig()
    items = getattr(data, "items", None)
    groups = None
    if isinstance(items, pd.DataFrame) and "pop_group" in items.columns:
        groups = items["pop_group"].to_numpy()
    user_emb, item_emb = final_embeddings(model)
    return evaluate(user_emb, item_emb, data.matrix("test"),
                    [data.matrix("train"), data.matrix("valid")], cfg.topks,
                    item_groups=groups, batch_users=cfg.eval_batch_users)


def _snapshot(model: Backbone, sampler: NegativeSampler) -> dict[str, dict[str, Tensor]]:
    return {"model": {k: v.detach().clone() for k, v in model.state_dict().items()},
            "sampler": {k: v.detach().clone() for k, v in sampler.state_dict().items()}}


def train_epoch(model: Backbone, sampler: NegativeSampler, optimizer: torch.optim.Optimizer,
                pairs: Tensor, batch_size: int, rng: np.random.Generator,
                generator: torch.Generator, collect: bool = False,
                where: str = "") -> tuple[dict[str, float], dict[str, Any] | None]:
    """One pass over the shuffled train pairs; returns per-pair mean losses and, when
    ``collect``, the epoch's sampled negatives (users, pos_items, neg_items, neg_emb)."""
    model.train()
    sampler.train()
    model.on_epoch_start(rng)
    sampler.on_epoch_start(rng)
    order = torch.from_numpy(rng.permutation(len(pairs)))
    totals = dict.fromkeys(("loss", "bpr", "reg", "aux"), 0.0)
    kept: dict[str, list[Tensor]] = {"users": [], "pos_items": [], "neg_items": [], "neg_emb": []}
    for step, start in enumerate(range(0, len(pairs), batch_size)):
        batch = pairs[order[start:start + batch_size]]
        users, pos_items = batch[:, 0], batch[:, 1]
        hops = model.hop_embeddings()
        user_emb, item_emb = model.pool(hops[0]), model.pool(hops[1])
        neg = sampler.sample(model, users, pos_items, user_emb, item_emb, generator, hops=hops)
        u = user_emb[users]
        pos_scores = (u * item_emb[pos_items]).sum(-1)
        neg_scores = (u.unsqueeze(1) * neg.neg_emb).sum(-1)
        parts = {"bpr": bpr_loss(pos_scores, neg_scores),
                 "reg": model.reg_loss(users, pos_items, neg, user_emb, item_emb),
                 "aux": model.auxiliary_loss(users, pos_items) + neg.aux_loss}
        loss = parts["bpr"] + parts["reg"] + parts["aux"]
        if not bool(torch.isfinite(loss)):
            detail = ", ".join(f"{k}={float(v.detach()):.4g}" for k, v in parts.items())
            raise FloatingPointError(f"{where} batch {step}: non-finite loss ({detail})")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        n = len(users)
        totals["loss"] += float(loss.detach()) * n
        for k, v in parts.items():
            totals[k] += float(v.detach()) * n
        if collect:
            kept["users"].append(users)
            kept["pos_items"].append(pos_items)
            kept["neg_emb"].append(neg.neg_emb.detach())
            if neg.neg_items is not None:
                kept["neg_items"].append(neg.neg_items)
    stats = {k: v / max(len(pairs), 1) for k, v in totals.items()}
    if not collect:
        return stats, None
    info: dict[str, Any] = {k: torch.cat(v) if v else None for k, v in kept.items()}
    return stats, info


def fit(model: Backbone, sampler: NegativeSampler, view: TrainingView, cfg: CFConfig,
        seed: int, epoch_callback: EpochCallback | None = None,
        run_name: str = "run") -> FitResult:
    """Adam on BPR + reg + aux, early stopping on valid ``cfg.select_metric``.

    Patience counts evaluations (every ``cfg.eval_every`` epochs) without improvement and
    cannot end a run before ``cfg.min_epochs``: LightGCN at lr 1e-3 and SGL dip or plateau in
    their first epochs, and a 10-evaluation patience alone stopped some seeds at epoch 12.
    The best epoch's backbone and sampler states are restored before returning.
    ``epoch_callback(epoch, model, info)`` runs after each epoch with ``info`` holding
    the epoch's curve row and sampled negatives; it must not feed back into selection.
    """
    if not isinstance(view, TrainingView):
        raise TypeError("fit takes a TrainingView (train + valid only); build one with "
                        "TrainingView.from_data(data) so test cannot reach model selection")
    if len(view.valid) == 0:
        raise ValueError(f"{run_name}: the validation split is empty; nothing to select on")
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    generator = torch.Generator().manual_seed(seed)
    params = list(model.parameters()) + list(sampler.parameters())
    optimizer = torch.optim.Adam(params, lr=model.lr)
    pairs = torch.from_numpy(view.train)
    best_score, best_epoch, best_valid = -np.inf, 0, {}
    best_state = _snapshot(model, sampler)
    stale, rows, train_seconds = 0, [], 0.0
    epoch = 0
    for epoch in range(1, cfg.epochs + 1):
        start = time.perf_counter()
        stats, info = train_epoch(model, sampler, optimizer, pairs, cfg.batch_size, rng,
                                  generator, collect=epoch_callback is not None,
                                  where=f"run {run_name!r}, epoch {epoch},")
        row: dict[str, Any] = {"epoch": epoch, **stats,
                               "train_seconds": time.perf_counter() - start}
        train_seconds += row["train_seconds"]
        if epoch % cfg.eval_every == 0 or epoch == cfg.epochs:
            t_eval = time.perf_counter()
            metrics = evaluate_valid(model, view, cfg)
            row["eval_seconds"] = time.perf_counter() - t_eval
            row.update({f"valid_{k}": v for k, v in metrics.items()})
            if cfg.select_metric not in metrics:
                raise KeyError(f"select_metric {cfg.select_metric!r} not in {sorted(metrics)}")
            score = metrics[cfg.select_metric]
            if score > best_score:
                best_score, best_epoch, best_valid = score, epoch, metrics
                best_state, stale = _snapshot(model, sampler), 0
            else:
                stale += 1
        row["seconds"] = time.perf_counter() - start
        rows.append(row)
        if epoch_callback is not None:
            epoch_callback(epoch, model, {"row": row, **(info or {})})
        if stale >= cfg.patience and epoch >= cfg.min_epochs:
            break
    model.load_state_dict(best_state["model"])
    sampler.load_state_dict(best_state["sampler"])
    return FitResult(pd.DataFrame(rows), best_epoch, best_valid, epoch, train_seconds)


def peak_memory_mb() -> float:
    """Peak resident memory of this process so far (MB; Linux reports KB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def train_run(data: InteractionData, cfg: CFConfig, backbone: str, sampler: str, seed: int,
              sampler_factory: SamplerFactory | None = None,
              epoch_callback: EpochCallback | None = None) -> RunResult:
    """Build, fit on a TrainingView (epoch chosen on valid), then read the test split once.

    ``sampler_factory(view, cfg, model)`` replaces ``build_sampler`` (e.g. LLM negatives);
    ``sampler`` then only names the run. Same ``seed`` -> identical results.
    """
    torch.set_num_threads(max(1, cfg.threads))
    view = TrainingView.from_data(data)
    torch.manual_seed(seed)
    model = build_backbone(backbone, view, cfg)
    neg_sampler = (sampler_factory(view, cfg, model) if sampler_factory is not None
                   else build_sampler(sampler, view, cfg))
    name = f"{data.name}/{backbone}/{sampler}/seed{seed}"
    fitted = fit(model, neg_sampler, view, cfg, seed, epoch_callback, run_name=name)
    test = evaluate_test(model, data, cfg)
    user_emb, item_emb = final_embeddings(model)
    config = {"dataset": data.name, "backbone": backbone, "sampler": sampler, "seed": seed,
              "cf": dataclasses.asdict(cfg)}
    return RunResult(config=config, curves=fitted.curves, best_epoch=fitted.best_epoch,
                     valid=fitted.valid, test=test, train_seconds=fitted.train_seconds,
                     epochs_run=fitted.epochs_run, peak_mem_mb=peak_memory_mb(),
                     user_emb=user_emb.numpy().copy(), item_emb=item_emb.numpy().copy(),
                     model=model, sampler=neg_sampler)
