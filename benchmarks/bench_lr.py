"""How many epochs the learning rate costs, on VALID only; writes benchmarks/results/lr.json.

    python benchmarks/bench_lr.py                            # LightGCN and SGL with RNS
    python benchmarks/bench_lr.py --backbones lightgcn --lrs 0.001 0.002

The default preset trains at RecBole's lr = 1e-3 with batch 2048, and LightGCN / SGL with RNS
need 100-150 epochs to stop early; most of a cold study's CF time is such epochs. This probe
trains RNS runs at other learning rates (``RunSpec.overrides``, stored in the preset's store
like any run) and reports what selection sees: valid NDCG@20, the best and last epoch, and the
training seconds. Test metrics are computed by the trainer once per run, as always, and are
deliberately not read here: a learning rate for the presets must be chosen on valid.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import pandas as pd  # noqa: E402

from hnlmrec_lib import experiments, notebook  # noqa: E402
from hnlmrec_lib.artifacts import atomic_write_text  # noqa: E402
from hnlmrec_lib.runtime import machine_facts  # noqa: E402

OUT = ROOT / "benchmarks" / "results" / "lr.json"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="default")
    ap.add_argument("--backbones", nargs="+", default=["lightgcn", "sgl"])
    ap.add_argument("--lrs", nargs="+", type=float, default=[1e-3, 2e-3, 5e-3])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args()

    session = notebook.start(args.preset)
    cfg, store = session.cfg, session.store
    data = session.data()
    specs = [experiments.RunSpec(b, "rns", s, () if lr == cfg.cf.lr else (("lr", lr),))
             for b in args.backbones for lr in args.lrs for s in args.seeds]
    t0 = time.perf_counter()
    records = experiments.run_grid(cfg, data, store, specs, desc="lr probe")
    wall = time.perf_counter() - t0
    rows = [{"backbone": r["backbone"], "lr": dict(spec.overrides).get("lr", cfg.cf.lr),
             "seed": r["seed"], "valid_ndcg@20": r["valid"]["ndcg@20"],
             "best_epoch": r["best_epoch"], "epochs_run": r["epochs_run"],
             "train_seconds": r["train_seconds"]} for spec, r in zip(specs, records)]
    frame = pd.DataFrame(rows)
    summary = (frame.groupby(["backbone", "lr"])
               .agg(valid_ndcg20_mean=("valid_ndcg@20", "mean"), valid_ndcg20_std=("valid_ndcg@20", "std"),
                    best_epoch=("best_epoch", "mean"), epochs_run=("epochs_run", "mean"),
                    train_seconds=("train_seconds", "mean"))
               .round(4).reset_index())
    print(summary.to_string(index=False))
    result = {"machine": machine_facts(), "preset": args.preset, "sampler": "rns",
              "batch_size": cfg.cf.batch_size, "min_epochs": cfg.cf.min_epochs,
              "patience": cfg.cf.patience, "workers": cfg.cf.workers,
              "wall_seconds_uncached_part": round(wall, 1),
              "summary": summary.to_dict(orient="records"), "runs": rows}
    atomic_write_text(Path(args.out), json.dumps(result, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
