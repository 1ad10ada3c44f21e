"""Each backbone's learning rate, chosen on VALID only; writes benchmarks/results/lr.json.

    python benchmarks/bench_lr.py                    # all four backbones, RNS, 3 seeds
    python benchmarks/bench_lr.py --backbones lightgcn --lrs 0.001 0.002

RecBole's lr = 1e-3 with batch 2048 makes LightGCN and SGL need 100-150 epochs, most of a cold
study's CF time. This probe trains RNS runs of every backbone at each learning rate (in a
scratch artifact store, so a later ``make study`` still starts cold) and reports what
selection sees: valid NDCG@20, the best and last epoch, the training seconds, and the choice
of the one-standard-error rule (``selection.one_standard_error_choice``: the fewest epochs
among the rates within one standard error of the best valid mean). ``cf.backbone_lr`` of the
default preset holds that choice. Test metrics are computed by the trainer once per run, as
always, and are deliberately not read here.
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

import tempfile  # noqa: E402

import pandas as pd  # noqa: E402

from hnlmrec_lib import experiments, notebook  # noqa: E402
from hnlmrec_lib.selection import one_standard_error_choice  # noqa: E402
from hnlmrec_lib.artifacts import atomic_write_text  # noqa: E402
from hnlmrec_lib.runtime import machine_facts  # noqa: E402

OUT = ROOT / "benchmarks" / "results" / "lr.json"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="default")
    ap.add_argument("--backbones", nargs="+", default=["mf", "lightgcn", "ngcf", "sgl"])
    ap.add_argument("--lrs", nargs="+", type=float, default=[1e-3, 2e-3, 5e-3])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--out", default=str(OUT))
    ap.add_argument("--store", default="", help="artifact folder (default: a fresh temporary one)")
    args = ap.parse_args()

    scratch = args.store or tempfile.mkdtemp(prefix="bench_lr_")
    session = notebook.start(args.preset, {"artifacts_dir": scratch})
    cfg, store = session.cfg, session.store
    data = session.data()
    specs = [experiments.RunSpec(b, "rns", s, () if lr == cfg.cf.lr_for(b) else (("lr", lr),))
             for b in args.backbones for lr in args.lrs for s in args.seeds]
    t0 = time.perf_counter()
    records = experiments.run_grid(cfg, data, store, specs, desc="lr probe")
    wall = time.perf_counter() - t0
    rows = [{"backbone": r["backbone"], "lr": experiments.run_cf_config(cfg, spec).lr,
             "seed": r["seed"], "valid_ndcg@20": r["valid"]["ndcg@20"],
             "best_epoch": r["best_epoch"], "epochs_run": r["epochs_run"],
             "train_seconds": r["train_seconds"]} for spec, r in zip(specs, records)]
    frame = pd.DataFrame(rows)
    summary = (frame.groupby(["backbone", "lr"])
               .agg(valid_ndcg20_mean=("valid_ndcg@20", "mean"), valid_ndcg20_std=("valid_ndcg@20", "std"),
                    best_epoch=("best_epoch", "mean"), epochs_run=("epochs_run", "mean"),
                    train_seconds=("train_seconds", "mean"))
               .round(4).reset_index())
    rule = one_standard_error_choice(frame, "backbone", "lr", "valid_ndcg@20", "epochs_run")
    summary = summary.merge(rule[["backbone", "lr", "eligible", "chosen"]], on=["backbone", "lr"])
    chosen = {r.backbone: r.lr for r in rule[rule["chosen"]].itertuples()}
    print(summary.to_string(index=False))
    print("chosen (one-standard-error rule, fewest epochs):", chosen)
    result = {"machine": machine_facts(), "preset": args.preset, "sampler": "rns",
              "batch_size": cfg.cf.batch_size, "min_epochs": cfg.cf.min_epochs,
              "patience": cfg.cf.patience, "workers": cfg.cf.workers,
              "wall_seconds_uncached_part": round(wall, 1),
              "rule": "one standard error: fewest mean epochs among lrs whose mean valid NDCG@20 "
                      ">= best mean - its standard error (selection.one_standard_error_choice)",
              "chosen": chosen, "summary": summary.to_dict(orient="records"), "runs": rows}
    atomic_write_text(Path(args.out), json.dumps(result, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
