"""Experiment runner and results store.

A run is (dataset, backbone, method, hyperparameters, seed). Each finished run is
saved as an artifact keyed by exactly those inputs (plus the data settings), so a
grid over seeds reuses finished runs and a killed grid resumes.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import pandas as pd
from tqdm.auto import tqdm

from .artifacts import ArtifactStore
from .config import CFConfig, StudyConfig

RUN_KIND = "runs"
RECORD_VERSION = 2

# name -> factory(view, cfg, store, model) -> sampler module; filled by the LLM stages.
_METHODS: dict[str, Callable[..., Any]] = {}
# name -> dict of settings that identify the method's artifacts (part of the run key).
_METHOD_INPUTS: dict[str, Callable[[StudyConfig], dict]] = {}
# shown name -> registered name whose runs it shares (e.g. "x+align" -> "x+align@nobpr").
_ALIASES: dict[str, str] = {}

ID_SAMPLERS = ("rns", "dns", "dnsmn", "mixgcf", "ahns")


def register_method(name: str, factory: Callable[..., Any],
                    inputs: Callable[[StudyConfig], dict]) -> None:
    """Make a negative-sampling method available to ``run_one`` under ``name``.

    ``factory(view, cfg, store, model)`` returns the sampler module; ``inputs(cfg)``
    returns the settings that identify what it uses (they enter the run's cache key).
    """
    _METHODS[name] = factory
    _METHOD_INPUTS[name] = inputs


def register_alias(alias: str, target: str) -> None:
    """Show ``target``'s runs under the name ``alias`` (no retraining)."""
    _ALIASES[alias] = target


def resolve(method: str) -> str:
    return _ALIASES.get(method, method)


@dataclass(frozen=True)
class RunSpec:
    backbone: str
    method: str
    seed: int
    overrides: tuple[tuple[str, Any], ...] = ()   # CFConfig fields changed for this run

    @property
    def label(self) -> str:
        extra = ",".join(f"{k}={v}" for k, v in self.overrides)
        return f"{self.backbone}/{self.method}/seed{self.seed}" + (f"[{extra}]" if extra else "")


def run_cf_config(cfg: StudyConfig, spec: RunSpec) -> CFConfig:
    """The CF settings of one run: the preset's, with the backbone's learning rate and L2
    weight made explicit in ``lr`` / ``reg`` and the run's overrides on top (an ``lr`` or
    ``reg`` override wins over ``backbone_lr`` / ``ngcf_reg``)."""
    overrides = dict(spec.overrides)
    cf = dataclasses.replace(cfg.cf, **overrides)
    lr = overrides.get("lr", cf.lr_for(spec.backbone))
    reg = overrides.get("reg", cf.ngcf_reg if spec.backbone == "ngcf" else cf.reg)
    cf = dataclasses.replace(cf, lr=lr, backbone_lr={}, reg=reg)
    return dataclasses.replace(cf, ngcf_reg=reg) if spec.backbone == "ngcf" else cf


# CF settings that shape every run, and those only some backbones / samplers read.
_COMMON_FIELDS = ("dim", "batch_size", "epochs", "patience", "min_epochs", "eval_every", "topks",
                  "select_metric")
_BACKBONE_FIELDS = {
    "mf": ("lr", "reg"),
    "lightgcn": ("layers", "lr", "reg"),
    "ngcf": ("layers", "lr", "ngcf_reg", "ngcf_dropout"),
    "sgl": ("layers", "lr", "reg", "sgl_drop_ratio", "sgl_tau", "sgl_weight"),
}
_SAMPLER_FIELDS = {
    "rns": (),
    "dns": ("n_negs",),
    "dnsmn": ("dnsmn_m", "dnsmn_n"),
    "mixgcf": ("n_negs",),
    "ahns": ("n_negs", "ahns_alpha", "ahns_beta", "ahns_p"),
}


def relevant_cf(cf: CFConfig, backbone: str, method: str) -> dict:
    """The CF settings a (backbone, method) run actually reads, so changing an unrelated
    setting (say SGL's temperature) does not invalidate the other runs' cache entries.
    LLM-based methods read ``n_negs`` (the DNS pool of their L_align labels)."""
    names = _COMMON_FIELDS + _BACKBONE_FIELDS[backbone] + _SAMPLER_FIELDS.get(method, ("n_negs",))
    return {name: getattr(cf, name) for name in names}


def run_inputs(cfg: StudyConfig, spec: RunSpec) -> dict:
    """Exactly what determines a run's result (the cache key)."""
    method = resolve(spec.method)
    method_inputs = _METHOD_INPUTS[method](cfg) if method in _METHOD_INPUTS else {}
    return {
        "version": RECORD_VERSION,
        "data": dataclasses.asdict(cfg.data),
        "cf": relevant_cf(run_cf_config(cfg, spec), spec.backbone, method),
        "backbone": spec.backbone,
        "method": method,
        "method_inputs": method_inputs,
        "seed": spec.seed,
    }


def run_one(cfg: StudyConfig, data, store: ArtifactStore, spec: RunSpec,
            epoch_callback: Callable | None = None) -> dict:
    """Train and evaluate one run, or load its record if it already exists."""
    from .train import train_run

    def compute() -> dict:
        factory = None
        method = resolve(spec.method)
        if method in _METHODS:
            method_factory = _METHODS[method]

            def factory(view, cf, model):
                return method_factory(view, cfg, store, model)
        elif method not in ID_SAMPLERS:
            raise KeyError(f"unknown method {spec.method!r}; known: {ID_SAMPLERS + tuple(_METHODS)}")
        result = train_run(data, run_cf_config(cfg, spec), spec.backbone, method, spec.seed,
                           sampler_factory=factory, epoch_callback=epoch_callback)
        return result_record(spec, result)

    record = store.cached(RUN_KIND, run_inputs(cfg, spec), compute)
    return {**record, "method": spec.method, "label": spec.label}


def result_record(spec: RunSpec, result) -> dict:
    """A plain, picklable record of a finished run (embeddings kept for later analyses)."""
    return {
        "backbone": spec.backbone,
        "method": spec.method,
        "seed": spec.seed,
        "overrides": dict(spec.overrides),
        "label": spec.label,
        "config": result.config,
        "curves": result.curves,
        "best_epoch": result.best_epoch,
        "epochs_run": result.epochs_run,
        "valid": result.valid,
        "test": result.test,
        "train_seconds": result.train_seconds,
        "peak_mem_mb": result.peak_mem_mb,
        "user_emb": result.user_emb,
        "item_emb": result.item_emb,
    }


def run_grid(cfg: StudyConfig, data, store: ArtifactStore, specs: Iterable[RunSpec],
             desc: str = "runs") -> list[dict]:
    """Run (or reuse) every spec, with a progress bar; records in the order of ``specs``.

    With ``cf.workers`` > 1 the runs not yet in the store train in that many worker
    processes, each with ``cf.threads // cf.workers`` torch threads. A CF step here is a
    string of small sparse and dense ops that two threads share poorly (1.3-1.6x faster
    than one thread, ``benchmarks/bench_grid.py``), so two one-thread runs at once finish
    a grid sooner. A run's result does not depend on the process it ran in: it is seeded,
    and each run is stored atomically, so a killed grid resumes either way. Workers know
    the ID samplers and the LLM methods of the banks in the store (``register_available``);
    a method registered only in this process needs ``workers = 1``.
    """
    specs = list(specs)
    keys = {spec: _run_key(cfg, store, spec) for spec in specs}
    pending = list({key: spec for spec, key in reversed(keys.items())
                    if not _is_stored(store, key)}.values())[::-1]   # one spec per run
    workers = min(max(1, cfg.cf.workers), len(pending))
    if workers > 1:
        _run_in_workers(cfg, data, store, pending, workers, desc)
    return [run_one(cfg, data, store, spec) for spec in tqdm(specs, desc=desc)]


def _run_key(cfg: StudyConfig, store: ArtifactStore, spec: RunSpec) -> str:
    if resolve(spec.method) not in ID_SAMPLERS and resolve(spec.method) not in _METHODS:
        return f"unknown:{spec.label}"   # the worker raises run_one's "unknown method" error
    return store.key(RUN_KIND, run_inputs(cfg, spec))


def _is_stored(store: ArtifactStore, key: str) -> bool:
    return not key.startswith("unknown:") and store.path(RUN_KIND, key, "pkl").exists()


def _run_in_workers(cfg: StudyConfig, data, store: ArtifactStore, specs: list[RunSpec],
                    workers: int, desc: str) -> None:
    """Train ``specs`` in ``workers`` spawned processes; each stores its run as it finishes."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    threads = max(1, cfg.cf.threads // workers)
    context = multiprocessing.get_context("spawn")   # no fork of a process holding OpenMP threads
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker,
                             initargs=(cfg, data, str(store.root), threads)) as pool:
        futures = [pool.submit(_train_in_worker, spec) for spec in sorted(specs, key=_expected_cost)]
        try:
            for future in tqdm(as_completed(futures), total=len(futures), desc=f"{desc} ({workers} workers)"):
                future.result()   # re-raises a worker's error here
        except BaseException:
            pool.shutdown(cancel_futures=True)   # runs in progress finish and are stored
            raise


def _expected_cost(spec: RunSpec) -> int:
    """Longest runs first, so two workers do not end with one long run left alone:
    LLM samplers (the aligner runs every batch), then NGCF / SGL, then the rest."""
    llm = resolve(spec.method) not in ID_SAMPLERS
    return -(2 * llm + (spec.backbone in ("ngcf", "sgl")))


_WORKER: dict[str, Any] = {}


def _init_worker(cfg: StudyConfig, data, store_root: str, threads: int) -> None:
    import torch   # the environment (OMP_WAIT_POLICY, offline flags) is the parent's

    torch.set_num_threads(threads)
    cfg = dataclasses.replace(cfg, cf=dataclasses.replace(cfg.cf, threads=threads, workers=1))
    store = ArtifactStore(store_root)
    finished_llm_methods(cfg, store)   # the LLM methods of the banks in the store
    _WORKER.update(cfg=cfg, data=data, store=store)


def _train_in_worker(spec: RunSpec) -> None:
    run_one(_WORKER["cfg"], _WORKER["data"], _WORKER["store"], spec)


def main_grid(cfg: StudyConfig, methods: Iterable[str],
              backbones: Iterable[str] | None = None) -> list[RunSpec]:
    """Specs of the main table: the main backbone on ``main_seeds``, the others on ``seeds``."""
    specs = []
    for backbone in backbones or cfg.cf.backbones:
        seeds = cfg.cf.main_seeds if backbone == cfg.cf.main_backbone else cfg.cf.seeds
        specs += [RunSpec(backbone, m, s) for m in methods for s in seeds]
    return specs


def records_frame(records: list[dict], split: str = "test") -> pd.DataFrame:
    """One row per run with its ``split`` metrics as columns."""
    rows = []
    for r in records:
        row = {"backbone": r["backbone"], "method": r["method"], "seed": r["seed"],
               "best_epoch": r["best_epoch"], "epochs_run": r["epochs_run"],
               "train_seconds": r["train_seconds"]}
        row.update({k: v for k, v in r.get("overrides", {}).items()})
        row.update(r[split])
        rows.append(row)
    return pd.DataFrame(rows)


def curves_frame(records: list[dict]) -> pd.DataFrame:
    """Per-epoch curves of all runs, long format."""
    frames = []
    for r in records:
        c = pd.DataFrame(r["curves"]).copy()
        c["backbone"], c["method"], c["seed"] = r["backbone"], r["method"], r["seed"]
        frames.append(c)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def finished_llm_methods(cfg: StudyConfig, store: ArtifactStore) -> list[str]:
    """LLM-based methods whose negative banks exist in ``store`` (registered on the way)."""
    from .negatives.methods import register_available

    return register_available(cfg, store)


def llm_grid(cfg: StudyConfig, llm_methods: Iterable[str]) -> list[RunSpec]:
    """Specs of the LLM rows of Table 1 (v2): HNLMRec (``hnlmrec+align``) on the backbones
    of ``cf.llm_backbones`` (``main_seeds`` on the main backbone, ``seeds`` elsewhere); the
    papers' other LLM rows (naive prompting w/o and w/ alignment, w/o Align) on the main
    backbone with ``main_seeds``, where the ablation tables (notebooks 02, 05) need them; the
    study's own variants (``+mix``, ``+l2``, ``+norm``) on the main backbone with ``seeds``.
    This bounds the study's cost: an LLM-sampler epoch runs the aligner over the bank."""
    llm_methods = list(llm_methods)
    everywhere = [m for m in llm_methods if m == "hnlmrec+align"]
    variants = [m for m in llm_methods if m.endswith(VARIANT_SUFFIXES)]
    main_only = [m for m in llm_methods if m not in everywhere and m not in variants]
    backbones = [b for b in cfg.cf.backbones if b in cfg.cf.llm_backbones and supports(b)]
    return (main_grid(cfg, everywhere, backbones) + main_grid(cfg, main_only, [cfg.cf.main_backbone])
            + [RunSpec(cfg.cf.main_backbone, m, s) for m in variants for s in cfg.cf.seeds])


VARIANT_SUFFIXES = ("+mix", "+l2", "+norm")   # the study's own LLM-sampler variants


def supports(backbone: str) -> bool:
    """Every backbone here exposes the embeddings the LLM sampler needs."""
    return backbone in ("mf", "lightgcn", "ngcf", "sgl")
