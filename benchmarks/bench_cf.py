"""Benchmark CF training and evaluation; writes benchmarks/results/cf.json.

    python benchmarks/bench_cf.py                          # preset "default" (ML-100K)
    python benchmarks/bench_cf.py --synthetic --users 2000 --items 3000
    python benchmarks/bench_cf.py --backbones lightgcn --samplers rns mixgcf --epochs 3

For every backbone x sampler: seconds per training epoch (median of ``--epochs`` timed
epochs after one warm-up epoch), seconds per full evaluation of all valid users (median
of 3), and memory. Each cell runs in its own child process so its peak RSS
(``resource.getrusage``) is its own; ``tracemalloc`` adds the peak of Python-level
allocations (torch tensors are not traced by it). The load average is recorded because
the machine is shared.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

# Idle OpenMP threads must sleep, not spin, on a shared machine (set before torch).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hnlmrec_lib.artifacts import atomic_write_text  # noqa: E402
from hnlmrec_lib.cf import BACKBONES, SAMPLERS, build_backbone, build_sampler  # noqa: E402
from hnlmrec_lib.config import StudyConfig, load_preset  # noqa: E402
from hnlmrec_lib.data.dataset import InteractionData  # noqa: E402
from hnlmrec_lib.runtime import machine_facts  # noqa: E402
from hnlmrec_lib.train import TrainingView, evaluate_valid, train_epoch  # noqa: E402


def synthetic_data(n_users: int, n_items: int, per_user: int, seed: int = 0) -> InteractionData:
    """Random implicit data with popularity skew (Zipf-like item weights), split 8:1:1."""
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, n_items + 1) ** 0.8
    weights /= weights.sum()
    splits: dict[str, list] = {"train": [], "valid": [], "test": []}
    for u in range(n_users):
        items = rng.choice(n_items, size=per_user, replace=False, p=weights)
        n_tr, n_va = int(per_user * 0.8), int(per_user * 0.1)
        for name, part in (("train", items[:n_tr]), ("valid", items[n_tr:n_tr + n_va]),
                           ("test", items[n_tr + n_va:])):
            splits[name] += [(u, i) for i in part]
    arrays = {k: np.array(v, dtype=np.int64).reshape(-1, 2) for k, v in splits.items()}
    items = pd.DataFrame({"raw_id": np.arange(n_items)})
    users = pd.DataFrame({"raw_id": np.arange(n_users)})
    return InteractionData("synthetic", n_users, n_items, arrays["train"], arrays["valid"],
                           arrays["test"], np.ones(len(arrays["train"])), items, users)


def load_data(args: argparse.Namespace) -> tuple[InteractionData, StudyConfig]:
    if args.synthetic:
        return synthetic_data(args.users, args.items, args.per_user), StudyConfig()
    from hnlmrec_lib.data import load_dataset  # lazy: the data layer may read raw files

    cfg = load_preset(args.preset)
    return load_dataset(cfg), cfg


def bench_cell(data: InteractionData, cfg: StudyConfig, backbone: str, sampler: str,
               epochs: int) -> dict:
    """Time ``epochs`` training epochs (after a warm-up) and 3 full evaluations."""
    cf = cfg.cf
    torch.manual_seed(0)
    view = TrainingView.from_data(data)
    model = build_backbone(backbone, view, cf)
    neg = build_sampler(sampler, view, cf)
    opt = torch.optim.Adam([*model.parameters(), *neg.parameters()], lr=model.lr)
    pairs = torch.from_numpy(view.train)
    rng, gen = np.random.default_rng(0), torch.Generator().manual_seed(0)
    train_epoch(model, neg, opt, pairs, cf.batch_size, rng, gen)  # warm-up
    times, stats = [], {}
    for _ in range(epochs):
        start = time.perf_counter()
        stats, _ = train_epoch(model, neg, opt, pairs, cf.batch_size, rng, gen)
        times.append(time.perf_counter() - start)
    tracemalloc.start()   # one more epoch for Python's peak: tracing slows allocation, so untimed
    train_epoch(model, neg, opt, pairs, cf.batch_size, rng, gen)
    _, py_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    evals = []
    for _ in range(3):
        start = time.perf_counter()
        metrics = evaluate_valid(model, view, cf)
        evals.append(time.perf_counter() - start)
    return {"backbone": backbone, "sampler": sampler,
            "epoch_seconds": round(statistics.median(times), 4),
            "epoch_seconds_all": [round(t, 4) for t in times],
            "eval_seconds": round(statistics.median(evals), 4),
            "steps_per_epoch": -(-len(pairs) // cf.batch_size),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "tracemalloc_peak_mb": round(py_peak / 2**20, 2),
            "loss_after": round(stats.get("loss", float("nan")), 4),
            "valid_ndcg@20_after": round(metrics.get("ndcg@20", float("nan")), 4),
            "loadavg": round(os.getloadavg()[0], 2)}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="default")
    ap.add_argument("--synthetic", action="store_true", help="random data instead of the preset's")
    ap.add_argument("--users", type=int, default=1000)
    ap.add_argument("--items", type=int, default=1500)
    ap.add_argument("--per-user", type=int, default=50)
    ap.add_argument("--backbones", nargs="*", default=list(BACKBONES))
    ap.add_argument("--samplers", nargs="*", default=list(SAMPLERS))
    ap.add_argument("--epochs", type=int, default=2, help="timed epochs per cell")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--in-process", action="store_true", help="no child process per cell")
    ap.add_argument("--cell", default=None, help=argparse.SUPPRESS)  # "backbone,sampler"
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "cf.json"))
    return ap.parse_args(argv)


def run_child(args: argparse.Namespace, backbone: str, sampler: str) -> dict:
    """Run one cell in a fresh interpreter so its peak RSS is its own."""
    cmd = [sys.executable, __file__, "--cell", f"{backbone},{sampler}",
           "--epochs", str(args.epochs), "--threads", str(args.threads), "--preset", args.preset,
           "--users", str(args.users), "--items", str(args.items), "--per-user", str(args.per_user)]
    if args.synthetic:
        cmd.append("--synthetic")
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        return {"backbone": backbone, "sampler": sampler, "error": out.stderr.strip()[-2000:]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.cell:
        data, cfg = load_data(args)
        backbone, sampler = args.cell.split(",")
        print(json.dumps(bench_cell(data, cfg, backbone, sampler, args.epochs)))
        return
    data, cfg = load_data(args)
    result = {"machine": {"platform": platform.platform(), **machine_facts(),
                          "threads": args.threads, "loadavg_start": round(os.getloadavg()[0], 2)},
              "dataset": data.summary(), "cf": {k: getattr(cfg.cf, k) for k in
                                                ("dim", "layers", "batch_size", "n_negs",
                                                 "dnsmn_m", "dnsmn_n")},
              "cells": []}
    for backbone in args.backbones:
        for sampler in args.samplers:
            print(f"[{backbone} x {sampler}] ...", flush=True)
            cell = (bench_cell(data, cfg, backbone, sampler, args.epochs) if args.in_process
                    else run_child(args, backbone, sampler))
            print("   ", json.dumps(cell), flush=True)
            result["cells"].append(cell)
    result["machine"]["loadavg_end"] = round(os.getloadavg()[0], 2)
    out = Path(args.out)
    atomic_write_text(out, json.dumps(result, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
