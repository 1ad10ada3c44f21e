"""Send the study's prompts (``prompts.Prompt``) to a loaded LLM as structured requests.

Instruction-tuned models with a chat template get chat messages. Base models (Gemma-3-270M)
get a few-shot completion text that ends with the opening of the JSON answer (the primer);
generation stops at the next few-shot block, and the primer is put back in front of the
completion before parsing, so both kinds of model are parsed the same way.

Every study prompt asks for the answer first and ``reasoning`` after it. Generation is
left to right, so once the answer's value is closed nothing generated later can change it:
generation stops at the second key (``answer_stops``) and the parser closes the object.
That saves the decoding steps of the reasoning (the study never reads it) without changing
a single token of the answer.
"""
from __future__ import annotations

from typing import Any, Sequence

from .config import LLMConfig
from .llm.cache import LLMCallCache, StructuredAnswer, structured_generate
from .llm.generate import generate, has_chat_template
from .llm.loading import model_identity
from .prompts import Prompt

FEWSHOT_STOP = ("\nInput:", "\n\nInput")


def answer_stops(keys: Sequence[str]) -> list[str]:
    """Stop strings that mark the answer (first key) as complete: the next key's opening,
    as compact JSON writes it (``, "reasoning"``). Pretty-printed or reordered answers do
    not match and simply run to the token budget."""
    return [f', "{key}"' for key in keys[1:]]


def ask(model: Any, tok: Any, prompts: Sequence[Prompt], cfg: LLMConfig, cache: LLMCallCache,
        validate=None, progress: bool = True) -> list[StructuredAnswer]:
    """One structured answer per prompt (all prompts share the same JSON keys).

    Only the first key (the answer; ``reasoning`` comes second) is required, so an answer cut
    by the token budget while explaining itself still counts.
    """
    if not prompts:
        return []
    if any(p.keys != prompts[0].keys for p in prompts):
        raise ValueError("ask() takes prompts that expect the same JSON keys")
    keys = prompts[0].keys[:1]
    stops = answer_stops(prompts[0].keys)
    if has_chat_template(tok):
        return structured_generate(model, tok, [p.messages() for p in prompts], keys, cfg, cache,
                                   model_identity(model), validate=validate, progress=progress,
                                   stop=stops)
    primer = prompts[0].primer

    def primed_generate(*args, **kwargs) -> list[str]:
        return [primer + text for text in generate(*args, **kwargs)]

    return structured_generate(model, tok, [p.completion_text() for p in prompts], keys, cfg,
                               cache, model_identity(model), validate=validate,
                               generate_fn=primed_generate, progress=progress,
                               stop=list(FEWSHOT_STOP) + stops, use_chat_template=False)
