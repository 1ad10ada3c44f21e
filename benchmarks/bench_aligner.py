"""Seconds per LLM-sampler training epoch with the aligner in float32 vs bfloat16 (autocast);
writes benchmarks/results/aligner.json.

    python benchmarks/bench_aligner.py                  # preset "default", every bank in its store
    python benchmarks/bench_aligner.py --threads 1 2 --epochs 2
    python benchmarks/bench_aligner.py --random-banks --threads 1 --out benchmarks/results/dtype.json

For each negative bank (notebooks 02/03 build them), LightGCN with that bank's sampler
(alignment on, BPR kept out of the projector) trains ``--epochs`` epochs from the same seed
with ``negatives.aligner_dtype`` float32 and bfloat16, at each thread count; the median epoch
time and the first epoch's losses are recorded (the losses show how close the two paths are).
``--random-banks`` needs no store: random banks of the study's two shapes (naive prompting:
3 text candidates of 384 dims per user; HNLMRec: one 640-dim pair embedding per user). Whether
bf16 pays depends on the CPU (``machine.native_bf16``: what ``auto`` picks), so the result also
times one aligner-sized linear layer (887 users x 3 candidates, 384 -> 1152) in both dtypes.
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
from hnlmrec_lib.negatives.llm_sampler import LLMNegativeSampler  # noqa: E402
from hnlmrec_lib.negatives.methods import sampler_factory  # noqa: E402
from hnlmrec_lib.runtime import machine_facts  # noqa: E402
from hnlmrec_lib.train import TrainingView, train_epoch  # noqa: E402

OUT = ROOT / "benchmarks" / "results" / "aligner.json"
RANDOM_BANKS = {"random naive (K=3, 384-d)": (3, 384), "random hnlmrec (K=1, 640-d)": (1, 640)}


def random_bank_sampler(k: int, dim: int):
    """make_sampler(view, cfg, store, model) over a seeded random bank, one row per user."""
    def make(view, cfg, store, model):
        bank = torch.randn(view.n_users, k, dim, generator=torch.Generator().manual_seed(0))
        return LLMNegativeSampler.from_config(view, bank, cfg, model.out_dim, False,
                                              row_of_user=torch.arange(view.n_users))
    return make


def time_linear(dtype: torch.dtype, reps: int = 5) -> float:
    x, w = torch.randn(887 * 3, 384, dtype=dtype), torch.randn(1152, 384, dtype=dtype)
    torch.nn.functional.linear(x, w)
    t0 = time.perf_counter()
    for _ in range(reps):
        torch.nn.functional.linear(x, w)
    return (time.perf_counter() - t0) / reps


def epochs(cfg, store, view, make_sampler, epochs: int) -> tuple[list[float], dict]:
    torch.manual_seed(0)
    model = build_backbone("lightgcn", view, cfg.cf)
    sampler = make_sampler(view, cfg, store, model)
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
    ap.add_argument("--random-banks", action="store_true", help="random banks of the study's shapes")
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args()
    session = notebook.start(args.preset)
    view = TrainingView.from_data(session.data())
    result = {"preset": args.preset, "machine": machine_facts(), "epochs": args.epochs,
              "auto_picks": session.cfg.negatives.aligner_dtype, "loadavg_1m_start": os.getloadavg()[0],
              "banks": {}}
    if args.random_banks:
        torch.set_num_threads(min(args.threads))
        result["linear_ms"] = {d: round(1000 * time_linear(getattr(torch, d)), 2)
                               for d in ("float32", "bfloat16")}
        makers = {name: random_bank_sampler(k, dim) for name, (k, dim) in RANDOM_BANKS.items()}
    else:
        makers = {bank: sampler_factory(bank, True, False) for bank in list_banks(session.store)}
    for bank, make_sampler in makers.items():
        rows = result["banks"][bank] = {}
        for threads in args.threads:
            torch.set_num_threads(threads)
            for dtype in ("float32", "bfloat16"):
                cfg = dataclasses.replace(session.cfg, negatives=dataclasses.replace(
                    session.cfg.negatives, aligner_dtype=dtype))
                seconds, first = epochs(cfg, session.store, view, make_sampler, args.epochs)
                rows[f"{dtype}/{threads}threads"] = {"epoch_seconds": round(statistics.median(seconds), 3),
                                                     "first_epoch_losses": first}
            pair = [rows[f"{d}/{threads}threads"]["epoch_seconds"] for d in ("float32", "bfloat16")]
            rows[f"speedup/{threads}threads"] = round(pair[0] / pair[1], 2)
    result["loadavg_1m_end"] = os.getloadavg()[0]
    atomic_write_text(Path(args.out), json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
