"""Benchmark the LLM layer on this machine; writes benchmarks/results/llm.json.

    python benchmarks/bench_llm.py                    # both bundled LLMs + MiniLM
    python benchmarks/bench_llm.py --threads 1 2 --dtypes float32 bfloat16

Per bundled LLM: cold load (GGUF dequantisation) and save seconds, cached load seconds, and
whether the cache reproduces the GGUF logits exactly; generation tokens/s for a batch of
prompts with 64 new tokens (greedy; chat prompts for SmolLM2, few-shot completion for
Gemma-3 base). Embedder: load seconds and sentences/s. The load average is recorded because
the machine is shared.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

# Idle OpenMP threads must sleep, not spin: on a shared 2-core machine a spinning thread
# steals its partner's time slice and small matmuls slow down ~100x (set before torch).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hnlmrec_lib.artifacts import atomic_write_text  # noqa: E402
from hnlmrec_lib.config import LLMConfig  # noqa: E402
from hnlmrec_lib.runtime import machine_facts  # noqa: E402
from hnlmrec_lib.llm.generate import generate  # noqa: E402
from hnlmrec_lib.llm.loading import (  # noqa: E402
    BUNDLED, cached_model_dir, load_causal_lm, load_gguf, save_dequantised,
)

TOPICS = ["crime thrillers", "animated family films", "space operas", "romantic comedies",
          "war documentaries", "silent classics", "horror from the 1980s", "musicals"]
FEWSHOT = ('Input: a user who loves westerns\nOutput: {"summarization": "A fan of westerns.", '
           '"reasoning": "Westerns dominate the history."}\n\nInput: a user who loves {topic}\n'
           'Output: {"summarization": "')


def prompts_for(name: str, n: int) -> list:
    topics = [TOPICS[i % len(TOPICS)] for i in range(n)]
    if name == "gemma3-270m":  # a base model: few-shot completion text
        return [FEWSHOT.replace("{topic}", t) for t in topics]
    return [f"Describe in two sentences a movie viewer who loves {t}." for t in topics]


def bench_load(name: str, scratch: Path) -> tuple[dict, object, object]:
    """Cold GGUF load, save to a fresh cache, cached reload; compare logits."""
    t0 = time.perf_counter()
    gguf_model, gguf_tok = load_gguf(BUNDLED[name].gguf_path(scratch))
    cold = time.perf_counter() - t0
    t0 = time.perf_counter()
    save_dequantised(gguf_model, gguf_tok, cached_model_dir(name, scratch))
    save = time.perf_counter() - t0
    t0 = time.perf_counter()
    model, tok = load_causal_lm(name, scratch)
    cached = time.perf_counter() - t0
    text = "The user enjoys crime thrillers such as Heat (1995) and Fargo (1996)."
    ids = gguf_tok([text], return_tensors="pt").input_ids
    with torch.no_grad():
        diff = (model(ids).logits - gguf_model(ids).logits).abs().max().item()
    same_ids = torch.equal(ids, tok([text], return_tensors="pt").input_ids)
    size = sum(f.stat().st_size for f in cached_model_dir(name, scratch).iterdir())
    return ({"cold_gguf_load_s": round(cold, 2), "cache_save_s": round(save, 2),
             "cached_load_s": round(cached, 2), "cache_mb": round(size / 2**20),
             "cache_max_abs_logit_diff": diff, "cache_same_token_ids": same_ids},
            model, tok)


def bench_generate(model, tok, name: str, batch: int, new_tokens: int, reps: int) -> dict:
    cfg = LLMConfig(max_new_tokens=new_tokens, batch_size=batch)
    prompts = prompts_for(name, batch)
    generate(model, tok, prompts[:2], LLMConfig(max_new_tokens=4, batch_size=2))  # warm-up
    best, tokens = float("inf"), 0
    for _ in range(reps):
        t0 = time.perf_counter()
        outs = generate(model, tok, prompts, cfg)
        best = min(best, time.perf_counter() - t0)
        tokens = sum(len(tok(o, add_special_tokens=False).input_ids) for o in outs)
    return {"batch": batch, "max_new_tokens": new_tokens, "seconds": round(best, 2),
            "generated_tokens": tokens, "tokens_per_s": round(tokens / best, 1),
            "sample_output": outs[0][:160]}


def bench_embedder(n: int) -> dict:
    from hnlmrec_lib.llm.embedder import TextEmbedder

    t0 = time.perf_counter()
    emb = TextEmbedder("all-minilm-l6-v2", batch_size=64)
    load = time.perf_counter() - t0
    texts = [f"A viewer who enjoys {TOPICS[i % 8]} and dislikes {TOPICS[(i * 3 + 1) % 8]}, "
             f"profile number {i}." for i in range(n)]
    emb.embed(texts[:64])
    t0 = time.perf_counter()
    emb.embed(texts)
    secs = time.perf_counter() - t0
    return {"load_s": round(load, 2), "sentences": n, "seconds": round(secs, 2),
            "sentences_per_s": round(n / secs, 1), "dim": emb.dim}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="*", default=list(BUNDLED))
    ap.add_argument("--threads", nargs="*", type=int, default=[1, 2])
    ap.add_argument("--dtypes", nargs="*", default=["float32", "bfloat16"])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--sentences", type=int, default=512)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "llm.json"))
    args = ap.parse_args()

    result: dict = {"machine": {**machine_facts(),
                                "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
                                "loadavg_start": os.getloadavg()[0]}, "llms": {}}
    torch.set_num_threads(max(args.threads))
    with tempfile.TemporaryDirectory(prefix="bench_llm_") as tmp:
        for name in args.models:
            print(f"[{name}] cold load ...", flush=True)
            load, model, tok = bench_load(name, Path(tmp) / name)
            entry = {"load": load, "generation": []}
            for dtype in args.dtypes:
                m = model.to(getattr(torch, dtype))
                for threads in args.threads:
                    torch.set_num_threads(threads)
                    run = bench_generate(m, tok, name, args.batch, args.new_tokens, args.reps)
                    run.update(dtype=dtype, threads=threads, loadavg=os.getloadavg()[0])
                    print(f"[{name}] {dtype} x{threads}: {run['tokens_per_s']} tok/s", flush=True)
                    entry["generation"].append(run)
            result["llms"][name] = entry
            del model, m
    torch.set_num_threads(max(args.threads))
    result["embedder"] = bench_embedder(args.sentences)
    print(f"[embedder] {result['embedder']['sentences_per_s']} sentences/s", flush=True)
    result["machine"]["loadavg_end"] = os.getloadavg()[0]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, json.dumps(result, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
