"""Naive-prompting generation: throughput and the wall time of the preset's budget, cold and
cached; writes results/negatives.json. Run after notebook 02 (or it generates cold here).

Cold time is the generation time the artifact recorded when its prompts were answered (the
sum over its LLM calls, so it survives an interrupted, resumed run; calls cached for other,
older prompts do not count); cached time is measured now by loading it again.
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
    result = {"preset": args.preset, "unit": cfg.negatives.unit,
              "pairs_per_user": cfg.negatives.pairs_per_user, "k": cfg.negatives.k_candidates,
              "llms": {}, "note": "cold time = generation seconds recorded with the calls when notebook 02 made them"}
    for llm in cfg.negatives.llms:
        t0 = time.perf_counter()
        neg = generate_text_negatives(cfg, data, profiles, store, llm)
        cached = time.perf_counter() - t0
        cold = float(neg.seconds)
        result["llms"][llm] = {
            "prompts": int(len(neg.pairs)),
            "cold_generation_seconds": round(cold, 1),
            "prompts_per_second_cold": round(len(neg.pairs) / cold, 3) if cold else None,
            "cached_seconds": round(cached, 3),
            "json_ok_rate": round(float(sum(n is not None for n in neg.names) / max(1, len(neg.names))), 4),
        }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))
