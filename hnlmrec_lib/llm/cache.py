"""A resumable cache of LLM calls, and structured (JSON) generation with retries.

One call = one prompt generated once under one set of decoding settings by one model. Its
record (prompt, settings, raw output, parse result) is appended to a JSON-lines log in the
artifact store as soon as its batch finishes, so a killed run resumes without redoing
finished calls. Outputs are re-parsed on read, so a parser fix applies to cached calls.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from hnlmrec_lib.artifacts import ArtifactStore, JsonlLog, stable_hash
from hnlmrec_lib.config import LLMConfig
from hnlmrec_lib.llm.generate import Prompt, decoding_settings, generate
from hnlmrec_lib.llm.jsonparse import extract_json

GenerateFn = Callable[..., list[str]]
Validator = Callable[[dict], str | None]
RETRY_TEMPERATURE = 0.7
RETRY_SEED_STEP = 1000


class LLMCallCache:
    """Finished LLM calls keyed by (model id, prompt, decoding settings)."""

    def __init__(self, store: ArtifactStore | str | Path, name: str = "calls"):
        root = store.root if isinstance(store, ArtifactStore) else Path(store)
        self.log = JsonlLog(root / "llm_calls" / f"{name}.jsonl")
        self._records: dict[str, dict] = {r["key"]: r for r in self.log.read() if "key" in r}

    @staticmethod
    def key(model_id: str, prompt: Prompt, settings: dict) -> str:
        return stable_hash({"model": model_id, "prompt": prompt, "settings": settings}, 24)

    def get(self, key: str) -> dict | None:
        return self._records.get(key)

    def put(self, records: list[dict]) -> None:
        """Append finished calls (one fsynced write) and index them."""
        self.log.append(records)
        for r in records:
            self._records[r["key"]] = r

    def __len__(self) -> int:
        return len(self._records)

    def __contains__(self, key: str) -> bool:
        return key in self._records

    def records(self) -> list[dict]:
        return list(self._records.values())


@dataclass
class StructuredAnswer:
    """The outcome for one prompt after up to ``1 + max_retries`` attempts."""

    parsed: dict | None
    raw: str
    attempts: int
    ok: bool
    errors: list[str] = field(default_factory=list)  # one reason per failed attempt
    cached: bool = True                                # every attempt came from the cache


def attempt_settings(cfg: LLMConfig, attempt: int) -> dict[str, Any]:
    """Attempt 0 uses the configured decoding; retries sample with a fresh seed."""
    if attempt == 0:
        return decoding_settings(cfg)
    return decoding_settings(cfg, seed=cfg.seed + RETRY_SEED_STEP * attempt,
                             temperature=max(cfg.temperature, RETRY_TEMPERATURE))


def structured_generate(
    model: Any,
    tok: Any,
    prompts: Sequence[Prompt],
    required_keys: Sequence[str],
    cfg: LLMConfig,
    cache: LLMCallCache,
    model_id: str,
    *,
    validate: Validator | None = None,
    generate_fn: GenerateFn = generate,
    chunk_size: int | None = None,
    progress: bool = False,
    **gen_kwargs: Any,
) -> list[StructuredAnswer]:
    """Generate, parse and validate one JSON object per prompt, retrying failures.

    Uncached calls run in chunks of ``chunk_size`` prompts (default ``cfg.batch_size``) and
    each chunk is appended to the cache when it finishes. A prompt that still fails after
    ``cfg.max_retries`` retries gets ``parsed=None, ok=False`` and the run goes on.
    ``validate(obj)`` may return a reason to reject a parsed object (e.g. an empty field).
    ``gen_kwargs`` (e.g. ``stop``, ``use_chat_template``) go to ``generate_fn`` and into the
    cache key.
    """
    answers = [StructuredAnswer(None, "", 0, False) for _ in prompts]
    pending = list(range(len(prompts)))
    extra = {k: (list(v) if isinstance(v, tuple) else v) for k, v in sorted(gen_kwargs.items())}
    for attempt in range(cfg.max_retries + 1):
        if not pending:
            break
        settings = {**attempt_settings(cfg, attempt), **extra}
        keys = [LLMCallCache.key(model_id, prompts[i], settings) for i in pending]
        missing = list(dict.fromkeys(k for k in keys if k not in cache))
        fresh = set(missing)
        if missing:
            first = {k: i for k, i in zip(reversed(keys), reversed(pending))}  # key -> prompt
            _run_missing(model, tok, [first[k] for k in missing], missing, prompts, settings,
                         cfg, cache, model_id, required_keys, generate_fn, chunk_size,
                         progress, gen_kwargs, attempt)
        still = []
        for i, k in zip(pending, keys):
            ans, rec = answers[i], cache.get(k)
            ans.attempts, ans.raw = attempt + 1, rec["raw"]
            ans.cached = ans.cached and k not in fresh
            obj, reason = check(rec["raw"], required_keys, validate)
            if obj is not None:
                ans.parsed, ans.ok = obj, True
            else:
                ans.errors.append(reason)
                still.append(i)
        pending = still
    return answers


def check(raw: str, required_keys: Sequence[str], validate: Validator | None) -> tuple[dict | None, str]:
    """Parse ``raw`` and apply ``validate``; never raises."""
    obj, reason = extract_json(raw, required_keys)
    if obj is None or validate is None:
        return obj, reason
    try:
        problem = validate(obj)
    except Exception as err:  # a validator bug must not stop the run
        problem = f"validator error: {type(err).__name__}: {err}"
    return (None, f"rejected: {problem}") if problem else (obj, "")


def _run_missing(model: Any, tok: Any, idx: list[int], keys: list[str], prompts: Sequence[Prompt],
                 settings: dict, cfg: LLMConfig, cache: LLMCallCache, model_id: str,
                 required_keys: Sequence[str], generate_fn: GenerateFn, chunk_size: int | None,
                 progress: bool, gen_kwargs: dict, attempt: int) -> None:
    """Generate the uncached calls chunk by chunk, appending each finished chunk.

    Chunks hold prompts of similar length (sorted by characters), so a batch is not padded
    to one long prompt: user-profile prompts range from ~300 to ~900 tokens.
    """
    order = sorted(range(len(idx)), key=lambda j: _prompt_chars(prompts[idx[j]]))
    idx, keys = [idx[j] for j in order], [keys[j] for j in order]
    size = max(1, chunk_size or cfg.batch_size)
    chunks = range(0, len(idx), size)
    if progress:
        from tqdm.auto import tqdm

        chunks = tqdm(chunks, desc=f"LLM calls (attempt {attempt + 1})", unit="chunk")
    for start in chunks:
        part, part_keys = idx[start:start + size], keys[start:start + size]
        t0 = time.perf_counter()
        raws = generate_fn(model, tok, [prompts[i] for i in part], cfg,
                           seed=settings["seed"], temperature=settings["temperature"],
                           **gen_kwargs)
        seconds = (time.perf_counter() - t0) / max(1, len(part))
        records = []
        for i, k, raw in zip(part, part_keys, raws):
            obj, reason = extract_json(raw, required_keys)
            records.append({
                "key": k, "model_id": model_id, "prompt": prompts[i], "settings": settings,
                "attempt": attempt, "raw": raw, "ok": obj is not None, "error": reason,
                "seconds": round(seconds, 4),
            })
        cache.put(records)


def _prompt_chars(prompt: Prompt) -> int:
    """Length of a prompt (text or chat messages) in characters, a proxy for its tokens."""
    if isinstance(prompt, str):
        return len(prompt)
    return sum(len(str(m.get("content", ""))) for m in prompt)


def summarize(answers: Sequence[StructuredAnswer]) -> dict[str, Any]:
    """Counts for a report: how many parsed, on which attempt, and the failure reasons."""
    n = len(answers)
    reasons: dict[str, int] = {}
    for a in answers:
        if not a.ok and a.errors:
            head = a.errors[-1].split(" (")[0]
            reasons[head] = reasons.get(head, 0) + 1
    return {
        "n": n,
        "ok": sum(a.ok for a in answers),
        "ok_rate": (sum(a.ok for a in answers) / n) if n else float("nan"),
        "first_try_ok": sum(a.ok and a.attempts == 1 for a in answers),
        "mean_attempts": (sum(a.attempts for a in answers) / n) if n else float("nan"),
        "from_cache": sum(a.cached for a in answers),
        "failure_reasons": reasons,
    }
