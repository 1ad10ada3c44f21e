"""Ground LLM-generated negative names in the catalogue and measure text-domain FHNS.

``ground`` maps each generated name to a catalogue item (or -1) by fuzzy matching of
normalised titles (rapidfuzz). ``fhns_text_stats`` then counts how often the naive
prompting of Eq. 4 (v2) fails, names a real item, repeats the interacted item, or names
one of the user's own positives: false hard negatives already in the text domain
(the "False Negative trap" of v2 Sec. 1).
"""
from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Collection, Sequence
from typing import Any

import numpy as np
from rapidfuzz import fuzz, process

_YEAR = re.compile(r"\s*[\(\[]\s*(\d{4})\s*[\)\]]\s*$")
_TRAILING_PAREN = re.compile(r"^(.+?)\s*\([^()]*\)\s*$")
_TRAILING_ARTICLE = re.compile(
    r"^(.+?),\s*(the|a|an|les|la|le|l'|il|el|los|las|das|der|die)$")
_LEADING_ENGLISH_ARTICLE = re.compile(r"^(the|a|an)\s+(?=\S)")
_ROMAN = {"ii": "2", "iii": "3", "iv": "4", "vi": "6", "vii": "7", "viii": "8", "ix": "9"}
_FAILED = {"", "none", "null", "n/a", "na", "nan", "unknown"}


def split_year(title: str) -> tuple[str, int | None]:
    """'Heat (1995)' -> ('Heat', 1995); a title without a trailing year keeps year None."""
    match = _YEAR.search(title)
    if match is None:
        return title, None
    return title[: match.start()], int(match.group(1))


def normalize_title(title: Any) -> str:
    """Canonical form for matching: accents folded, lowercase, trailing '(1995)' and one
    trailing alternate title '(Se7en)' dropped, a trailing article moved to the front
    ('Usual Suspects, The' -> 'the usual suspects'), a leading English article dropped,
    '&' -> 'and', roman numerals II-IX -> digits, punctuation removed. None -> ''."""
    if title is None or (isinstance(title, float) and np.isnan(title)):
        return ""
    text = unicodedata.normalize("NFKD", str(title))
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    text = " ".join(text.lower().replace("\u2019", "'").split()).strip(" \"'.")
    text, _ = split_year(text)
    paren = _TRAILING_PAREN.match(text)
    if paren is not None:
        text = paren.group(1)
    article = _TRAILING_ARTICLE.match(text)
    if article is not None:
        text = f"{article.group(2)} {article.group(1)}"
    text = _LEADING_ENGLISH_ARTICLE.sub("", text).replace("&", " and ").replace("'", "")
    words = re.sub(r"[^0-9a-z]+", " ", text).split()
    return " ".join(_ROMAN.get(w, w) for w in words)


def is_failed(name: Any) -> bool:
    """A generation that names nothing: None, NaN, empty, or a literal 'None'/'N/A'."""
    if name is None or (isinstance(name, float) and np.isnan(name)):
        return True
    return str(name).strip().strip(" \"'.").lower() in _FAILED


def _numbers(norm: str) -> str:
    """The digit tokens of a normalised title, the sequel guard's signature."""
    return " ".join(w for w in norm.split() if w.isdigit())


def ground(names: Sequence[Any], catalogue_titles: Sequence[Any], threshold: float, *,
           catalogue_years: Sequence[Any] | None = None,
           scorer: Callable[..., float] = fuzz.token_sort_ratio,
           chunk: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Catalogue index of each name (-1 below ``threshold`` or failed) and its score.

    Scores (0-100) come from ``scorer`` on normalised titles. Default token_sort_ratio:
    word order does not matter but extra words do, whereas token_set_ratio / WRatio give
    90-100 to 'Alien' vs 'Alien Resurrection' or 'Toy Story' vs 'Toy Story 2'. Sequel
    guard: a name and a title whose digit tokens differ score 0. Ties (a title shared
    by several items) go to the item whose year equals a year given in the name, if
    ``catalogue_years`` is given, else to the lowest index. Computed in chunks of names.
    """
    titles = [normalize_title(t) for t in catalogue_titles]
    sig_ids: dict[str, int] = {}
    title_sig = np.array([sig_ids.setdefault(_numbers(t), len(sig_ids)) for t in titles])
    years = None if catalogue_years is None else np.array(
        [int(y) if y is not None and not (isinstance(y, float) and np.isnan(y)) else -1
         for y in catalogue_years])
    items = np.full(len(names), -1, dtype=np.int64)
    scores = np.zeros(len(names), dtype=np.float64)
    live = [i for i, n in enumerate(names) if not is_failed(n)]
    for start in range(0, len(live), chunk):
        part = live[start:start + chunk]
        norm = [normalize_title(names[i]) for i in part]
        table = process.cdist(norm, titles, scorer=scorer, dtype=np.float32, workers=1)
        name_sig = np.array([sig_ids.get(_numbers(n), -1) for n in norm])
        table[name_sig[:, None] != title_sig[None, :]] = 0
        best = table.max(axis=1, keepdims=True)
        key = (table >= best).astype(np.int8) * 2
        if years is not None:
            name_years = np.array([split_year(str(names[i]).strip())[1] or -2 for i in part])
            key += (table >= best) & (years[None, :] == name_years[:, None])
        pick = key.argmax(axis=1)
        got = table[np.arange(len(part)), pick].astype(np.float64)
        ok = (got >= threshold) & (got > 0)
        items[part] = np.where(ok, pick, -1)
        scores[part] = got
    return items, scores


def ground_generations(generations: Sequence[Sequence[Any] | None],
                       catalogue_titles: Sequence[Any], threshold: float,
                       **kwargs: Any) -> list[list[int | None]]:
    """Ground every candidate name of every pair: None stays None (failed generation),
    else the catalogue index or -1. A whole failed generation (None) gives []."""
    rows = [list(g) if g is not None else [] for g in generations]
    flat = [name for row in rows for name in row]
    items, _ = ground(flat, catalogue_titles, threshold, **kwargs)
    out, pos = [], 0
    for row in rows:
        out.append([None if is_failed(name) else int(items[pos + j]) for j, name in enumerate(row)])
        pos += len(row)
    return out


def fhns_text_stats(generations: Sequence[Sequence[int | None]],
                    user_pos_train: Sequence[Collection[int]],
                    user_pos_valid: Sequence[Collection[int]],
                    user_pos_test: Sequence[Collection[int]],
                    pair_items: Sequence[int],
                    pair_users: Sequence[int] | None = None) -> dict[str, float]:
    """Shares of the generated candidates, text domain (v2 Sec. 1 "False Negative trap").

    generations[i]: the grounded candidates of pair i (``ground_generations``): None =
    failed / unparseable, -1 = parsed but not in the catalogue, else an item index.
    pair_items[i]: v+ of pair i. user_pos_*: each user's positives per split, indexed by
    ``pair_users[i]``; with ``pair_users`` None they are aligned with the pairs instead.

    Every share is over all candidates (n_candidates) and the categories below
    'grounded' are exclusive: self_item (the interacted item v+ itself),
    train_positive (another train positive), valid_positive, test_positive;
    false_hard_negative is their sum (a user's own positive offered as a negative) and
    false_hard_negative_of_grounded the same over grounded candidates. duplicate:
    grounded candidates repeating an earlier candidate of the same user (same pair
    when ``pair_users`` is None).
    """
    users = range(len(generations)) if pair_users is None else pair_users
    counts = dict.fromkeys(["failed", "not_grounded", "grounded", "self_item", "train_positive",
                            "valid_positive", "test_positive", "duplicate"], 0)
    seen: dict[int, set[int]] = {}
    n_cand = 0
    for cands, user, item in zip(generations, users, pair_items):
        seen_u = seen.setdefault(int(user), set())
        for c in cands:
            n_cand += 1
            if c is None:
                counts["failed"] += 1
                continue
            if c < 0:
                counts["not_grounded"] += 1
                continue
            counts["grounded"] += 1
            if c in seen_u:
                counts["duplicate"] += 1
            seen_u.add(c)
            if c == item:
                counts["self_item"] += 1
            elif c in user_pos_train[user]:
                counts["train_positive"] += 1
            elif c in user_pos_valid[user]:
                counts["valid_positive"] += 1
            elif c in user_pos_test[user]:
                counts["test_positive"] += 1
    fhn = sum(counts[k] for k in ("self_item", "train_positive", "valid_positive", "test_positive"))
    stats: dict[str, float] = {"n_pairs": float(len(generations)), "n_candidates": float(n_cand)}
    denom = max(n_cand, 1)
    stats.update({k: v / denom for k, v in counts.items()})
    stats["false_hard_negative"] = fhn / denom
    stats["false_hard_negative_of_grounded"] = fhn / max(counts["grounded"], 1)
    return stats
