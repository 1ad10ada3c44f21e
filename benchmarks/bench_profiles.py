"""Cold vs cached time of all MovieLens-100K profiles on a preset; writes results/profiles.json.

The cold time is the generation time recorded with every cached LLM call of this model (it
survives an interrupted, resumed build); the warm time is measured now by building again
from the cache. Run it after notebook 01 (or it builds cold here first).
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from hnlmrec_lib import notebook  # noqa: E402
from hnlmrec_lib.profiles import build_profiles  # noqa: E402

OUT = Path(__file__).resolve().parent / "results" / "profiles.json"

if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="default")
    args = ap.parse_args()
    session = notebook.start(args.preset)
    data = session.data()
    t0 = time.perf_counter()
    profiles = build_profiles(session.cfg, data, session.store)
    warm = time.perf_counter() - t0
    report = profiles.report()
    calls = [json.loads(line) for line in
             (session.store.root / "llm_calls" / "profiles.jsonl").read_text().splitlines() if line]
    mine = [c for c in calls if c.get("model_id") == profiles.model_id]
    result = {
        "preset": args.preset, "model": profiles.model_id,
        "items": int(data.n_items), "users": int(data.n_users),
        "llm_calls": len(mine),
        "cold_generation_seconds": round(sum(c.get("seconds", 0.0) for c in mine), 1),
        "warm_seconds": round(warm, 2),
        "json_ok_rate": report["json_ok_rate"].round(4).to_dict(),
        "mean_attempts": report["mean_attempts"].round(3).to_dict(),
        "note": "cold time was measured on a shared, loaded 2-core machine",
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))
