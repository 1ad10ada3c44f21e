"""Content-addressed artifact store with atomic writes.

Every expensive product of the study (preprocessed data, profiles, LLM calls,
embeddings, adapters, trained runs) lives under ``artifacts/<preset>/<kind>/``
and is keyed by a hash of exactly the inputs and settings that made it. Writes
go to a temporary file in the same folder and are renamed into place, so a run
killed mid-write leaves no partial artifact and a rerun reuses what exists.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import pickle
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

T = TypeVar("T")


def canonical(obj: Any) -> Any:
    """A JSON-able, order-stable view of settings used for hashing."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return canonical(dataclasses.asdict(obj))
    if isinstance(obj, dict):
        return {str(k): canonical(v) for k, v in sorted(obj.items(), key=lambda kv: str(kv[0]))}
    if isinstance(obj, (list, tuple)):
        return [canonical(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, float):
        return repr(obj)
    if hasattr(obj, "item") and callable(obj.item):  # numpy scalars
        return canonical(obj.item())
    return obj


def stable_hash(obj: Any, length: int = 16) -> str:
    """sha256 of the canonical JSON of ``obj``, truncated."""
    blob = json.dumps(canonical(obj), sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:length]


@contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it into place on success."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def atomic_write_bytes(target: Path, data: bytes) -> None:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(target: Path, text: str) -> None:
    atomic_write_bytes(target, text.encode())


class ArtifactStore:
    """Artifacts of one preset: ``root/<kind>/<key>.<ext>``."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, kind: str, key: str, ext: str) -> Path:
        return self.root / kind / f"{key}.{ext}"

    def key(self, kind: str, inputs: Any) -> str:
        return stable_hash({"kind": kind, "inputs": inputs})

    # --- pickled Python objects (numpy arrays, dataframes, dicts) -------------
    def cached(self, kind: str, inputs: Any, compute: Callable[[], T], ext: str = "pkl") -> T:
        """Return the artifact for ``inputs`` or compute, save atomically and return it."""
        target = self.path(kind, self.key(kind, inputs), ext)
        if target.exists():
            return self.load(target)
        value = compute()
        self.save(target, value)
        return value

    @staticmethod
    def save(target: Path, value: Any) -> None:
        target = Path(target)
        if target.suffix == ".json":
            atomic_write_text(target, json.dumps(value, indent=1, default=_json_default))
        else:
            with atomic_path(target) as tmp, open(tmp, "wb") as fh:
                pickle.dump(value, fh, protocol=pickle.HIGHEST_PROTOCOL)

    @staticmethod
    def load(target: Path) -> Any:
        target = Path(target)
        if target.suffix == ".json":
            return json.loads(target.read_text())
        with open(target, "rb") as fh:
            return pickle.load(fh)

    def list(self, kind: str, ext: str = "pkl") -> list[Path]:
        return sorted((self.root / kind).glob(f"*.{ext}"))


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if dataclasses.is_dataclass(obj):
        return dataclasses.asdict(obj)
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


class JsonlLog:
    """Append-only JSON-lines file for caches built one record at a time (LLM calls).

    Each record is written with one ``write`` + flush + fsync. On read, a torn last
    line (a run killed mid-append) is ignored, so a rerun resumes after the last
    complete record.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def read(self) -> list[dict]:
        if not self.path.exists():
            return []
        records = []
        with open(self.path, "rb") as fh:
            for raw in fh:
                if not raw.endswith(b"\n"):
                    break  # torn final write
                try:
                    records.append(json.loads(raw))
                except json.JSONDecodeError:
                    continue
        return records

    def append(self, records: list[dict]) -> None:
        if not records:
            return
        self._repair_tail()
        payload = "".join(json.dumps(r, default=_json_default) + "\n" for r in records).encode()
        with open(self.path, "ab") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())

    def _repair_tail(self) -> None:
        """Cut a torn last line so new records start on a fresh line."""
        if not self.path.exists() or self.path.stat().st_size == 0:
            return
        with open(self.path, "rb+") as fh:
            fh.seek(-1, os.SEEK_END)
            if fh.read(1) == b"\n":
                return
            data = fh.seek(0) or fh.read()
            cut = data.rfind(b"\n") + 1
            fh.truncate(cut)
