"""Batched text generation with left padding, greedy or seeded sampling.

A prompt is either a string or a list of chat messages (``{"role", "content"}``). With a
tokenizer that has a chat template (SmolLM2-Instruct), both are rendered through it (a string
becomes one user message). Without one (Gemma-3-270M base), a string is used verbatim, so the
caller supplies few-shot completion text, and messages are joined as plain "Role: text" lines.
"""
from __future__ import annotations

import warnings
from typing import Any, Sequence

import torch

from hnlmrec_lib.config import LLMConfig

Prompt = str | list[dict]
MAX_NEW_TOKENS_LIMIT = 2048


def has_chat_template(tok: Any) -> bool:
    return bool(getattr(tok, "chat_template", None))


def render_prompt(tok: Any, prompt: Prompt, use_chat_template: bool | None = None) -> str:
    """The exact text the model is fed for ``prompt``."""
    use = has_chat_template(tok) if use_chat_template is None else use_chat_template
    if use and not has_chat_template(tok):
        raise ValueError("use_chat_template=True but the tokenizer has no chat template")
    if isinstance(prompt, str):
        if not use:
            return prompt
        prompt = [{"role": "user", "content": prompt}]
    if use:
        return tok.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
    lines = [f"{m['role'].capitalize()}: {m['content']}" for m in prompt]
    return "\n".join(lines) + "\nAssistant:"


def decoding_settings(cfg: LLMConfig, *, seed: int | None = None,
                      temperature: float | None = None) -> dict[str, Any]:
    """The settings that determine an output (also the LLM-call cache key)."""
    temp = cfg.temperature if temperature is None else temperature
    sampled = temp > 0
    return {
        "max_new_tokens": cfg.max_new_tokens,
        "max_prompt_tokens": cfg.max_prompt_tokens,
        "do_sample": sampled,
        "temperature": float(temp) if sampled else 0.0,
        "top_p": float(cfg.top_p) if sampled else 1.0,
        "seed": int(cfg.seed if seed is None else seed) if sampled else None,
    }


@torch.inference_mode()
def generate(
    model: Any,
    tok: Any,
    prompts: Sequence[Prompt],
    cfg: LLMConfig,
    *,
    seed: int | None = None,
    temperature: float | None = None,
    use_chat_template: bool | None = None,
    stop: Sequence[str] | None = None,
    progress: bool = False,
    prefix_cache: bool = True,
) -> list[str]:
    """Generate one completion per prompt, in prompt order.

    Batches of ``cfg.batch_size`` prompts of similar length, left padded; prompts longer than
    ``cfg.max_prompt_tokens`` keep their last tokens. Greedy when the temperature is 0, else
    sampling seeded per batch from ``seed`` (global RNG state left untouched). ``stop``
    strings end a completion early and are cut from the returned text.

    With ``prefix_cache`` the tokens every prompt shares (the instruction and few-shot
    examples of a study prompt: ~200 of the ~240 tokens of an item-profile prompt) are run
    through the model once; each batch starts from a copy of that KV cache, so only the
    prompts' own tokens are prefilled (see ``_prefix_batch`` for the padding layout).
    """
    if not 1 <= cfg.max_new_tokens <= MAX_NEW_TOKENS_LIMIT:
        raise ValueError(f"llm.max_new_tokens={cfg.max_new_tokens} must be in 1..{MAX_NEW_TOKENS_LIMIT}")
    if cfg.batch_size < 1:
        raise ValueError(f"llm.batch_size={cfg.batch_size} must be >= 1")
    settings = decoding_settings(cfg, seed=seed, temperature=temperature)
    texts = [render_prompt(tok, p, use_chat_template) for p in prompts]
    tok.padding_side, tok.truncation_side = "left", "left"
    lengths = [len(tok(t, add_special_tokens=False).input_ids) for t in texts]
    too_long = sum(n >= cfg.max_prompt_tokens for n in lengths)
    if too_long:
        warnings.warn(f"{too_long} prompt(s) reach llm.max_prompt_tokens={cfg.max_prompt_tokens} "
                      "and lose their first tokens; shorten them or raise the limit", stacklevel=2)
    order = sorted(range(len(texts)), key=lambda i: lengths[i])
    # prompts cut to max_prompt_tokens lose their start, so they never share the prefix
    fits = [i for i in order if lengths[i] < cfg.max_prompt_tokens]
    shared = _SharedPrefix.build(model, tok, [texts[i] for i in fits]) if prefix_cache and fits else None
    groups = [fits, [i for i in order if lengths[i] >= cfg.max_prompt_tokens]] if shared else [order]
    batches = [g[i:i + cfg.batch_size] for g in groups for i in range(0, len(g), cfg.batch_size)]
    if progress:
        from tqdm.auto import tqdm

        batches = tqdm(batches, desc="generate", unit="batch")
    outputs: list[str] = [""] * len(texts)
    for b, idx in enumerate(batches):
        if shared is not None and texts[idx[0]] in shared.ids:
            enc = shared.batch([texts[i] for i in idx])
        else:
            enc = tok([texts[i] for i in idx], return_tensors="pt", padding=True, truncation=True,
                      max_length=cfg.max_prompt_tokens, add_special_tokens=_adds_bos(tok, texts[idx[0]]))
        enc = {k: v.to(model.device) if torch.is_tensor(v) else v for k, v in enc.items()}
        kwargs = _generate_kwargs(model, tok, settings, stop)
        with torch.random.fork_rng(devices=_rng_devices(model)):
            if settings["do_sample"]:
                torch.manual_seed(settings["seed"] * 100_003 + b)
            out = model.generate(**enc, **kwargs)
        new = out[:, enc["input_ids"].shape[1]:]
        for i, row in zip(idx, new):
            outputs[i] = _cut(tok.decode(row, skip_special_tokens=True), stop)
    return outputs


MIN_SHARED_PREFIX = 16   # tokens; below this a shared-prefix cache is not worth a copy


class _SharedPrefix:
    """The KV cache of the token prefix that all prompts of a ``generate`` call share.

    A batch is laid out as ``prefix | padding | own tokens`` ("middle padding"): the prefix
    sits at the same cache slots for every row, so one cached prefix serves the whole batch,
    and the attention mask zeroes the padding. ``generate`` derives position ids from the
    mask's cumulative sum, so each row's own tokens continue at position ``len(prefix)``
    exactly as without padding; only the cache slots (not the positions) differ from the
    left-padded layout.
    """

    def __init__(self, tok: Any, ids: dict[str, list[int]], prefix: list[int], cache: Any) -> None:
        self.tok, self.ids, self.prefix, self.cache = tok, ids, prefix, cache
        self.n_prefix = len(prefix)

    @classmethod
    def build(cls, model: Any, tok: Any, texts: Sequence[str]) -> "_SharedPrefix | None":
        ids = [tok(t, add_special_tokens=_adds_bos(tok, t)).input_ids for t in texts]
        n = _common_prefix_length(ids)
        n = min(n, min(len(x) for x in ids) - 1)       # every row keeps >= 1 own token
        if n < MIN_SHARED_PREFIX or tok.pad_token_id is None:
            return None
        prefix = torch.tensor([ids[0][:n]], device=model.device)
        out = model(input_ids=prefix, attention_mask=torch.ones_like(prefix), use_cache=True)
        return cls(tok, dict(zip(texts, ids)), ids[0][:n], out.past_key_values)

    def batch(self, texts: Sequence[str]) -> dict[str, Any]:
        import copy

        own = [self.ids[t][self.n_prefix:] for t in texts]
        width = max(len(x) for x in own)
        pad = self.tok.pad_token_id
        input_ids = [self.prefix + [pad] * (width - len(x)) + x for x in own]
        mask = [[1] * self.n_prefix + [0] * (width - len(x)) + [1] * len(x) for x in own]
        cache = copy.deepcopy(self.cache)
        cache.batch_repeat_interleave(len(texts))
        return {"input_ids": torch.tensor(input_ids), "attention_mask": torch.tensor(mask),
                "cache": cache}


def _common_prefix_length(rows: Sequence[Sequence[int]]) -> int:
    first, n = rows[0], min(len(r) for r in rows)
    for r in rows[1:]:
        k = 0
        while k < n and r[k] == first[k]:
            k += 1
        n = k
    return n


def _adds_bos(tok: Any, text: str) -> bool:
    """Add special tokens unless the rendered text already starts with the bos token."""
    bos = getattr(tok, "bos_token", None)
    return not (bos and text.startswith(bos))


def _generate_kwargs(model: Any, tok: Any, settings: dict, stop: Sequence[str] | None) -> dict:
    from transformers import GenerationConfig

    gen = GenerationConfig(
        max_new_tokens=settings["max_new_tokens"],
        do_sample=settings["do_sample"],
        pad_token_id=tok.pad_token_id,
        eos_token_id=_eos_ids(model, tok),
        bos_token_id=tok.bos_token_id,
    )
    if settings["do_sample"]:
        gen.temperature, gen.top_p, gen.top_k = settings["temperature"], settings["top_p"], 0
    kwargs: dict[str, Any] = {"generation_config": gen}
    if stop:
        gen.stop_strings = list(stop)
        kwargs["tokenizer"] = tok
    return kwargs


def _eos_ids(model: Any, tok: Any) -> list[int]:
    ids = model.generation_config.eos_token_id
    ids = list(ids) if isinstance(ids, (list, tuple)) else ([ids] if ids is not None else [])
    if tok.eos_token_id is not None and tok.eos_token_id not in ids:
        ids.append(tok.eos_token_id)
    return ids


def _rng_devices(model: Any) -> list:
    dev = getattr(model, "device", torch.device("cpu"))
    return [dev] if dev.type == "cuda" else []


def _cut(text: str, stop: Sequence[str] | None) -> str:
    for s in stop or ():
        pos = text.find(s)
        if pos >= 0:
            text = text[:pos]
    return text
