"""Naive-prompting generation: throughput and the wall time of the preset's budget, cold and
cached; writes results/negatives.json. Run after notebook 02 (or it generates cold here).

Cold time is the generation time recorded with every cached LLM call of each model (it
survives an interrupted, resumed run); cached time is measured now by regenerating from the
cache.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from hnlmrec_lib import notebook  # noqa: E402
from hnlmrec_lib.negatives.prompting import generate_text_negatives  # noqa: E402
from hnlmrec_lib.profiles import build_profiles  # noqa: E402

OUT = Path(__file__).resolve().parent / "results" / "negatives.json"

if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="default")
    args = ap.parse_args()
    session = notebook.start(args.preset)
    cfg, store = session.cfg, session.store
    data = session.data()
    profiles = build_profiles(cfg, data, store)
    log = store.root / "llm_calls" / "hard_negatives.jsonl"
    calls = [json.loads(x) for x in log.read_text().splitlines() if x] if log.exists() else []
    result = {"preset": args.preset, "unit": cfg.negatives.unit,
              "pairs_per_user": cfg.negatives.pairs_per_user, "k": cfg.negatives.k_candidates,
              "llms": {}, "note": "cold times were measured on a shared, loaded 2-core machine"}
    for llm in cfg.negatives.llms:
        t0 = time.perf_counter()
        neg = generate_text_negatives(cfg, data, profiles, store, llm)
        cached = time.perf_counter() - t0
        mine = [c for c in calls if c.get("model_id", "").startswith(llm)]
        cold = sum(c.get("seconds", 0.0) for c in mine)
        result["llms"][llm] = {
            "prompts": int(len(neg.pairs)), "llm_calls": len(mine),
            "cold_generation_seconds": round(cold, 1),
            "prompts_per_second_cold": round(len(mine) / cold, 3) if cold else None,
            "cached_seconds": round(cached, 2),
            "json_ok_rate": round(float(sum(n is not None for n in neg.names) / max(1, len(neg.names))), 4),
        }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))
