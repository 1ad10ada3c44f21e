"""What every notebook does first: read the preset, set threads and seeds, open the store."""
from __future__ import annotations

import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .artifacts import ArtifactStore
from .config import StudyConfig, load_preset


@dataclass
class Session:
    """The preset, its artifact store and its figure folder, shared by a notebook's cells."""

    cfg: StudyConfig
    store: ArtifactStore
    _data: Any = field(default=None, repr=False)

    @property
    def figures(self) -> Path:
        return self.cfg.figure_root

    def data(self):
        """The preprocessed, split dataset of this preset (cached artifact)."""
        if self._data is None:
            from .data import load_dataset
            self._data = load_dataset(self.cfg, self.store)
        return self._data

    def save_figure(self, fig, name: str) -> None:
        from .report import save_figure
        save_figure(fig, name, self.figures)

    def save_table(self, df, name: str, **kwargs) -> None:
        from .report import save_table
        save_table(df, name, self.figures, **kwargs)


def start(preset: str = "default", overrides: dict | None = None) -> Session:
    """Load the preset, set torch threads and seeds, and open the artifact store."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch starts OpenMP
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch

    cfg = load_preset(preset, overrides or None)
    torch.set_num_threads(cfg.cf.threads)
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    try:
        import seaborn as sns
        sns.set_theme(style="whitegrid", context="notebook")
    except ImportError:  # pragma: no cover - seaborn is a dependency
        pass
    store = ArtifactStore(cfg.artifact_root)
    cfg.figure_root.mkdir(parents=True, exist_ok=True)
    return Session(cfg=cfg, store=store)
