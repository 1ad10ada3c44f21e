"""Yelp Open Dataset: ``review.json`` and ``business.json``, one JSON object per line.

Reviews carry user_id, business_id, stars, date ("2016-03-09 00:44:03", UTC) and text;
businesses carry business_id, name, city, state and categories (one comma-separated
string). Official names ``yelp_academic_dataset_<kind>.json`` are accepted too.
"""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator

import pandas as pd

from .raw import (INTERACTION_COLUMNS, ITEM_COLUMNS, USER_COLUMNS, RawSource, chunked,
                  clean_text, find_file, iter_records, key_skipper)

NAME = "yelp"
CHUNK_ROWS = 200_000
SUFFIXES = [".json", ".json.gz"]


def unix_seconds(date: str) -> int:
    """Unix seconds of a Yelp date string, read as UTC."""
    return int(datetime.fromisoformat(str(date).strip()).replace(tzinfo=timezone.utc).timestamp())


def split_categories(value: object) -> list[str]:
    """"Restaurants, Pizza" -> ["Restaurants", "Pizza"]; lists pass through."""
    if value is None:
        return []
    parts = value if isinstance(value, list) else str(value).split(",")
    return [clean_text(p) for p in parts if clean_text(p)]


def _review(limit: int) -> Callable[[dict], tuple]:
    def convert(r: dict) -> tuple:
        return (str(r["user_id"]), str(r["business_id"]), float(r["stars"]),
                unix_seconds(r["date"]), clean_text(r.get("text"), limit))
    return convert


def _business(r: dict) -> tuple:
    place = ", ".join(p for p in (clean_text(r.get("city")), clean_text(r.get("state"))) if p)
    details = f"City: {place}" if place else ""
    return (str(r["business_id"]), clean_text(r.get("name"), 200), None,
            split_categories(r.get("categories")), details)


def read_businesses(path: Path, ids: set[str]) -> pd.DataFrame:
    """Business rows for ``ids`` (first record of a duplicated id wins)."""
    rows: dict[str, tuple] = {}
    for record in iter_records(path, required=["business_id"],
                               skip=key_skipper("business_id", ids)):
        key = str(record["business_id"])
        if key in ids and key not in rows:
            rows[key] = _business(record)
    return pd.DataFrame(list(rows.values()), columns=ITEM_COLUMNS)


def source(raw_dir: Path, review_chars: int) -> RawSource:
    """The Yelp ``RawSource`` from ``raw_dir/yelp/``."""
    folder = raw_dir / NAME
    reviews = find_file(folder, ["review", "yelp_academic_dataset_review"], SUFFIXES,
                        "Yelp review file")
    business = find_file(folder, ["business", "yelp_academic_dataset_business"], SUFFIXES,
                         "Yelp business file")
    required = ["user_id", "business_id", "stars", "date"]

    def chunks() -> Iterator[pd.DataFrame]:
        rows = iter_records(reviews, required, _review(review_chars))
        return chunked(rows, INTERACTION_COLUMNS, CHUNK_ROWS)

    def users(ids: set[str]) -> pd.DataFrame:
        return pd.DataFrame({"user": sorted(ids), "demographics": ""})[USER_COLUMNS]

    return RawSource(name=NAME, chunks=chunks, items=lambda ids: read_businesses(business, ids),
                     users=users, genre_label="Categories", files=[reviews, business])
