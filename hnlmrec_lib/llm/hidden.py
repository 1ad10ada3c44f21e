"""Last-token hidden states of a causal LM (EOS pooling for the SFT stage).

The body (``model.model``, found through a PEFT wrapper too) is called directly so the LM
head, a vocab-sized matmul, is skipped. Position ids come from the attention mask, so a
sequence gets the same vector under left or right padding.
"""
from __future__ import annotations

from typing import Any

import torch


def causal_lm_body(model: Any) -> Any:
    """The transformer body under a causal-LM head, or the model itself if none is found."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    body = getattr(base, "model", None)
    return body if isinstance(body, torch.nn.Module) else base


def last_token_index(attention_mask: torch.Tensor) -> torch.Tensor:
    """(B,) index of the last position whose mask is 1 (left or right padding)."""
    mask = attention_mask.to(torch.long)
    if bool((mask.sum(dim=1) == 0).any()):
        raise ValueError("a row of attention_mask is all zeros (an empty sequence)")
    positions = torch.arange(mask.shape[1], device=mask.device).expand_as(mask)
    return (positions * mask).argmax(dim=1)


def encode_last_token(model: Any, input_ids: torch.Tensor | None, attention_mask: torch.Tensor,
                      inputs_embeds: torch.Tensor | None = None) -> torch.Tensor:
    """(B, H) last-layer hidden state (after the final norm) at each row's last real token.

    Give ``input_ids`` or ``inputs_embeds`` (e.g. with soft tokens spliced in); gradients
    flow when called outside ``torch.no_grad``.
    """
    if (input_ids is None) == (inputs_embeds is None):
        raise ValueError("pass exactly one of input_ids and inputs_embeds")
    mask = attention_mask.to(torch.long)
    position_ids = (mask.cumsum(dim=1) - 1).clamp(min=0)
    body = causal_lm_body(model)
    kwargs: dict[str, Any] = {"attention_mask": mask, "position_ids": position_ids, "use_cache": False}
    if inputs_embeds is not None:
        kwargs["inputs_embeds"] = inputs_embeds
    else:
        kwargs["input_ids"] = input_ids
    if body is model:  # no separable body: ask the full model for its hidden states
        out = model(**kwargs, output_hidden_states=True)
        hidden = out.hidden_states[-1]
    else:
        hidden = body(**kwargs).last_hidden_state
    rows = torch.arange(hidden.shape[0], device=hidden.device)
    return hidden[rows, last_token_index(mask).to(hidden.device)]
