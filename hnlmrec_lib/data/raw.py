"""What every reader returns, the data errors, and a safe JSON-lines record reader.

A reader turns one source (MovieLens, Amazon 2018/2023, Yelp) into a ``RawSource``:
interaction chunks with the columns ``user, item, rating, timestamp, review`` (ids as
strings, timestamp in Unix seconds UTC, review text possibly empty) and, on demand,
item and user metadata for the ids that survived filtering.
"""
from __future__ import annotations

import ast
import gzip
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, TextIO

import pandas as pd

INTERACTION_COLUMNS = ["user", "item", "rating", "timestamp", "review"]
ITEM_COLUMNS = ["item", "title", "year", "genres", "details"]
USER_COLUMNS = ["user", "demographics"]


class DataError(ValueError):
    """A data file or data setting is unusable; the message names file, line, field or setting."""


class MissingFileError(DataError, FileNotFoundError):
    """An expected raw file is absent."""


class MalformedLineError(DataError):
    """A line of a data file could not be parsed."""


class MissingFieldError(DataError):
    """A record lacks a required field."""


class EmptyDataError(DataError):
    """A filter removed every interaction."""


@dataclass
class RawSource:
    """One dataset as read from disk, before any filtering.

    ``chunks`` yields interaction DataFrames (``INTERACTION_COLUMNS``) so large files
    are filtered piece by piece. ``items(ids)`` / ``users(ids)`` return metadata rows
    (``ITEM_COLUMNS`` / ``USER_COLUMNS``) for the given raw ids only; ids absent from
    the metadata files get empty text. ``genre_label`` names the genres column in text
    ("Genres" for films, "Categories" for products and businesses).
    """

    name: str
    chunks: Callable[[], Iterator[pd.DataFrame]]
    items: Callable[[set[str]], pd.DataFrame]
    users: Callable[[set[str]], pd.DataFrame]
    genre_label: str = "Genres"
    files: list[Path] = field(default_factory=list)


def open_text(path: Path) -> TextIO:
    """Open a plain or gzip-compressed UTF-8 text file."""
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8")
    return open(path, encoding="utf-8")


def parse_record(line: str) -> Any:
    """Parse one line as JSON, falling back to a Python literal (never ``eval``).

    Amazon 2018 metadata lines are often Python dict literals with single quotes;
    ``ast.literal_eval`` accepts only literals, so no code can run.
    """
    try:
        return json.loads(line)
    except json.JSONDecodeError:
        return ast.literal_eval(line)


def numbered_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, text) of a file; an undecodable or truncated file names the line."""
    if not path.exists():
        raise MissingFileError(f"{path} not found")
    lineno = 0
    with open_text(path) as fh:
        try:
            for lineno, line in enumerate(fh, start=1):
                yield lineno, line
        except (UnicodeDecodeError, EOFError, OSError) as err:
            raise MalformedLineError(
                f"{path}, line {lineno + 1}: cannot read ({type(err).__name__}: {err})"
            ) from None


def iter_records(path: Path, required: Iterable[str] = (),
                 convert: Callable[[dict], Any] | None = None,
                 skip: Callable[[str], bool] | None = None) -> Iterator[Any]:
    """Yield each non-blank line of ``path`` as a dict, or as ``convert(dict)``.

    Errors name the file and line: unparsable text, a non-object, a missing required
    field, or a value ``convert`` rejects (``ValueError``/``TypeError``). Lines for which
    ``skip(text)`` is true are not parsed (a cheap pre-filter for metadata files).
    """
    required = tuple(required)
    for lineno, line in numbered_lines(path):
        line = line.strip()
        if not line or (skip is not None and skip(line)):
            continue
        try:
            record = parse_record(line)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError) as err:
            raise MalformedLineError(
                f"{path}, line {lineno}: not JSON nor a Python literal "
                f"({type(err).__name__}); starts with {line[:60]!r}"
            ) from None
        if not isinstance(record, dict):
            raise MalformedLineError(
                f"{path}, line {lineno}: expected an object, got {type(record).__name__}"
            )
        for name in required:
            if record.get(name) is None:
                raise MissingFieldError(f"{path}, line {lineno}: missing field {name!r}")
        if convert is None:
            yield record
            continue
        try:
            row = convert(record)
        except (ValueError, TypeError) as err:
            raise MalformedLineError(f"{path}, line {lineno}: bad value ({err})") from None
        yield row


def key_skipper(key: str, wanted: set[str]) -> Callable[[str], bool]:
    """``skip`` for ``iter_records``: true when a line's ``key`` value is plainly unwanted.

    The value is found with a regular expression on the raw text; lines where it cannot
    be found are parsed as usual.
    """
    pattern = re.compile(r"""["']%s["']\s*:\s*["']([^"']*)["']""" % re.escape(key))

    def skip(line: str) -> bool:
        found = pattern.search(line)
        return found is not None and found.group(1) not in wanted
    return skip


def chunked(rows: Iterable[tuple], columns: list[str], size: int) -> Iterator[pd.DataFrame]:
    """Group row tuples into DataFrames of at most ``size`` rows."""
    batch: list[tuple] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield pd.DataFrame(batch, columns=columns)
            batch = []
    if batch:
        yield pd.DataFrame(batch, columns=columns)


def find_file(folder: Path, stems: Iterable[str], suffixes: Iterable[str], what: str) -> Path:
    """First existing ``folder/<stem><suffix>``; otherwise an error listing what was tried."""
    tried = [folder / f"{stem}{suffix}" for stem in stems for suffix in suffixes]
    for path in tried:
        if path.exists():
            return path
    names = ", ".join(p.name for p in tried)
    raise MissingFileError(
        f"{what} not found in {folder}; expected one of: {names} (see data/README.md)"
    )


def clean_text(value: Any, limit: int | None = None) -> str:
    """Whitespace-collapsed string of ``value`` (lists joined), cut to ``limit`` chars.

    With a limit, only the first ``4 * limit + 64`` raw characters are looked at, so long
    review texts cost little.
    """
    if value is None or limit == 0:
        return ""
    if isinstance(value, (list, tuple)):
        value = " ".join(clean_text(v, limit) for v in value)
    text = str(value)
    if limit is not None:
        text = text[: 4 * limit + 64]
    text = " ".join(text.split())
    return text[:limit] if limit is not None else text
