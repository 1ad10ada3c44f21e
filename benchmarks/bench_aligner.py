"""Seconds per LLM-sampler training epoch with the aligner in float32 vs bfloat16 (autocast);
writes benchmarks/results/aligner.json.

    python benchmarks/bench_aligner.py                  # preset "default", every bank in its store
    python benchmarks/bench_aligner.py --threads 1 2 --epochs 2

For each negative bank (notebooks 02/03 build them), LightGCN with that bank's sampler
(alignment on, BPR kept out of the projector) trains ``--epochs`` epochs from the same seed
with ``negatives.aligner_dtype`` float32 and bfloat16, at each thread count; the median epoch
time and the first epoch's losses are recorded (the losses show how close the two paths are).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hnlmrec_lib import notebook  # noqa: E402
from hnlmrec_lib.artifacts import atomic_write_text  # noqa: E402
from hnlmrec_lib.cf import build_backbone  # noqa: E402
from hnlmrec_lib.negatives.bank import list_banks  # noqa: E402
from hnlmrec_lib.negatives.methods import sampler_factory  # noqa: E402
from hnlmrec_lib.train import TrainingView, train_epoch  # noqa: E402

OUT = ROOT / "benchmarks" / "results" / "aligner.json"


def epochs(cfg, store, view, bank: str, epochs: int) -> tuple[list[float], dict]:
    torch.manual_seed(0)
    model = build_backbone("lightgcn", view, cfg.cf)
    sampler = sampler_factory(bank, True, False)(view, cfg, store, model)
    opt = torch.optim.Adam([*model.parameters(), *sampler.parameters()], lr=model.lr)
    pairs = torch.from_numpy(view.train)
    rng, gen = np.random.default_rng(0), torch.Generator().manual_seed(0)
    seconds, first = [], {}
    for _ in range(epochs):
        t0 = time.perf_counter()
        stats, _ = train_epoch(model, sampler, opt, pairs, cfg.cf.batch_size, rng, gen)
        seconds.append(time.perf_counter() - t0)
        first = first or {k: round(v, 6) for k, v in stats.items()}
    return seconds, first


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="default")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--epochs", type=int, default=2)
    args = ap.parse_args()
    session = notebook.start(args.preset)
    view = TrainingView.from_data(session.data())
    result = {"preset": args.preset, "cpus": os.cpu_count(), "epochs": args.epochs,
              "loadavg_1m_start": os.getloadavg()[0], "banks": {}}
    for bank in list_banks(session.store):
        rows = result["banks"][bank] = {}
        for threads in args.threads:
            torch.set_num_threads(threads)
            for dtype in ("float32", "bfloat16"):
                cfg = dataclasses.replace(session.cfg, negatives=dataclasses.replace(
                    session.cfg.negatives, aligner_dtype=dtype))
                seconds, first = epochs(cfg, session.store, view, bank, args.epochs)
                rows[f"{dtype}/{threads}threads"] = {"epoch_seconds": round(statistics.median(seconds), 3),
                                                     "first_epoch_losses": first}
            pair = [rows[f"{d}/{threads}threads"]["epoch_seconds"] for d in ("float32", "bfloat16")]
            rows[f"speedup/{threads}threads"] = round(pair[0] / pair[1], 2)
    result["loadavg_1m_end"] = os.getloadavg()[0]
    atomic_write_text(OUT, json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
