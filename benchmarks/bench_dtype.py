"""float32 vs bfloat16 on this CPU, for the aligner; writes benchmarks/results/dtype.json.

    python benchmarks/bench_dtype.py             # one thread, 2 timed epochs per cell

Whether bfloat16 pays depends on the CPU: with AVX512-BF16 or AMX it is faster, without them
torch emulates it. This times (1) one aligner-sized linear layer (the naive bank's attention
in-projection: 887 users x 3 candidates, 384 -> 1152) and (2) LLM-sampler epochs of LightGCN on
MovieLens-100K with random banks of the two shapes the study uses (naive prompting: 3 text
candidates of 384 dims per user; HNLMRec: one 640-dim pair embedding per user), with
``negatives.aligner_dtype`` float32 and bfloat16. ``machine.native_bf16`` says what ``auto``
picks here (``hnlmrec_lib/runtime.py``).
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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from hnlmrec_lib.artifacts import atomic_write_text  # noqa: E402
from hnlmrec_lib.cf.backbones import build_backbone  # noqa: E402
from hnlmrec_lib.config import load_preset  # noqa: E402
from hnlmrec_lib.data import load_dataset  # noqa: E402
from hnlmrec_lib.negatives.llm_sampler import LLMNegativeSampler  # noqa: E402
from hnlmrec_lib.runtime import machine_facts  # noqa: E402
from hnlmrec_lib.train import TrainingView, train_epoch  # noqa: E402

OUT = ROOT / "benchmarks" / "results" / "dtype.json"
BANKS = {"naive (K=3, 384-d)": (3, 384, True), "hnlmrec (K=1, 640-d)": (1, 640, False)}


def time_linear(dtype: torch.dtype, reps: int = 5) -> float:
    x, w = torch.randn(887 * 3, 384, dtype=dtype), torch.randn(1152, 384, dtype=dtype)
    torch.nn.functional.linear(x, w)
    start = time.perf_counter()
    for _ in range(reps):
        torch.nn.functional.linear(x, w)
    return (time.perf_counter() - start) / reps


def time_epochs(cfg, view, k: int, dim: int, bpr: bool, dtype: str, epochs: int) -> float:
    cfg = dataclasses.replace(cfg, negatives=dataclasses.replace(cfg.negatives, aligner_dtype=dtype))
    torch.manual_seed(0)
    model = build_backbone("lightgcn", view, cfg.cf)
    bank = torch.randn(view.n_users, k, dim)
    sampler = LLMNegativeSampler.from_config(view, bank, cfg, model.out_dim, bpr,
                                             row_of_user=torch.arange(view.n_users))
    opt = torch.optim.Adam([*model.parameters(), *sampler.parameters()], lr=model.lr)
    pairs = torch.from_numpy(view.train)
    rng, gen = np.random.default_rng(0), torch.Generator().manual_seed(0)
    train_epoch(model, sampler, opt, pairs, cfg.cf.batch_size, rng, gen)   # warm-up
    start = time.perf_counter()
    for _ in range(epochs):
        train_epoch(model, sampler, opt, pairs, cfg.cf.batch_size, rng, gen)
    return (time.perf_counter() - start) / epochs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="default")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = load_preset(args.preset)
    view = TrainingView.from_data(load_dataset(cfg))
    result: dict = {"machine": machine_facts(), "threads": args.threads,
                    "auto_picks": cfg.negatives.aligner_dtype,
                    "linear_ms": {d: round(1000 * time_linear(getattr(torch, d)), 2)
                                  for d in ("float32", "bfloat16")},
                    "llm_sampler_epoch_seconds": {}}
    for name, (k, dim, bpr) in BANKS.items():
        result["llm_sampler_epoch_seconds"][name] = {
            d: round(time_epochs(cfg, view, k, dim, bpr, d, args.epochs), 3)
            for d in ("float32", "bfloat16")}
        print(name, result["llm_sampler_epoch_seconds"][name], flush=True)
    print(json.dumps(result["linear_ms"]))
    atomic_write_text(Path(args.out), json.dumps(result, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
