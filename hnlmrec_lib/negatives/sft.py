"""Contrastive SFT on collaborative labels (Eq. 12 v2) and e_llm encoding of pairs.

The LLM reads the hybrid prompt of Eq. 11 (v2) for a pair (u, v+) and its last-layer
state at [EOS] is Q_emb; the CF-mined hard negative item ("collaborative label") is
written as title + profile + [EOS] and encoded by the same LLM into N_emb+. Eq. 12 (v2)
pulls Q_emb to its own label and away from the other labels of the batch. LoRA adapts
the attention projections; the soft-token projector psi is trained with it.

Precision: the study trains in the model's loaded dtype (float32 on CPU). When the model
was loaded in 4/8 bit (``llm.load_in_4bit``, CUDA only) it goes through
``peft.prepare_model_for_kbit_training`` first (QLoRA, as the paper's 4-bit SFT).

After SFT, ``encode_pairs`` writes e_llm for every training pair in chunk files so a
killed run resumes at the next missing chunk. It reuses the key/value cache of the
prompt prefix shared by every pair (BOS + instruction, up to the first soft token) and
sorts each chunk by prompt length to cut padding.
"""
from __future__ import annotations

import copy
import dataclasses
import hashlib
import inspect
import json
import math
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from hnlmrec_lib.artifacts import atomic_path, atomic_write_text, stable_hash
from hnlmrec_lib.config import SFTConfig
from hnlmrec_lib.llm.hidden import causal_lm_body, encode_last_token, last_token_index
from hnlmrec_lib.negatives.hybrid_prompt import (
    DEFAULT_INSTRUCTION, DEFAULT_TEMPLATE, PromptIds, SoftTokenProjector, collate_prompts,
    encode_prompt, inject_soft_tokens, label_batch, pad_token_id, shared_prefix_len,
)

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

CHECKPOINTS = "checkpoints"
_NOT_TRAINING = ("checkpoint_every", "encode_batch_size", "encode_chunk_size")
LATEST = "LATEST"


# --- Eq. 12 (v2) ------------------------------------------------------------------------

def sft_info_nce(q_emb: torch.Tensor, label_emb: torch.Tensor, tau_s: float,
                 label_items: torch.Tensor | None = None) -> torch.Tensor:
    """Eq. 12 (v2): mean over the batch of -log softmax_j(s_ij / tau_s) at j = i.

    Row i's positive is label i, the other in-batch labels are its negatives. s is the
    cosine (L2-normalised dot) rather than the raw Q^T N of the paper: last-layer LLM
    states have large, prompt-dependent norms, so a raw dot / 0.05 saturates the softmax
    from the first step; the authors' release also used cosine / 0.05 (REFERENCE.md §2).
    ``label_items``: rows sharing row i's label item are dropped from its denominator
    (they are the same item, not negatives).
    """
    q = F.normalize(q_emb.float(), dim=-1)
    n = F.normalize(label_emb.float(), dim=-1)
    logits = q @ n.T / tau_s
    if label_items is not None:
        same = label_items[:, None] == label_items[None, :]
        same.fill_diagonal_(False)
        logits = logits.masked_fill(same, float("-inf"))
    return F.cross_entropy(logits, torch.arange(len(q), device=q.device))


# --- the transformer body and the shared-prefix cache -----------------------------------------

def _cache_kwarg(body: nn.Module) -> str:
    """Name of the key/value cache argument: ``cache`` (newer transformers 5.x) or
    ``past_key_values``."""
    return "cache" if "cache" in inspect.signature(body.forward).parameters else "past_key_values"


def position_ids_for(mask: torch.Tensor, offset: int = 0) -> torch.Tensor:
    """Positions counted over real tokens only, starting at ``offset``."""
    return (mask.long().cumsum(-1) - 1).clamp(min=0) + offset


@dataclass
class PrefixCache:
    """Key/value cache of the prompt prefix that every pair shares."""
    cache: Any
    length: int

    def expand(self, batch: int) -> Any:
        """A fresh copy repeated ``batch`` times (the forward pass appends to it)."""
        cache = copy.deepcopy(self.cache)
        cache.batch_repeat_interleave(batch)
        return cache


class SFTBatch(NamedTuple):
    input_ids: torch.Tensor       # (B, L) hybrid prompts
    attention_mask: torch.Tensor  # (B, L)
    soft_positions: torch.Tensor  # (B, 2)
    cf: torch.Tensor              # (B, 2, d): e_u, e_v of the teacher CF model
    label_ids: torch.Tensor       # (B, Ll) label item text
    label_mask: torch.Tensor      # (B, Ll)
    label_items: torch.Tensor     # (B,) label item ids (duplicates are masked in Eq. 12)


# --- the model: LoRA LLM + psi -----------------------------------------------------------

def _is_kbit(model: nn.Module) -> bool:
    return bool(getattr(model, "is_loaded_in_4bit", False)
                or getattr(model, "is_loaded_in_8bit", False))


def token_embedding_rms(embed: nn.Module, sample: int = 4096) -> float:
    """Median RMS of token input embeddings (after any scaling the layer applies)."""
    vocab = embed.weight.shape[0]
    ids = torch.linspace(0, vocab - 1, min(vocab, sample), device=embed.weight.device).long()
    with torch.no_grad():
        rms = embed(ids).float().pow(2).mean(-1).sqrt()
    return float(rms.median())


class ContrastiveSFT(nn.Module):
    """A LoRA-wrapped causal LM plus psi, giving Q_emb (Eq. 11 v2) and N_emb+ (Eq. 12 v2)."""

    def __init__(self, model: nn.Module, psi: SoftTokenProjector, tau_s: float = 0.05):
        super().__init__()
        self.model, self.psi, self.tau_s = model, psi, tau_s

    @classmethod
    def wrap(cls, base_model: nn.Module, cf_dim: int, cfg: SFTConfig) -> "ContrastiveSFT":
        """Add LoRA adapters (``cfg``) to ``base_model`` in place and a fresh psi."""
        from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

        if _is_kbit(base_model):
            if not torch.cuda.is_available():
                raise RuntimeError("a 4/8-bit model needs CUDA for QLoRA training")
            base_model = prepare_model_for_kbit_training(
                base_model, use_gradient_checkpointing=True)
        lora = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                          target_modules=list(cfg.target_modules), bias="none")
        model = get_peft_model(base_model, lora)
        embed = model.get_input_embeddings()
        psi = SoftTokenProjector(cf_dim, cfg.psi_hidden, embed.weight.shape[1],
                                 out_scale=token_embedding_rms(embed))
        return cls(model, psi.to(embed.weight.device), cfg.tau_s)

    @property
    def device(self) -> torch.device:
        return next(self.psi.parameters()).device

    def _encode(self, embeds: torch.Tensor, mask: torch.Tensor,
                prefix: PrefixCache | None = None) -> torch.Tensor:
        """[EOS] (last real token) state of the LM body; the LM head is never run."""
        if prefix is None:
            return encode_last_token(self.model, None, mask, inputs_embeds=embeds)
        # suffix rows are right padded, so the prefix and each row stay contiguous
        body = causal_lm_body(self.model)
        full = torch.cat([mask.new_ones(mask.shape[0], prefix.length), mask], dim=1)
        out = body(inputs_embeds=embeds, attention_mask=full,
                   position_ids=position_ids_for(mask, prefix.length), use_cache=True,
                   **{_cache_kwarg(body): prefix.expand(mask.shape[0])})
        hidden = out.last_hidden_state
        rows = torch.arange(hidden.shape[0], device=hidden.device)
        return hidden[rows, last_token_index(mask).to(hidden.device)]

    def query_embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                    soft_positions: torch.Tensor, cf: torch.Tensor,
                    prefix: PrefixCache | None = None) -> torch.Tensor:
        """Q_emb: [EOS] state of the hybrid prompt with psi(e_u), psi(e_v) as soft tokens."""
        dev = self.device
        soft = self.psi(cf.to(dev, torch.float32))
        embeds = inject_soft_tokens(self.model.get_input_embeddings(), input_ids.to(dev),
                                    soft_positions.to(dev), soft)
        return self._encode(embeds, attention_mask.to(dev), prefix)

    def label_embed(self, label_ids: torch.Tensor, label_mask: torch.Tensor) -> torch.Tensor:
        """N_emb: [EOS] state of a label item's text."""
        embeds = self.model.get_input_embeddings()(label_ids.to(self.device))
        return self._encode(embeds, label_mask.to(self.device))

    @torch.no_grad()
    def prefix_cache(self, prefix_ids: Sequence[int]) -> PrefixCache:
        """Run the shared prefix once and keep its key/value cache."""
        ids = torch.tensor([list(prefix_ids)], dtype=torch.long, device=self.device)
        out = causal_lm_body(self.model)(input_ids=ids, position_ids=torch.arange(
            ids.shape[1], device=self.device)[None], use_cache=True)
        cache = getattr(out, "cache", None) or getattr(out, "past_key_values", None)
        return PrefixCache(cache, ids.shape[1])

    def step(self, batch: SFTBatch) -> torch.Tensor:
        """Eq. 12 (v2) loss of one batch (call ``backward`` on it)."""
        q = self.query_embed(batch.input_ids, batch.attention_mask, batch.soft_positions, batch.cf)
        n = self.label_embed(batch.label_ids, batch.label_mask)
        return sft_info_nce(q, n, self.tau_s, batch.label_items.to(q.device))

    def weights_fingerprint(self) -> str:
        """Hash of the trained weights (LoRA + psi) and the base model's id."""
        h = hashlib.sha256(str(getattr(self.model, "hnlmrec_id", "")).encode())
        for name, t in sorted(self._trained_state().items()):
            h.update(name.encode())
            h.update(t.detach().float().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()[:16]

    def _trained_state(self) -> dict[str, torch.Tensor]:
        state = {f"psi.{k}": v for k, v in self.psi.state_dict().items()}
        if hasattr(self.model, "peft_config"):
            from peft import get_peft_model_state_dict

            state.update({f"lora.{k}": v for k, v in get_peft_model_state_dict(self.model).items()})
        return state


# --- training data -----------------------------------------------------------------------

@dataclass
class SFTCorpus:
    """Training triples (u, v+, v_cf^-) and what their prompts and labels are built from."""
    triples: np.ndarray           # (n, 3) user, positive item, CF-mined label item
    user_emb: np.ndarray          # (n_users, d) teacher CF embeddings e_u
    item_emb: np.ndarray          # (n_items, d) teacher CF embeddings e_v
    user_profiles: Sequence[str]  # P_u by user id
    item_profiles: Sequence[str]  # P_v by item id
    label_texts: Sequence[str]    # label text by item id (see hybrid_prompt.label_text)
    instruction: str = DEFAULT_INSTRUCTION
    template: str = DEFAULT_TEMPLATE

    def __len__(self) -> int:
        return len(self.triples)

    def fingerprint(self) -> str:
        h = hashlib.sha256()
        for arr in (self.triples, self.user_emb, self.item_emb):
            h.update(np.ascontiguousarray(arr).tobytes())
        for texts in (self.user_profiles, self.item_profiles, self.label_texts):
            h.update("\x00".join(texts).encode())
        h.update((self.instruction + "\x00" + self.template).encode())
        return h.hexdigest()[:16]


def cf_pairs(user_emb: np.ndarray, item_emb: np.ndarray, pairs: np.ndarray) -> torch.Tensor:
    """(B, 2, d) stack of e_u and e_v for (user, item) rows."""
    stacked = np.stack([user_emb[pairs[:, 0]], item_emb[pairs[:, 1]]], axis=1)
    return torch.from_numpy(stacked).float()


def make_batch(tokenizer: PreTrainedTokenizerBase, corpus: SFTCorpus, rows: np.ndarray,
               cfg: SFTConfig) -> SFTBatch:
    """Prompts (left padded), CF vectors and label texts of ``corpus.triples[rows]``."""
    t = corpus.triples[rows]
    prompts = [encode_prompt(tokenizer, corpus.instruction, corpus.user_profiles[u],
                             corpus.item_profiles[v], cfg.max_prompt_tokens, corpus.template)
               for u, v, _ in t]
    q = collate_prompts(prompts, pad_token_id(tokenizer))
    lab_ids, lab_mask = label_batch(tokenizer, [corpus.label_texts[j] for j in t[:, 2]],
                                    cfg.max_label_tokens)
    return SFTBatch(q.input_ids, q.attention_mask, q.soft_positions,
                    cf_pairs(corpus.user_emb, corpus.item_emb, t[:, :2]),
                    lab_ids, lab_mask, torch.from_numpy(t[:, 2].astype(np.int64)))


def _training_rows(n: int, cap: int | None, seed: int) -> np.ndarray:
    rows = np.arange(n)
    if cap is not None and n > cap:
        rows = np.sort(np.random.default_rng(seed).permutation(n)[:cap])
    return rows


def _micro_batch(rows: np.ndarray, m: int, per_epoch: int, size: int, seed: int) -> np.ndarray:
    """Rows of global micro-batch ``m``: a seeded shuffle per epoch, partial batch dropped."""
    epoch, j = divmod(m, per_epoch)
    perm = np.random.default_rng([seed, epoch]).permutation(len(rows))
    return rows[perm[j * size:(j + 1) * size]]


# --- checkpoints -------------------------------------------------------------------------

def _contiguous(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().contiguous().clone() for k, v in state.items()}


def _replace_dir(tmp: Path, target: Path) -> None:
    """Move the finished folder ``tmp`` to ``target``, replacing an old one."""
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.replace(target, old)
    os.replace(tmp, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def save_checkpoint(sft: ContrastiveSFT, opt: torch.optim.Optimizer, out_dir: Path,
                    state: dict) -> Path:
    """Write ``checkpoints/step-N`` (safetensors weights, optimizer, RNG, state) atomically."""
    from peft import get_peft_model_state_dict

    root = Path(out_dir) / CHECKPOINTS
    root.mkdir(parents=True, exist_ok=True)
    name = f"step-{state['step']:07d}"
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=root))
    try:
        save_file(_contiguous(get_peft_model_state_dict(sft.model)), tmp / "adapter.safetensors")
        save_file(_contiguous(sft.psi.state_dict()), tmp / "psi.safetensors")
        rng = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        torch.save({"optimizer": opt.state_dict(), "rng": rng}, tmp / "trainer.pt")
        (tmp / "state.json").write_text(json.dumps(state))
        _replace_dir(tmp, root / name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    atomic_write_text(root / LATEST, name)
    for old in root.glob("step-*"):
        if old.name != name:
            shutil.rmtree(old, ignore_errors=True)
    return root / name


def load_checkpoint(sft: ContrastiveSFT, opt: torch.optim.Optimizer, out_dir: Path,
                    fingerprint: str) -> dict | None:
    """Restore the latest checkpoint into ``sft`` and ``opt``; None when there is none."""
    from peft import set_peft_model_state_dict

    root = Path(out_dir) / CHECKPOINTS
    if not (root / LATEST).exists():
        return None
    ckpt = root / (root / LATEST).read_text().strip()
    state = json.loads((ckpt / "state.json").read_text())
    if state["fingerprint"] != fingerprint:
        raise ValueError(f"{ckpt} was written for other data or settings; pass resume=False "
                         "or another out_dir")
    dev = sft.device
    set_peft_model_state_dict(sft.model, load_file(ckpt / "adapter.safetensors", device=str(dev)))
    sft.psi.load_state_dict(load_file(ckpt / "psi.safetensors", device=str(dev)))
    trainer = torch.load(ckpt / "trainer.pt", map_location=dev, weights_only=True)
    opt.load_state_dict(trainer["optimizer"])
    torch.set_rng_state(trainer["rng"]["torch"].cpu())
    if "cuda" in trainer["rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in trainer["rng"]["cuda"]])
    return state


# --- training loop -----------------------------------------------------------------------

def train_sft(model: ContrastiveSFT, tokenizer: PreTrainedTokenizerBase, examples: SFTCorpus,
              cfg: SFTConfig, out_dir: str | Path, resume: bool = True, *, seed: int = 0,
              max_steps: int | None = None) -> dict:
    """Eq. 12 (v2) SFT with AdamW over LoRA + psi; checkpoints; resumes when rerun.

    One optimizer step = ``cfg.grad_accum`` micro-batches of ``cfg.batch_size`` triples.
    A checkpoint is written every ``cfg.checkpoint_every`` steps and at the end, so a
    rerun with ``resume=True`` continues from the last one (a finished run returns its
    history at once). ``max_steps`` stops early (smoke runs, tests). Returns the history:
    ``loss`` (per optimizer step), ``seconds`` (per step), ``step``, ``total_steps``,
    ``resumed_from``.
    """
    out_dir = Path(out_dir)
    rows = _training_rows(len(examples), cfg.max_train_pairs, seed)
    size = min(cfg.batch_size, len(rows))
    per_epoch = max(1, len(rows) // size)
    total = max(1, cfg.epochs * per_epoch // cfg.grad_accum)
    settings = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in _NOT_TRAINING}
    fingerprint = stable_hash({"cfg": settings, "data": examples.fingerprint(), "seed": seed,
                               "model": getattr(model.model, "hnlmrec_id", "")})
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0)
    state = load_checkpoint(model, opt, out_dir, fingerprint) if resume else None
    if state is None:
        torch.manual_seed(seed)
        state = {"step": 0, "loss": [], "seconds": [], "fingerprint": fingerprint, "total": total}
    resumed_from = state["step"]
    stop = total if max_steps is None else min(total, max_steps)
    model.train()
    try:
        while state["step"] < stop:
            t0 = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            loss_sum = 0.0
            for a in range(cfg.grad_accum):
                idx = _micro_batch(rows, state["step"] * cfg.grad_accum + a, per_epoch, size, seed)
                loss = model.step(make_batch(tokenizer, examples, idx, cfg)) / cfg.grad_accum
                loss.backward()
                loss_sum += float(loss.detach())
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            opt.step()
            state["step"] += 1
            state["loss"].append(loss_sum)
            state["seconds"].append(time.perf_counter() - t0)
            if state["step"] % cfg.checkpoint_every == 0 or state["step"] == stop:
                save_checkpoint(model, opt, out_dir, state)
    finally:
        model.eval()
    return {"step": list(range(1, state["step"] + 1)), "loss": state["loss"],
            "seconds": state["seconds"], "total_steps": total, "resumed_from": resumed_from}


# --- the product: adapter + psi ----------------------------------------------------------

def save_adapter(model: ContrastiveSFT, path: str | Path) -> Path:
    """Save the LoRA adapter (peft, safetensors) and psi into the folder ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        model.model.save_pretrained(str(tmp / "adapter"), safe_serialization=True)
        save_file(_contiguous(model.psi.state_dict()), tmp / "psi.safetensors")
        meta = {"cf_dim": model.psi.cf_dim, "psi_hidden": model.psi.hidden,
                "hidden": model.psi.out_dim, "tau_s": model.tau_s,
                "base_model": getattr(model.model, "hnlmrec_id", "")}
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
        _replace_dir(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path


def load_adapter(base_model: nn.Module, path: str | Path, *,
                 trainable: bool = False) -> ContrastiveSFT:
    """Rebuild a ContrastiveSFT from ``save_adapter``'s folder on a fresh base model."""
    from peft import PeftModel

    path = Path(path)
    meta = json.loads((path / "meta.json").read_text())
    model = PeftModel.from_pretrained(base_model, str(path / "adapter"), is_trainable=trainable)
    dev = model.get_input_embeddings().weight.device
    psi = SoftTokenProjector(meta["cf_dim"], meta["psi_hidden"], meta["hidden"])
    psi.load_state_dict(load_file(path / "psi.safetensors"))
    sft = ContrastiveSFT(model, psi.to(dev), meta["tau_s"])
    return sft.eval()


# --- e_llm for pairs: batched, cached in chunks, resumable ------------------------------

class ChunkCache:
    """``folder/index.json`` + one ``chunk_NNNNNN.npy`` per chunk, each written atomically."""

    def __init__(self, folder: str | Path, fingerprint: str, n_rows: int, chunk: int, width: int):
        self.folder, self.n_rows, self.chunk, self.width = Path(folder), n_rows, chunk, width
        index = {"fingerprint": fingerprint, "n_rows": n_rows, "chunk": chunk, "width": width}
        path = self.folder / "index.json"
        if path.exists():
            have = json.loads(path.read_text())
            if have != index:
                raise ValueError(f"{self.folder} holds embeddings of other inputs ({have}); "
                                 "delete it or use another cache_path")
        else:
            atomic_write_text(path, json.dumps(index))

    @property
    def n_chunks(self) -> int:
        return math.ceil(self.n_rows / self.chunk)

    def rows(self, c: int) -> slice:
        return slice(c * self.chunk, min(self.n_rows, (c + 1) * self.chunk))

    def _path(self, c: int) -> Path:
        return self.folder / f"chunk_{c:06d}.npy"

    def load(self, c: int) -> np.ndarray | None:
        r = self.rows(c)
        try:
            arr = np.load(self._path(c))
        except (OSError, ValueError, EOFError):
            return None
        return arr if arr.shape == (r.stop - r.start, self.width) else None

    def save(self, c: int, arr: np.ndarray) -> None:
        with atomic_path(self._path(c)) as tmp, open(tmp, "wb") as fh:
            np.save(fh, np.ascontiguousarray(arr, dtype=np.float32))


def _hash_arrays(*arrays: Any) -> str:
    h = hashlib.sha256()
    for a in arrays:
        if isinstance(a, np.ndarray):
            h.update(np.ascontiguousarray(a).tobytes())
        else:
            h.update("\x00".join(map(str, a)).encode())
    return h.hexdigest()[:16]


@torch.no_grad()
def _encode_prompts(sft: ContrastiveSFT, prompts: list[PromptIds], cf: torch.Tensor, pad_id: int,
                    batch_size: int, prefix: PrefixCache | None, sort_by_length: bool,
                    stats: dict) -> np.ndarray:
    """Q_emb of encoded prompts, in their order."""
    order = (np.argsort([-len(p.ids) for p in prompts], kind="stable") if sort_by_length
             else np.arange(len(prompts)))
    out = np.zeros((len(prompts), sft.psi.out_dim), dtype=np.float32)
    skip = prefix.length if prefix is not None else 0
    for s in range(0, len(order), batch_size):
        idx = order[s:s + batch_size]
        batch = collate_prompts([prompts[i] for i in idx], pad_id,
                                padding_side="right" if prefix else "left", skip_prefix=skip)
        q = sft.query_embed(batch.input_ids, batch.attention_mask, batch.soft_positions,
                            cf[idx], prefix=prefix)
        out[idx] = q.float().cpu().numpy()
        stats["tokens"] += int(batch.attention_mask.sum()) + skip * len(idx)
        stats["forward_tokens"] += int(batch.attention_mask.numel())
    return out


def encode_pairs(model: ContrastiveSFT | nn.Module, psi: SoftTokenProjector | None,
                 tokenizer: PreTrainedTokenizerBase, pairs: np.ndarray, user_emb: np.ndarray,
                 item_emb: np.ndarray, profiles: tuple[Sequence[str], Sequence[str]],
                 cfg: SFTConfig,
                 cache_path: str | Path | None, *, instruction: str = DEFAULT_INSTRUCTION,
                 template: str = DEFAULT_TEMPLATE, prefix_cache: bool = True,
                 sort_by_length: bool = True, stats: dict | None = None) -> np.ndarray:
    """e_llm (n_pairs, H): the fine-tuned LLM's Q_emb for each (user, item) pair, no grad.

    ``model`` is a ContrastiveSFT (``psi`` None) or a peft/causal LM with its ``psi``.
    ``profiles`` = (P_u by user id, P_v by item id). With ``cache_path``, chunks of
    ``cfg.encode_chunk_size`` pairs are written as they finish and reused on a rerun.
    ``stats`` (optional dict) receives computed/reused chunk ids, ``tokens`` (real prompt
    tokens), ``forward_tokens`` (positions run, padding included, shared prefix once), seconds.
    """
    sft = model if isinstance(model, ContrastiveSFT) else ContrastiveSFT(model, psi, cfg.tau_s)
    sft.eval()
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    user_profiles, item_profiles = profiles
    stats = stats if stats is not None else {}
    stats.update(computed=[], reused=[], tokens=0, forward_tokens=0, seconds=0.0)
    fingerprint = stable_hash({
        "data": _hash_arrays(pairs, user_emb, item_emb, user_profiles, item_profiles),
        "prompt": [instruction, template, cfg.max_prompt_tokens],
        "weights": sft.weights_fingerprint()})
    cache = ChunkCache(cache_path, fingerprint, len(pairs), cfg.encode_chunk_size,
                       sft.psi.out_dim) if cache_path is not None else None
    chunk = cfg.encode_chunk_size
    n_chunks = math.ceil(len(pairs) / chunk)
    pad_id, prefix, parts = pad_token_id(tokenizer), None, []
    t0 = time.perf_counter()
    for c in range(n_chunks):
        got = cache.load(c) if cache is not None else None
        if got is not None:
            stats["reused"].append(c)
            parts.append(got)
            continue
        p = pairs[c * chunk:(c + 1) * chunk]
        prompts = [encode_prompt(tokenizer, instruction, user_profiles[u], item_profiles[v],
                                 cfg.max_prompt_tokens, template) for u, v in p]
        if prefix_cache and prefix is None:
            n_prefix = shared_prefix_len(tokenizer, instruction, cfg.max_prompt_tokens, template)
            prefix = sft.prefix_cache(prompts[0].ids[:n_prefix])
            stats["forward_tokens"] += prefix.length
        got = _encode_prompts(sft, prompts, cf_pairs(user_emb, item_emb, p), pad_id,
                              cfg.encode_batch_size, prefix, sort_by_length, stats)
        if cache is not None:
            cache.save(c, got)
        stats["computed"].append(c)
        parts.append(got)
    stats["seconds"] = time.perf_counter() - t0
    return np.concatenate(parts) if parts else np.zeros((0, sft.psi.out_dim), np.float32)


@torch.no_grad()
def encode_labels(model: ContrastiveSFT, tokenizer: PreTrainedTokenizerBase,
                  label_texts: Sequence[str], cfg: SFTConfig,
                  batch_size: int | None = None) -> np.ndarray:
    """N_emb (n, H) of label texts (e.g. every catalogue item), sorted by length to batch."""
    model.eval()
    lengths = [len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in label_texts]
    order = np.argsort(lengths, kind="stable")
    out = np.zeros((len(label_texts), model.psi.out_dim), dtype=np.float32)
    size = batch_size or cfg.encode_batch_size
    for s in range(0, len(order), size):
        idx = order[s:s + size]
        ids, mask = label_batch(tokenizer, [label_texts[i] for i in idx], cfg.max_label_tokens)
        out[idx] = model.label_embed(ids, mask).float().cpu().numpy()
    return out


# --- did SFT align queries with their labels? --------------------------------------------

def retrieval_check(q_emb: np.ndarray, label_item_ids: np.ndarray, item_label_emb: np.ndarray,
                    ks: Sequence[int] = (1, 10)) -> dict[str, float]:
    """Rank (cosine) of each query's label item among all catalogue label embeddings.

    Returns MRR, hit@k and the mean rank (1 = best). Ties count against the label, so
    a collapsed model (all embeddings equal) ranks last, not first.
    """
    def unit(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)

    q, items = unit(q_emb), unit(item_label_emb)
    labels = np.asarray(label_item_ids, dtype=np.int64)
    ranks = np.empty(len(q), dtype=np.int64)
    for s in range(0, len(q), 4096):
        sims = q[s:s + 4096] @ items.T
        target = sims[np.arange(len(sims)), labels[s:s + 4096]]
        ranks[s:s + 4096] = (sims >= target[:, None]).sum(1)
    out = {"n": float(len(q)), "mrr": float(np.mean(1.0 / ranks)), "mean_rank": float(ranks.mean())}
    out.update({f"hit@{k}": float(np.mean(ranks <= k)) for k in ks})
    return out


def sft_retrieval(model: ContrastiveSFT, tokenizer: PreTrainedTokenizerBase, corpus: SFTCorpus,
                  cfg: SFTConfig, rows: np.ndarray | None = None) -> dict[str, float]:
    """retrieval_check of Q_emb(u, v+) against every item's N_emb for ``corpus.triples[rows]``.

    Run it right after ``ContrastiveSFT.wrap`` (LoRA starts as the identity) and after
    ``train_sft`` to see whether SFT moved queries towards their collaborative labels.
    """
    t = corpus.triples if rows is None else corpus.triples[rows]
    q = encode_pairs(model, None, tokenizer, t[:, :2], corpus.user_emb, corpus.item_emb,
                     (corpus.user_profiles, corpus.item_profiles), cfg, None,
                     instruction=corpus.instruction, template=corpus.template)
    return retrieval_check(q, t[:, 2], encode_labels(model, tokenizer, corpus.label_texts, cfg))
