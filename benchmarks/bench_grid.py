"""Wall time of a grid of real runs, one process with all threads vs worker processes;
writes benchmarks/results/grid.json.

    python benchmarks/bench_grid.py                     # preset "default", 20 epochs per run
    python benchmarks/bench_grid.py --epochs 10 --workers 2

Every run trains exactly ``--epochs`` epochs (early stopping off), so both layouts do the
same work: first all runs in this process with ``cf.threads`` threads (``cf.workers = 1``),
then the same runs in ``--workers`` spawned processes with ``cf.threads // workers``
threads each (``experiments.run_grid``). Each layout trains into its own scratch store
(the LLM methods read the negative banks of the preset's store through symlinks), and the
valid metrics of both are compared: a run's result must not depend on where it ran
(equal when the thread counts match; float sums may differ in the last bits otherwise).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hnlmrec_lib import experiments, notebook  # noqa: E402
from hnlmrec_lib.artifacts import ArtifactStore, atomic_write_text  # noqa: E402

OUT = ROOT / "benchmarks" / "results" / "grid.json"
ID_RUNS = [("mf", "dns"), ("lightgcn", "rns"), ("lightgcn", "mixgcf"), ("ngcf", "rns"), ("sgl", "rns")]
LLM_RUNS = [("lightgcn", "hnlmrec+align@nobpr"), ("lightgcn", "naive-gemma3-270m+align@nobpr")]
SHARED = ("dataset", "negative_banks", "negatives_choice", "e_llm", "text_negatives", "text_embeddings")


def scratch_store(real: ArtifactStore, tmp: str) -> ArtifactStore:
    store = ArtifactStore(Path(tmp) / "store")
    store.root.mkdir(parents=True, exist_ok=True)
    for kind in SHARED:
        if (real.root / kind).exists():
            (store.root / kind).symlink_to(real.root / kind)
    return store


def timed_grid(cfg, data, real: ArtifactStore, specs, workers: int) -> tuple[float, list[dict]]:
    cfg = dataclasses.replace(cfg, cf=dataclasses.replace(cfg.cf, workers=workers))
    with tempfile.TemporaryDirectory() as tmp:
        store = scratch_store(real, tmp)
        experiments.finished_llm_methods(cfg, store)
        t0 = time.perf_counter()
        records = experiments.run_grid(cfg, data, store, specs, desc=f"{workers} worker(s)")
        return time.perf_counter() - t0, records


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="default")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    session = notebook.start(args.preset, {"cf.epochs": args.epochs, "cf.min_epochs": args.epochs})
    cfg, data = session.cfg, session.data()
    known = set(experiments.finished_llm_methods(cfg, session.store)) | set(experiments._METHODS)
    runs = ID_RUNS + [r for r in LLM_RUNS if r[1] in known]
    specs = [experiments.RunSpec(b, m, 0) for b, m in runs]
    load0 = os.getloadavg()[0]
    one_seconds, one = timed_grid(cfg, data, session.store, specs, 1)
    many_seconds, many = timed_grid(cfg, data, session.store, specs, args.workers)
    result = {
        "preset": args.preset, "cpus": os.cpu_count(), "threads": cfg.cf.threads,
        "epochs_per_run": args.epochs, "runs": [f"{b}/{m}" for b, m in runs],
        "one_process_seconds": round(one_seconds, 1),
        f"{args.workers}_workers_seconds": round(many_seconds, 1),
        "speedup": round(one_seconds / many_seconds, 2),
        "per_run_train_seconds": {
            r1["label"]: {"one_process": round(r1["train_seconds"], 1), "worker": round(r2["train_seconds"], 1)}
            for r1, r2 in zip(one, many)},
        "max_abs_valid_ndcg20_difference": max(abs(r1["valid"]["ndcg@20"] - r2["valid"]["ndcg@20"])
                                               for r1, r2 in zip(one, many)),
        "loadavg_1m_start": load0, "loadavg_1m_end": os.getloadavg()[0],
    }
    atomic_write_text(OUT, json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
