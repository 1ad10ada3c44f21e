"""Shared-prefix KV cache in generation: speed and agreement; writes results/prefix_cache.json.

    python benchmarks/bench_prefix_cache.py                 # 64 item + 64 user profile prompts
    python benchmarks/bench_prefix_cache.py --n 32 --preset default

Takes a seeded sample of the study's real item- and user-profile prompts (S_v, S_u of
App. E (v2), exactly as the default LLM receives them; user prompts quote the generated item
profiles, so run it after notebook 01), generates them cold with and without the
shared-prefix cache (``generate(prefix_cache=...)``), and records seconds, prompt tokens,
the share of identical completions, and the full-catalogue cold time this implies
(per-prompt seconds x number of items and users). The machine is shared: the load average
is recorded with each timing.
"""
from __future__ import annotations

import argparse
import json
import os
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
from hnlmrec_lib.llm.generate import generate, has_chat_template, render_prompt  # noqa: E402
from hnlmrec_lib.llm.loading import load_causal_lm  # noqa: E402
from hnlmrec_lib.llm_requests import FEWSHOT_STOP  # noqa: E402
from hnlmrec_lib.profiles import (build_profiles, item_info, item_profile_prompt,  # noqa: E402
                                  user_prompt_for)


def study_prompts(cfg, data, item_text: list[str], n: int, seed: int) -> dict[str, list]:
    rng = np.random.default_rng(seed)
    items = rng.choice(data.n_items, size=min(n, data.n_items), replace=False)
    users = rng.choice(data.n_users, size=min(n, data.n_users), replace=False)
    return {
        "item": [item_profile_prompt(data.name, item_info(data, int(i)),
                                     list(data.items.iloc[int(i)]["reviews"])) for i in items],
        "user": [user_prompt_for(data, int(u), item_text, cfg.profiles.max_items_per_user, cfg.seed,
                                 cfg.profiles.description_words)
                 for u in users],
    }


def timed(model, tok, texts, cfg, use_cache: bool) -> tuple[float, list[str]]:
    kwargs = {} if has_chat_template(tok) else {"stop": list(FEWSHOT_STOP), "use_chat_template": False}
    t0 = time.perf_counter()
    out = generate(model, tok, texts, cfg.llm, prefix_cache=use_cache, **kwargs)
    return time.perf_counter() - t0, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="default")
    ap.add_argument("--n", type=int, default=64, help="prompts per kind (item, user)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "prefix_cache.json"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    session = notebook.start(args.preset)
    cfg, data = session.cfg, session.data()
    model, tok = load_causal_lm(cfg.llm.model, session.store, tiny_random=cfg.llm.tiny_random,
                                dtype=cfg.llm.dtype)
    report = {"preset": args.preset, "model": cfg.llm.model, "dtype": cfg.llm.dtype,
              "batch_size": cfg.llm.batch_size, "max_new_tokens": cfg.llm.max_new_tokens,
              "threads": args.threads, "kinds": {}}
    counts = {"item": data.n_items, "user": data.n_users}
    item_text = build_profiles(cfg, data, session.store).item_text
    for kind, prompts in study_prompts(cfg, data, item_text, args.n, args.seed).items():
        texts = [p.messages() if has_chat_template(tok) else p.completion_text() for p in prompts]
        tokens = [len(tok(render_prompt(tok, t, None if has_chat_template(tok) else False)).input_ids)
                  for t in texts]
        row = {"prompts": len(texts), "mean_prompt_tokens": float(np.mean(tokens))}
        outs = {}
        for use_cache in (False, True):
            seconds, outs[use_cache] = timed(model, tok, texts, cfg, use_cache)
            tag = "prefix_cache" if use_cache else "plain"
            row[tag] = {"seconds": round(seconds, 2), "loadavg_1m": os.getloadavg()[0],
                        "implied_all_" + kind + "s_seconds": round(seconds / len(texts) * counts[kind], 1)}
        row["speedup"] = round(row["plain"]["seconds"] / row["prefix_cache"]["seconds"], 3)
        row["identical_completions"] = float(np.mean([a == b for a, b in zip(outs[False], outs[True])]))
        report["kinds"][kind] = row
        print(kind, json.dumps(row))
    for tag in ("plain", "prefix_cache"):
        report[f"implied_all_profiles_cold_seconds_{tag}"] = round(sum(
            report["kinds"][k][tag][f"implied_all_{k}s_seconds"] for k in report["kinds"]), 1)
    atomic_write_text(Path(args.out), json.dumps(report, indent=1))
    print({k: v for k, v in report.items() if k.startswith("implied")})


if __name__ == "__main__":
    main()
