"""Hybrid prompts with collaborative soft tokens, Eq. 11 (v2).

Q = Concat(I, psi(e_u), P_u, psi(e_v), P_v): the task instruction I, the user's and
the item's CF embeddings mapped by the projector psi into the LLM's input space and
placed as one soft token each, and the semantic profiles P_u, P_v. [EOS] closes the
prompt, and its last-layer hidden state is the query embedding Q_emb (Sec. 3.2 v2).

The authors' release wrote the CF vectors into the prompt as text (REFERENCE.md §2);
this module implements the paper's psi instead. Each marker ("<user_cf>", "<item_cf>")
becomes ONE placeholder token id. Placeholder positions are known because the ids are
built segment by segment, never found by searching for the id, so any id (here the
unk/pad id) can serve as the placeholder without ambiguity.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple, Sequence

import torch
from torch import nn

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

USER_CF = "<user_cf>"
ITEM_CF = "<item_cf>"
_SPLIT = re.compile(r"(<user_cf>|<item_cf>|\{instruction\}|\{user_profile\}|\{item_profile\})")

DEFAULT_INSTRUCTION = (
    "Given a user and an item the user interacted with, represent a hard negative item: "
    "one the user would not choose although it looks similar to the item."
)
DEFAULT_TEMPLATE = (
    "{instruction}\nUser behaviour: <user_cf>\nUser profile: {user_profile}"
    "\nItem behaviour: <item_cf>\nItem profile: {item_profile}"
)


class SoftTokenProjector(nn.Module):
    """psi: an MLP from the CF space (cf_dim) to the LLM's input embedding space.

    A final LayerNorm and the fixed ``out_scale`` (set to the token embeddings' RMS)
    give soft tokens the scale of real tokens whatever the CF embeddings' scale (Gemma
    multiplies its embeddings by sqrt(hidden); LightGCN embeddings are small).
    """

    def __init__(self, cf_dim: int, hidden: int, out_dim: int, out_scale: float = 1.0):
        super().__init__()
        self.cf_dim, self.hidden, self.out_dim = cf_dim, hidden, out_dim
        self.net = nn.Sequential(nn.Linear(cf_dim, hidden), nn.GELU(),
                                 nn.Linear(hidden, out_dim), nn.LayerNorm(out_dim))
        self.register_buffer("out_scale", torch.tensor(float(out_scale)))

    def forward(self, cf: torch.Tensor) -> torch.Tensor:
        """(..., cf_dim) -> (..., out_dim)."""
        return self.net(cf) * self.out_scale


class HybridBatch(NamedTuple):
    input_ids: torch.Tensor       # (B, L) long
    attention_mask: torch.Tensor  # (B, L) long, 1 = real token
    soft_positions: torch.Tensor  # (B, 2) long: positions of the user and item soft tokens


@dataclass(frozen=True)
class PromptIds:
    """One prompt's ids and the offsets of its two soft tokens."""
    ids: list[int]
    soft: tuple[int, int]


def placeholder_id(tokenizer: PreTrainedTokenizerBase) -> int:
    """The id stored at soft-token positions (its embedding is overwritten by psi)."""
    for tid in (tokenizer.unk_token_id, tokenizer.pad_token_id, tokenizer.eos_token_id):
        if tid is not None:
            return int(tid)
    raise ValueError("tokenizer has no unk, pad or eos id to use as a placeholder")


def bos_ids(tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """[BOS] when the tokenizer itself would put one in front of a text, else []."""
    bos = tokenizer.bos_token_id
    if bos is None:
        return []
    added = tokenizer("", add_special_tokens=True)["input_ids"]
    return [int(bos)] if added[:1] == [bos] else []


def _text_ids(tokenizer: PreTrainedTokenizerBase, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"]) if text else []


def _split_budget(len_u: int, len_v: int, budget: int) -> tuple[int, int]:
    """Fair truncation of two profiles to at most ``budget`` tokens together."""
    if len_u + len_v <= budget:
        return len_u, len_v
    keep_u = min(len_u, budget // 2)
    keep_v = min(len_v, budget - keep_u)
    keep_u = min(len_u, budget - keep_v)
    return keep_u, keep_v


def template_parts(template: str) -> list[str]:
    """Split a template into literal text, markers and fields; check both markers occur once."""
    parts = [p for p in _SPLIT.split(template) if p]
    for marker in (USER_CF, ITEM_CF):
        if parts.count(marker) != 1:
            raise ValueError(f"template must hold {marker} exactly once: {template!r}")
    return parts


def encode_prompt(tokenizer: PreTrainedTokenizerBase, instruction: str, user_profile: str,
                  item_profile: str, max_tokens: int,
                  template: str = DEFAULT_TEMPLATE) -> PromptIds:
    """Ids of one hybrid prompt: [BOS] segments ... [EOS], at most ``max_tokens`` long.

    The profiles share what the instruction and template leave (each gets at least half
    unless the other needs less). If that is under a quarter of ``max_tokens``, the
    instruction's tail is cut first; it depends on ``max_tokens`` only, so every prompt
    of one instruction still shares one prefix.
    """
    parts = template_parts(template)
    ph = placeholder_id(tokenizer)
    profile_ids = {"{user_profile}": _text_ids(tokenizer, user_profile),
                   "{item_profile}": _text_ids(tokenizer, item_profile)}
    fixed: list[list[int]] = []
    for part in parts:
        if part in (USER_CF, ITEM_CF):
            fixed.append([ph])
        elif part == "{instruction}":
            fixed.append(_text_ids(tokenizer, instruction))
        elif part in profile_ids:
            fixed.append([])
        else:
            fixed.append(_text_ids(tokenizer, part))
    head, eos = bos_ids(tokenizer), [int(tokenizer.eos_token_id)]
    budget = max_tokens - len(head) - len(eos) - sum(len(f) for f in fixed)
    if budget < max_tokens // 4 and "{instruction}" in parts:  # keep room for the profiles
        i = parts.index("{instruction}")
        cut = min(len(fixed[i]), max_tokens // 4 - budget)
        fixed[i] = fixed[i][: len(fixed[i]) - cut]
        budget += cut
    if budget < 0:
        raise ValueError(f"max_tokens={max_tokens} is too small for the template")
    keep = _split_budget(len(profile_ids["{user_profile}"]),
                         len(profile_ids["{item_profile}"]), budget)
    keep_of = dict(zip(("{user_profile}", "{item_profile}"), keep))
    ids, soft = list(head), {}
    for part, seg in zip(parts, fixed):
        if part in (USER_CF, ITEM_CF):
            soft[part] = len(ids)
        if part in profile_ids:
            seg = profile_ids[part][: keep_of[part]]
        ids.extend(seg)
    ids.extend(eos)
    return PromptIds(ids, (soft[USER_CF], soft[ITEM_CF]))


def shared_prefix_len(tokenizer: PreTrainedTokenizerBase, instruction: str, max_tokens: int,
                      template: str = DEFAULT_TEMPLATE) -> int:
    """Tokens every prompt of one instruction shares: up to the first soft token or profile.

    Two prompts whose profiles differ in their first token agree exactly up to the first
    profile, and the instruction's truncation does not depend on the profiles.
    """
    p0 = encode_prompt(tokenizer, instruction, "0", "0", max_tokens, template)
    p1 = encode_prompt(tokenizer, instruction, "x", "x", max_tokens, template)
    common = next((i for i, (a, b) in enumerate(zip(p0.ids, p1.ids)) if a != b), len(p0.ids))
    return min(common, *p0.soft)


def pad_batch(rows: Sequence[list[int]], pad_id: int, padding_side: str = "left"
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pad id lists to (B, L); returns ids, mask and each row's shift (left pad count)."""
    if padding_side not in ("left", "right"):
        raise ValueError(f"padding_side must be 'left' or 'right', got {padding_side!r}")
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    shift = torch.zeros(len(rows), dtype=torch.long)
    for i, r in enumerate(rows):
        start = width - len(r) if padding_side == "left" else 0
        ids[i, start:start + len(r)] = torch.tensor(r, dtype=torch.long)
        mask[i, start:start + len(r)] = 1
        shift[i] = start
    return ids, mask, shift


def pad_token_id(tokenizer: PreTrainedTokenizerBase) -> int:
    """The pad id, or EOS where the tokenizer has no pad token."""
    tid = tokenizer.pad_token_id
    return int(tid if tid is not None else tokenizer.eos_token_id)


def collate_prompts(prompts: Sequence[PromptIds], pad_id: int, *, padding_side: str = "left",
                    skip_prefix: int = 0) -> HybridBatch:
    """Pad encoded prompts into a batch; ``skip_prefix`` drops that many leading tokens.

    Dropping the shared prefix (whose key/value cache is reused) keeps soft positions
    correct relative to the remaining tokens.
    """
    if skip_prefix and min(min(p.soft) for p in prompts) < skip_prefix:
        raise ValueError("skip_prefix reaches past a soft token")
    ids, mask, shift = pad_batch([p.ids[skip_prefix:] for p in prompts], pad_id, padding_side)
    soft = torch.tensor([p.soft for p in prompts], dtype=torch.long) - skip_prefix + shift[:, None]
    return HybridBatch(ids, mask, soft)


def build_hybrid_batch(tokenizer: PreTrainedTokenizerBase, instruction: str,
                       user_profiles: Sequence[str], item_profiles: Sequence[str],
                       max_tokens: int, *,
                       template: str = DEFAULT_TEMPLATE, padding_side: str = "left",
                       skip_prefix: int = 0) -> HybridBatch:
    """Batch of hybrid prompts (Eq. 11 v2), [EOS] as the last real token of each row."""
    if len(user_profiles) != len(item_profiles):
        raise ValueError("user_profiles and item_profiles differ in length")
    prompts = [encode_prompt(tokenizer, instruction, pu, pv, max_tokens, template)
               for pu, pv in zip(user_profiles, item_profiles)]
    return collate_prompts(prompts, pad_token_id(tokenizer), padding_side=padding_side,
                           skip_prefix=skip_prefix)


def label_text(title: str, profile: str) -> str:
    """Text of a collaborative label item N+ (Sec. 3.2 v2): its title and profile."""
    return f"{title.strip()}\n{profile.strip()}".strip()


def label_batch(tokenizer: PreTrainedTokenizerBase, label_texts: Sequence[str], max_tokens: int, *,
                padding_side: str = "left") -> tuple[torch.Tensor, torch.Tensor]:
    """[BOS] label text [EOS], truncated to ``max_tokens``; returns ids and mask."""
    head, eos = bos_ids(tokenizer), [int(tokenizer.eos_token_id)]
    room = max_tokens - len(head) - 1
    if room < 0:
        raise ValueError(f"max_tokens={max_tokens} leaves no room for text")
    rows = [head + _text_ids(tokenizer, t)[:room] + eos for t in label_texts]
    ids, mask, _ = pad_batch(rows, pad_token_id(tokenizer), padding_side)
    return ids, mask


def inject_soft_tokens(embed_layer: nn.Module, input_ids: torch.Tensor,
                       soft_positions: torch.Tensor, soft_vectors: torch.Tensor) -> torch.Tensor:
    """Token embeddings with the (B, 2, H) soft vectors written at ``soft_positions``.

    Out of place (scatter via index_put), so the result is differentiable w.r.t.
    ``soft_vectors`` and the embedding table is not touched.
    """
    embeds = embed_layer(input_ids)
    b, k = soft_positions.shape
    if soft_vectors.shape[:2] != (b, k) or soft_vectors.shape[-1] != embeds.shape[-1]:
        raise ValueError(f"soft_vectors {tuple(soft_vectors.shape)} do not fit positions "
                         f"{tuple(soft_positions.shape)} and hidden {embeds.shape[-1]}")
    rows = torch.arange(b, device=input_ids.device)[:, None].expand(b, k)
    return embeds.index_put((rows, soft_positions.to(input_ids.device)),
                            soft_vectors.to(embeds.dtype))
