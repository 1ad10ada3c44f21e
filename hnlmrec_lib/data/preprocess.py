"""Filtering pipeline: rating threshold, date window, de-duplication, optional user
subset, iterative k-core, contiguous id remapping.

Every step appends ``{"step", "setting", "rows", "users", "items"}`` to ``stats["steps"]``
(counts *after* the step). A step that leaves no interaction raises ``EmptyDataError``
naming the step and its setting.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Iterable

import numpy as np
import pandas as pd

from ..config import DataConfig
from .raw import INTERACTION_COLUMNS, DataError, EmptyDataError

_HINTS = {
    "rating": "lower data.rating_threshold",
    "date": "check data.date_start / data.date_end against the dates in the file",
    "max_users": "raise data.max_users",
    "k-core": "lower data.k_core or keep more users (data.max_users)",
}


@dataclass
class Preprocessed:
    """Filtered interactions with contiguous ``uid``/``iid`` and the raw id of each index."""

    frame: pd.DataFrame           # uid, iid, rating, timestamp, review; sorted by (uid, iid)
    user_ids: np.ndarray          # raw user id of each uid
    item_ids: np.ndarray          # raw item id of each iid
    stats: dict = field(default_factory=dict)


def date_to_unix(text: str | None, setting: str) -> int | None:
    """Unix seconds (UTC midnight) of an ISO date; a bad value names the setting."""
    if text is None or str(text).strip() == "":
        return None
    try:
        day = date.fromisoformat(str(text).strip())
    except ValueError:
        raise DataError(f"{setting}={text!r} is not an ISO date (YYYY-MM-DD)") from None
    return int(datetime(day.year, day.month, day.day, tzinfo=timezone.utc).timestamp())


def rating_mask(frame: pd.DataFrame, threshold: float | None) -> np.ndarray:
    """Rows with rating >= threshold (all rows when threshold is None)."""
    if threshold is None:
        return np.ones(len(frame), dtype=bool)
    return (frame["rating"] >= threshold).to_numpy()


def date_mask(frame: pd.DataFrame, start: int | None, end: int | None) -> np.ndarray:
    """Rows with start <= timestamp < end (open bounds when None)."""
    keep = np.ones(len(frame), dtype=bool)
    ts = frame["timestamp"].to_numpy()
    if start is not None:
        keep &= ts >= start
    if end is not None:
        keep &= ts < end
    return keep


class StepLog:
    """Collects per-step counts and raises when a step empties the data."""

    def __init__(self) -> None:
        self.steps: list[dict] = []

    def add(self, step: str, setting: str, frame: pd.DataFrame) -> None:
        self.record(step, setting, len(frame), frame["user"].nunique(), frame["item"].nunique())

    def record(self, step: str, setting: str, rows: int, users: int, items: int) -> None:
        self.steps.append({"step": step, "setting": setting, "rows": int(rows),
                           "users": int(users), "items": int(items)})
        if rows == 0:
            hint = _HINTS.get(step, "")
            raise EmptyDataError(
                f"no interactions left after the {step} filter ({setting})"
                + (f"; {hint}" if hint else "")
            )


def filter_chunks(chunks: Iterable[pd.DataFrame], cfg: DataConfig, log: StepLog) -> pd.DataFrame:
    """Read every chunk, keep rows passing the rating threshold and date window."""
    start = date_to_unix(cfg.date_start, "data.date_start")
    end = date_to_unix(cfg.date_end, "data.date_end")
    names = ["read", "rating", "date"]
    rows = dict.fromkeys(names, 0)
    users: dict[str, set] = {n: set() for n in names}
    items: dict[str, set] = {n: set() for n in names}
    kept: list[pd.DataFrame] = []
    first_ts, last_ts = None, None
    for chunk in chunks:
        stages = {"read": chunk}
        if len(chunk):
            lo, hi = int(chunk["timestamp"].min()), int(chunk["timestamp"].max())
            first_ts = lo if first_ts is None else min(first_ts, lo)
            last_ts = hi if last_ts is None else max(last_ts, hi)
        stages["rating"] = chunk[rating_mask(chunk, cfg.rating_threshold)]
        stages["date"] = stages["rating"][date_mask(stages["rating"], start, end)]
        for name, part in stages.items():
            rows[name] += len(part)
            users[name].update(part["user"].unique())
            items[name].update(part["item"].unique())
        kept.append(stages["date"])
    span = "no rows" if first_ts is None else (
        f"file spans {_iso(first_ts)}..{_iso(last_ts)}")
    settings = {
        "read": "",
        "rating": f"rating_threshold={cfg.rating_threshold}",
        "date": f"date_start={cfg.date_start}, date_end={cfg.date_end}; {span}",
    }
    for name in names:
        if name == "read" and rows[name] == 0:
            raise EmptyDataError("the interaction file holds no rows")
        log.record(name, settings[name], rows[name], len(users[name]), len(items[name]))
    if not kept:
        return pd.DataFrame(columns=INTERACTION_COLUMNS)
    return pd.concat(kept, ignore_index=True)


def _iso(ts: int) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).date().isoformat()


def deduplicate(frame: pd.DataFrame) -> pd.DataFrame:
    """Keep the earliest row of each (user, item) pair."""
    frame = frame.sort_values("timestamp", kind="stable")
    return frame.drop_duplicates(["user", "item"], keep="first").reset_index(drop=True)


def sample_users(frame: pd.DataFrame, max_users: int | None, seed: int) -> pd.DataFrame:
    """Rows of a seeded random subset of ``max_users`` users (all rows when None)."""
    users = np.sort(frame["user"].unique().astype(str))
    if max_users is None or max_users >= len(users):
        return frame
    if max_users <= 0:
        raise DataError(f"data.max_users={max_users} must be positive or null")
    chosen = np.random.default_rng(seed).choice(users, size=max_users, replace=False)
    return frame[frame["user"].isin(set(chosen))].reset_index(drop=True)


def kcore(frame: pd.DataFrame, k: int) -> tuple[pd.DataFrame, int]:
    """Drop users and items with fewer than ``k`` rows, repeated until nothing changes.

    Returns the filtered frame and the number of passes that removed something. The
    result is the unique largest sub-graph where every user and item has >= k rows.
    """
    if k < 0:
        raise DataError(f"data.k_core={k} must be >= 0")
    passes = 0
    while len(frame):
        user_n = frame.groupby("user")["user"].transform("size").to_numpy()
        item_n = frame.groupby("item")["item"].transform("size").to_numpy()
        keep = (user_n >= k) & (item_n >= k)
        if keep.all():
            break
        frame = frame[keep].reset_index(drop=True)
        passes += 1
    return frame, passes


def ordered_ids(values: pd.Series) -> np.ndarray:
    """Unique ids, sorted numerically when all are integers, else as strings."""
    uniq = pd.unique(values.astype(str))
    if all(v.isdigit() for v in uniq):
        return np.array(sorted(uniq, key=int), dtype=object)
    return np.array(sorted(uniq), dtype=object)


def remap(frame: pd.DataFrame) -> Preprocessed:
    """Contiguous ``uid``/``iid`` (ids ordered by ``ordered_ids``); rows sorted by them."""
    user_ids, item_ids = ordered_ids(frame["user"]), ordered_ids(frame["item"])
    uid = pd.Index(user_ids).get_indexer(frame["user"].astype(str))
    iid = pd.Index(item_ids).get_indexer(frame["item"].astype(str))
    out = pd.DataFrame({"uid": uid.astype(np.int64), "iid": iid.astype(np.int64),
                        "rating": frame["rating"].to_numpy(dtype=np.float64),
                        "timestamp": frame["timestamp"].to_numpy(dtype=np.int64),
                        "review": frame["review"].to_numpy()})
    out = out.sort_values(["uid", "iid"], kind="stable").reset_index(drop=True)
    return Preprocessed(frame=out, user_ids=user_ids, item_ids=item_ids)


def preprocess(chunks: Iterable[pd.DataFrame], cfg: DataConfig) -> Preprocessed:
    """Run the whole filtering pipeline on raw interaction chunks."""
    log = StepLog()
    frame = filter_chunks(chunks, cfg, log)
    frame = deduplicate(frame)
    log.add("dedup", "earliest row per (user, item)", frame)
    if cfg.max_users is not None:
        frame = sample_users(frame, cfg.max_users, cfg.split_seed)
        log.add("max_users", f"max_users={cfg.max_users}, seed={cfg.split_seed}", frame)
    frame, passes = kcore(frame, cfg.k_core)
    log.add("k-core", f"k_core={cfg.k_core}, {passes} passes", frame)
    out = remap(frame)
    out.stats = {"steps": log.steps, "kcore_passes": passes}
    return out
