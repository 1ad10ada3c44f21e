"""Amazon Reviews 2018 and 2023: one review file and one metadata file per category.

2018 (McAuley lab, "Amazon Review Data 2018"): ``<Category>.json[.gz]`` with fields
reviewerID, asin, overall, unixReviewTime, reviewText, summary; ``meta_<Category>.json[.gz]``
with asin, title, category (older dumps: categories, a list of lists), brand, description.
Metadata lines are often Python literals (single quotes); they are read with ``json`` and
then ``ast.literal_eval``, never ``eval``.

2023 (McAuley lab, "Amazon Reviews'23"): ``<Category>.jsonl[.gz]`` with user_id,
parent_asin, rating, timestamp (milliseconds), text, title; ``meta_<Category>.jsonl[.gz]``
with parent_asin, title, categories, main_category, store, features. Items are
``parent_asin`` (product families), as in the 2023 benchmark scripts.
"""
from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any, Callable, Iterator

import pandas as pd

from .raw import (INTERACTION_COLUMNS, ITEM_COLUMNS, USER_COLUMNS, DataError, RawSource,
                  chunked, clean_text, find_file, iter_records, key_skipper)

CHUNK_ROWS = 200_000
TITLE_CHARS = 200
DETAIL_CHARS = 200
MAX_CATEGORIES = 6
_TAG = re.compile(r"<[^>]+>")


def plain(value: Any, limit: int | None = None) -> str:
    """Text without HTML tags or entities, whitespace collapsed, cut to ``limit``."""
    return clean_text(_TAG.sub(" ", html.unescape(clean_text(value))), limit)


def category_list(value: Any) -> list[str]:
    """Flatten a category field (list, list of lists or string) into unique names."""
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    names: list[str] = []
    for entry in value:
        for name in (entry if isinstance(entry, (list, tuple)) else [entry]):
            text = plain(name, 80)
            if text and text not in names:
                names.append(text)
    return names[:MAX_CATEGORIES]


def review_text(summary: Any, body: Any, limit: int) -> str:
    """"<summary>. <body>" (either may be missing), cut to ``limit`` characters."""
    if limit <= 0:
        return ""
    head, text = clean_text(summary, limit), clean_text(body, limit)
    joined = f"{head}. {text}" if head and text else head or text
    return joined[:limit]


def details_line(pairs: list[tuple[str, Any]]) -> str:
    """"Brand: X; Store: Y" from labelled values, skipping empty ones."""
    parts = []
    for label, value in pairs:
        text = plain(value, DETAIL_CHARS)
        if text:
            parts.append(f"{label}: {text}")
    return "; ".join(parts)


def _stems(source: str) -> tuple[list[str], list[str]]:
    """Review and metadata file stems for a category (a ``_5`` 5-core stem shares the meta)."""
    if not source:
        raise DataError("data.source must name the Amazon category file stem, "
                        "e.g. 'Toys_and_Games' (see data/README.md)")
    base = source[:-2] if source.endswith("_5") else source
    return [source], [f"meta_{source}", f"meta_{base}"]


def _read_meta(path: Path, key: str, ids: set[str],
               to_row: Callable[[dict], tuple]) -> pd.DataFrame:
    """Metadata rows for ``ids`` only; the first record of a duplicated id wins."""
    rows: dict[str, tuple] = {}
    for record in iter_records(path, required=[key], skip=key_skipper(key, ids)):
        item = str(record[key])
        if item in ids and item not in rows:
            rows[item] = to_row(record)
    return pd.DataFrame(list(rows.values()), columns=ITEM_COLUMNS)


def _no_users(ids: set[str]) -> pd.DataFrame:
    return pd.DataFrame({"user": sorted(ids), "demographics": ""})[USER_COLUMNS]


# ---------------------------------------------------------------- Amazon 2018
def _review_2018(limit: int) -> Callable[[dict], tuple]:
    def convert(r: dict) -> tuple:
        return (str(r["reviewerID"]), str(r["asin"]), float(r["overall"]),
                int(r["unixReviewTime"]), review_text(r.get("summary"), r.get("reviewText"), limit))
    return convert


def _meta_2018(r: dict) -> tuple:
    cats = category_list(r.get("category") or r.get("categories"))
    details = details_line([("Brand", r.get("brand")), ("Description", r.get("description"))])
    return (str(r["asin"]), plain(r.get("title"), TITLE_CHARS), None, cats, details)


def source_2018(raw_dir: Path, category: str, review_chars: int) -> RawSource:
    """Amazon 2018 ``RawSource`` from ``raw_dir/amazon2018/<category>.json[.gz]`` + meta."""
    folder = raw_dir / "amazon2018"
    review_stems, meta_stems = _stems(category)
    reviews = find_file(folder, review_stems, [".json.gz", ".json"], "Amazon 2018 review file")
    meta = find_file(folder, meta_stems, [".json.gz", ".json"], "Amazon 2018 metadata file")
    required = ["reviewerID", "asin", "overall", "unixReviewTime"]

    def chunks() -> Iterator[pd.DataFrame]:
        rows = iter_records(reviews, required, _review_2018(review_chars))
        return chunked(rows, INTERACTION_COLUMNS, CHUNK_ROWS)

    return RawSource(name=f"amazon2018/{category}", chunks=chunks,
                     items=lambda ids: _read_meta(meta, "asin", ids, _meta_2018),
                     users=_no_users, genre_label="Categories", files=[reviews, meta])


# ---------------------------------------------------------------- Amazon 2023
def _review_2023(limit: int) -> Callable[[dict], tuple]:
    def convert(r: dict) -> tuple:
        return (str(r["user_id"]), str(r["parent_asin"]), float(r["rating"]),
                int(r["timestamp"]) // 1000, review_text(r.get("title"), r.get("text"), limit))
    return convert


def _meta_2023(r: dict) -> tuple:
    cats = category_list(r.get("categories"))
    details = details_line([("Main category", r.get("main_category")), ("Store", r.get("store")),
                            ("Features", r.get("features"))])
    return (str(r["parent_asin"]), plain(r.get("title"), TITLE_CHARS), None, cats, details)


def source_2023(raw_dir: Path, category: str, review_chars: int) -> RawSource:
    """Amazon 2023 ``RawSource`` from ``raw_dir/amazon2023/<category>.jsonl[.gz]`` + meta."""
    folder = raw_dir / "amazon2023"
    review_stems, meta_stems = _stems(category)
    reviews = find_file(folder, review_stems, [".jsonl.gz", ".jsonl"], "Amazon 2023 review file")
    meta = find_file(folder, meta_stems, [".jsonl.gz", ".jsonl"], "Amazon 2023 metadata file")
    required = ["user_id", "parent_asin", "rating", "timestamp"]

    def chunks() -> Iterator[pd.DataFrame]:
        rows = iter_records(reviews, required, _review_2023(review_chars))
        return chunked(rows, INTERACTION_COLUMNS, CHUNK_ROWS)

    return RawSource(name=f"amazon2023/{category}", chunks=chunks,
                     items=lambda ids: _read_meta(meta, "parent_asin", ids, _meta_2023),
                     users=_no_users, genre_label="Categories", files=[reviews, meta])
