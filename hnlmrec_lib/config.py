"""Typed study configuration read from the preset YAML files.

One dataclass tree describes every setting of the study. ``load_preset`` reads
``presets/<name>.yaml`` (or any YAML path), applies dotted overrides such as
``{"cf.epochs": 5}`` and refuses unknown or misspelt keys with an error that
names the key and the file.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

PRESET_DIR = Path(__file__).parent / "presets"
PROJECT_ROOT = Path(__file__).resolve().parent.parent


class ConfigError(ValueError):
    """A preset file or override names an unknown key or holds a bad value."""


@dataclass
class DataConfig:
    dataset: str = "ml-100k"             # ml-100k | amazon2018 | amazon2023 | yelp
    raw_dir: str = "data/raw"            # where user-supplied raw files live
    source: str = ""                     # sub-folder / file stem for amazon (e.g. Toys_and_Games)
    rating_threshold: float = 4.0        # keep ratings >= threshold as positives
    date_start: str | None = None        # inclusive, ISO date
    date_end: str | None = None          # exclusive, ISO date
    k_core: int = 10                     # iterative k-core on users and items
    split: tuple[float, float, float] = (0.8, 0.1, 0.1)
    split_seed: int = 2024
    max_users: int | None = None         # keep a random subset of users (smoke preset)
    max_reviews_per_item: int = 3
    max_reviews_per_user: int = 5
    max_review_chars: int = 300
    popular_share: float = 0.05          # top 5% of items by train clicks = Popular
    unpopular_share: float = 0.80        # bottom 80% = Unpopular
    sparsity_ratios: tuple[float, ...] = (0.2, 0.4, 0.6, 0.8, 1.0)


@dataclass
class CFConfig:
    dim: int = 64
    layers: int = 3
    lr: float = 1e-3                     # Adam's learning rate where backbone_lr names no other
    # per-backbone learning rates, chosen on valid (benchmarks/bench_lr.py), e.g. {lightgcn: 0.005}
    backbone_lr: dict[str, float] = field(default_factory=dict)
    batch_size: int = 2048
    reg: float = 1e-4
    epochs: int = 300
    patience: int = 10
    min_epochs: int = 50                 # early stopping cannot end a run before this epoch
    eval_every: int = 1
    eval_batch_users: int = 4096
    topks: tuple[int, ...] = (10, 20)
    select_metric: str = "ndcg@20"
    n_negs: int = 16                     # candidate pool size for DNS / MixGCF / AHNS
    dnsmn_m: int = 32                    # DNS(M,N): draw M
    dnsmn_n: int = 2                     # DNS(M,N): train on the top N
    ahns_alpha: float = 0.1
    ahns_beta: float = 0.4
    ahns_p: float = -2.0
    ngcf_dropout: float = 0.1
    ngcf_reg: float = 1e-4
    sgl_drop_ratio: float = 0.1
    sgl_tau: float = 0.5                 # RecBole's defaults; v1's 0.2 / 0.1 collapsed on
    sgl_weight: float = 0.05             # ML-100K (ours and RecBole 1.2.1 alike)
    backbones: tuple[str, ...] = ("mf", "lightgcn", "ngcf", "sgl")
    llm_backbones: tuple[str, ...] = ("mf", "lightgcn", "ngcf", "sgl")   # HNLMRec rows of Table 1
    samplers: tuple[str, ...] = ("rns", "dns", "dnsmn", "mixgcf", "ahns")
    seeds: tuple[int, ...] = (0, 1, 2)            # seeds for every backbone
    main_backbone: str = "lightgcn"
    main_seeds: tuple[int, ...] = (0, 1, 2, 3, 4)  # seeds for the main backbone
    threads: int = 2                     # torch threads of this process (split among workers)
    workers: int = 1                     # processes that train a grid's missing runs at once

    def __post_init__(self) -> None:
        unknown = sorted(set(self.backbone_lr) - {"mf", "lightgcn", "ngcf", "sgl"})
        if unknown:
            raise ConfigError(f"backbone_lr names unknown backbone {unknown[0]!r}")

    def lr_for(self, backbone: str) -> float:
        """Adam's learning rate of ``backbone``: ``backbone_lr[backbone]``, else ``lr``."""
        return self.backbone_lr.get(backbone, self.lr)


@dataclass
class LLMConfig:
    model: str = "gemma3-270m"           # short name, local folder, or hub id
    tiny_random: bool = False            # smoke: a randomly initialised model of the same architecture
    load_in_4bit: bool = False           # bitsandbytes; CUDA only
    load_in_8bit: bool = False
    dtype: str = "float32"              # float32 | bfloat16 | float16 | auto (bf16 where native)
    max_new_tokens: int = 96
    batch_size: int = 8
    temperature: float = 0.0             # 0 = greedy
    top_p: float = 1.0
    seed: int = 0
    max_retries: int = 1
    max_prompt_tokens: int = 1024       # longer prompts lose their first tokens (a warning says so)
    embedder: str = "all-minilm-l6-v2"
    embed_batch_size: int = 64


@dataclass
class ProfileConfig:
    max_items_per_user: int = 6          # rated movies shown in a user prompt (train only)
    description_words: int = 12          # words of each shown movie's profile P_v (Eq. 3 (v2))
    max_new_tokens: int | None = None    # the profiles' answer budget; None = llm.max_new_tokens
    max_users: int | None = None         # profile only this many users (smoke)
    max_items: int | None = None


@dataclass
class NegativesConfig:
    unit: str = "user_budget"            # pair | user_budget
    pairs_per_user: int = 1
    k_candidates: int = 3                # K in Eq. 27 (v2)
    top_k: int = 1                       # Top-k selection, Eq. 28 (v2)
    lambda1: float = 0.1                 # weight of L_align, Eq. 10 (v2)
    tau_c: float = 0.2                   # temperature of L_align, Eq. 9 (v2)
    alpha_mix: float = 1.0               # Eq. 7 (v1): alpha*e_hard + (1-alpha)*e_random
    bpr_through_projector: tuple[bool, ...] = (False, True)
    attn_heads: int = 4
    projector_hidden: int = 256
    fuzzy_threshold: float = 85.0
    llms: tuple[str, ...] = ("smollm2-135m-instruct", "gemma3-270m")
    aligner_dtype: str = "float32"       # bfloat16: matmuls under autocast | auto (bf16 where native)


@dataclass
class SFTConfig:
    teacher_backbone: str = "lightgcn"
    dtype: str = "float32"               # SFT precision on CPU; QLoRA on GPU uses 4-bit + bf16
    teacher_sampler: str = "mixgcf"
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")
    lr: float = 2e-4
    epochs: int = 1
    batch_size: int = 8
    grad_accum: int = 1
    tau_s: float = 0.05
    max_train_pairs: int | None = 2000
    max_prompt_tokens: int = 160
    pairs_per_user: int = 1
    psi_hidden: int = 256
    max_label_tokens: int = 64           # [BOS] label title + profile [EOS]
    checkpoint_every: int = 50           # optimizer steps between checkpoints
    grad_clip: float = 1.0               # max grad norm over LoRA + psi; 0 = off
    encode_batch_size: int = 16          # pairs per forward when encoding e_llm
    encode_chunk_size: int = 512         # pairs per cached chunk file (resume unit)


@dataclass
class StudyConfig:
    name: str = "default"
    seed: int = 0
    artifacts_dir: str = "artifacts"
    figures_dir: str = "figures"
    data: DataConfig = field(default_factory=DataConfig)
    cf: CFConfig = field(default_factory=CFConfig)
    llm: LLMConfig = field(default_factory=LLMConfig)
    profiles: ProfileConfig = field(default_factory=ProfileConfig)
    negatives: NegativesConfig = field(default_factory=NegativesConfig)
    sft: SFTConfig = field(default_factory=SFTConfig)

    @property
    def artifact_root(self) -> Path:
        return resolve_path(self.artifacts_dir) / self.name

    @property
    def figure_root(self) -> Path:
        return resolve_path(self.figures_dir)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def resolve_path(path: str | Path) -> Path:
    """Relative paths are taken from the project root, so notebooks can run anywhere."""
    p = Path(path)
    return p if p.is_absolute() else PROJECT_ROOT / p


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check/convert a YAML value to the annotated type; ``where`` names the key and file."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return _build(tp, value, where)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(errors[0] if errors else f"{where}: bad value {value!r}")
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return {_coerce(k, args[0], where): _coerce(v, args[1], f"{where}.{k}") for k, v in value.items()}
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
        if len(args) != len(value):
            raise ConfigError(f"{where}: expected {len(args)} values, got {len(value)}")
        return tuple(_coerce(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true/false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    return value


def _build(cls: type, values: Mapping[str, Any], where: str) -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ConfigError(
            f"{where}: unknown key {unknown[0]!r} (known keys: {', '.join(sorted(names))})"
        )
    kwargs = {k: _coerce(v, hints[k], f"{where}.{k}" if where else k) for k, v in values.items()}
    try:
        return cls(**kwargs)
    except ConfigError as err:  # a check across keys (__post_init__): say where
        raise ConfigError(f"{where}: {err}") from err


def _nest(overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Turn {"cf.epochs": 5} into {"cf": {"epochs": 5}}; nested dicts pass through."""
    nested: dict[str, Any] = {}
    for key, value in overrides.items():
        node = nested
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        if isinstance(value, Mapping):
            node.setdefault(parts[-1], {}).update(_nest(value))
        else:
            node[parts[-1]] = value
    return nested


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in extra.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = _merge(dict(out[k]), v)
        else:
            out[k] = v
    return out


def preset_path(name_or_path: str | Path) -> Path:
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml"):
        return resolve_path(p)
    candidate = PRESET_DIR / f"{name_or_path}.yaml"
    if not candidate.exists():
        known = sorted(q.stem for q in PRESET_DIR.glob("*.yaml"))
        raise ConfigError(f"unknown preset {name_or_path!r}; known presets: {', '.join(known)}")
    return candidate


def load_preset(name_or_path: str | Path = "default",
                overrides: Mapping[str, Any] | None = None) -> StudyConfig:
    """Read a preset YAML into a ``StudyConfig``; ``overrides`` use dotted keys."""
    path = preset_path(name_or_path)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from err
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{path}: the top level must be a mapping")
    raw.setdefault("name", path.stem)
    cfg = _build(StudyConfig, raw, str(path))
    if overrides:
        merged = _merge(dataclasses.asdict(cfg), _nest(overrides))
        cfg = _build(StudyConfig, merged, f"{path} (with overrides)")
    return resolve_auto(cfg, str(path))


def resolve_auto(cfg: StudyConfig, where: str = "config") -> StudyConfig:
    """Replace ``auto`` dtypes by the concrete dtype this machine runs well
    (``runtime.resolve_dtype``), so every cache key names the dtype that actually ran."""
    from .runtime import resolve_dtype

    def resolved(value: str, key: str) -> str:
        try:
            return resolve_dtype(value, key)
        except ValueError as err:
            raise ConfigError(f"{where}: {err}") from err

    llm = dataclasses.replace(cfg.llm, dtype=resolved(cfg.llm.dtype, "llm.dtype"))
    neg = dataclasses.replace(cfg.negatives, aligner_dtype=resolved(cfg.negatives.aligner_dtype,
                                                                    "negatives.aligner_dtype"))
    return dataclasses.replace(cfg, llm=llm, negatives=neg)
