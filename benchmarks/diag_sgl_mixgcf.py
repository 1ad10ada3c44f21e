"""Diagnose SGL + MixGCF on MovieLens-100K; writes benchmarks/results/sgl_mixgcf.json.

    python benchmarks/diag_sgl_mixgcf.py                  # mixgcf and rns; weights 0, 0.01, 0.05
    python benchmarks/diag_sgl_mixgcf.py --weights 0 0.05 --epochs 20 --samplers mixgcf

On the default preset SGL + MixGCF stays near valid NDCG@20 ~0.045 while every other
(backbone, sampler) pair trains. This script trains SGL with each sampler for a fixed number
of epochs (no early stopping) at several weights of SGL's contrastive term and records the
per-epoch BPR loss, contrastive loss and valid NDCG@20 (validation only; test is not read).
Weight 0 makes SGL exactly LightGCN, so the runs isolate the contrastive term's effect.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hnlmrec_lib import notebook  # noqa: E402
from hnlmrec_lib.artifacts import atomic_write_text  # noqa: E402
from hnlmrec_lib.cf import build_backbone, build_sampler  # noqa: E402
from hnlmrec_lib.train import TrainingView, fit  # noqa: E402


def trace(data, cf, sampler: str, weight: float, epochs: int, seed: int) -> dict:
    """Per-epoch BPR, contrastive loss and valid NDCG@20 of SGL at one contrastive weight."""
    cf = dataclasses.replace(cf, sgl_weight=weight, epochs=epochs, min_epochs=epochs)
    view = TrainingView.from_data(data)
    torch.manual_seed(seed)
    model = build_backbone("sgl", view, cf)
    start = time.perf_counter()
    result = fit(model, build_sampler(sampler, view, cf), view, cf, seed, run_name=f"sgl-w{weight}")
    curves = result.curves
    return {"sgl_weight": weight, "seconds": time.perf_counter() - start,
            "bpr": [round(x, 6) for x in curves["bpr"]],
            "aux": [round(x, 6) for x in curves["aux"]],
            "valid_ndcg@20": [round(x, 5) for x in curves["valid_ndcg@20"]]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="default")
    parser.add_argument("--samplers", nargs="+", default=["mixgcf", "rns"])
    parser.add_argument("--weights", type=float, nargs="+", default=[0.0, 0.01, 0.05])
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "sgl_mixgcf.json"))
    args = parser.parse_args()
    session = notebook.start(args.preset, {"cf.threads": args.threads})
    data, cf = session.data(), session.cfg.cf
    runs = [{"sampler": s, **trace(data, cf, s, w, args.epochs, args.seed)}
            for s in args.samplers for w in args.weights]
    report = {"preset": args.preset, "seed": args.seed,
              "epochs": args.epochs, "sgl_tau": cf.sgl_tau, "runs": runs}
    atomic_write_text(Path(args.out), json.dumps(report, indent=1))
    for r in runs:
        print(f"{r['sampler']} weight {r['sgl_weight']}: valid NDCG@20 by epoch {r['valid_ndcg@20']}")


if __name__ == "__main__":
    main()
