"""Send the study's prompts (``prompts.Prompt``) to a loaded LLM as structured requests.

Instruction-tuned models with a chat template get chat messages. Base models (Gemma-3-270M)
get a few-shot completion text that ends with the opening of the JSON answer (the primer);
generation stops at the next few-shot block, and the primer is put back in front of the
completion before parsing, so both kinds of model are parsed the same way.
"""
from __future__ import annotations

from typing import Any, Sequence

from .config import LLMConfig
from .llm.cache import LLMCallCache, StructuredAnswer, structured_generate
from .llm.generate import generate, has_chat_template
from .llm.loading import model_identity
from .prompts import Prompt

FEWSHOT_STOP = ("\nInput:", "\n\nInput")


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
    if has_chat_template(tok):
        return structured_generate(model, tok, [p.messages() for p in prompts], keys, cfg, cache,
                                   model_identity(model), validate=validate, progress=progress)
    primer = prompts[0].primer

    def primed_generate(*args, **kwargs) -> list[str]:
        return [primer + text for text in generate(*args, **kwargs)]

    return structured_generate(model, tok, [p.completion_text() for p in prompts], keys, cfg,
                               cache, model_identity(model), validate=validate,
                               generate_fn=primed_generate, progress=progress,
                               stop=list(FEWSHOT_STOP), use_chat_template=False)
