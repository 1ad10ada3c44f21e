"""Pull the JSON object a prompt asked for out of messy small-model output.

Small models wrap the object in prose or code fences, use single quotes or Python literals,
leave trailing commas, forget closing braces (or are cut off by ``max_new_tokens``), nest the
answer in another object, or emit several objects. ``extract_json`` tries every ``{`` in
order, repairs what it can, and returns the first object that holds the required keys (key
names are matched ignoring case, spaces and underscores). It never raises.
"""
from __future__ import annotations

import ast
import json
import re
import warnings
from typing import Any, Sequence

MAX_CANDIDATES = 64
_FENCE = re.compile(r"```[a-zA-Z]*")
_TRAILING_COMMA = re.compile(r",(\s*[}\]])")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PY_LITERALS = {"True": "true", "False": "false", "None": "null"}
_SMART = str.maketrans({"\u201c": '"', "\u201d": '"', "\u2018": "'", "\u2019": "'"})


def extract_json(text: Any, required_keys: Sequence[str] = ()) -> tuple[dict | None, str]:
    """Return ``(obj, "")`` for the first valid object with ``required_keys``, else
    ``(None, reason)``."""
    try:
        return _extract(text, tuple(required_keys))
    except Exception as err:  # a parser bug must not stop a study run
        return None, f"parser error: {type(err).__name__}: {err}"


def _extract(text: Any, required: tuple[str, ...]) -> tuple[dict | None, str]:
    if not isinstance(text, str) or not text.strip():
        return None, "empty output"
    clean = _FENCE.sub("", text).translate(_SMART)
    starts = [i for i, ch in enumerate(clean) if ch == "{"][:MAX_CANDIDATES]
    if not starts:
        return None, "no JSON object found (no '{' in the output)"
    first_missing: str | None = None
    parsed_any = False
    for start in starts:
        obj = _parse_candidate(_balanced(clean, start))
        if not isinstance(obj, dict):
            continue
        parsed_any = True
        matched, missing = _match_keys(obj, required)
        if not missing:
            return matched, ""
        if first_missing is None:
            first_missing = (f"JSON object lacks required keys {missing} "
                             f"(has {sorted(map(str, obj))})")
    if parsed_any and first_missing:
        return None, first_missing
    return None, "no parseable JSON object found"


def _balanced(text: str, start: int) -> str:
    """The object starting at ``start``: up to its matching brace, or to the end of the text
    with an open string and any open brackets closed (truncated output)."""
    stack: list[str] = []
    quote: str | None = None
    prev = ""  # last significant character outside strings
    i = start
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == "\\":
                i += 2
                continue
            if ch == quote and (quote == '"' or _ends_single(text, i)):
                quote, prev = None, ch
        elif ch in "\"'":
            if ch == '"' or prev in "{[,:":
                quote = ch
        elif ch in "{[":
            stack.append("}" if ch == "{" else "]")
        elif ch in "}]":
            if stack and stack[-1] == ch:
                stack.pop()
            if not stack:
                return text[start:i + 1]
        if not quote and not ch.isspace():
            prev = ch
        i += 1
    tail = text[start:].rstrip()
    if quote:
        tail += quote
    if stack and stack[-1] == "}":  # inside an object: drop a key cut off before its value
        tail = re.sub(r',\s*"[^"]*"\s*:?\s*$', "", tail)
    tail = re.sub(r"[,:]\s*$", "", tail)
    return tail + "".join(reversed(stack))


def _ends_single(text: str, i: int) -> bool:
    """A single quote closes a string only before a delimiter (so "user's" stays inside)."""
    rest = text[i + 1:].lstrip()
    return not rest or rest[0] in ",:}]"


def _parse_candidate(blob: str) -> Any:
    for attempt in (blob, _repair(blob)):
        try:
            return json.loads(attempt, strict=False)
        except (json.JSONDecodeError, RecursionError):
            pass
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # invalid escape sequences in model text
            return ast.literal_eval(_TRAILING_COMMA.sub(r"\1", blob))
    except (ValueError, SyntaxError, MemoryError, RecursionError, TypeError):
        return None


def _repair(blob: str) -> str:
    """Outside strings: single-quoted strings to double, Python literals to JSON, bare keys
    quoted, trailing commas dropped. Text inside strings is left as it is."""
    out: list[str] = []
    quote: str | None = None
    prev = ""
    i = 0
    while i < len(blob):
        ch = blob[i]
        if quote:
            if ch == "\\" and i + 1 < len(blob):
                nxt = blob[i + 1]
                out.append(nxt if (quote == "'" and nxt == "'") else ch + nxt)
                i += 2
                continue
            if ch == quote and (quote == '"' or _ends_single(blob, i)):
                out.append('"')
                quote, prev = None, '"'
            elif ch == '"':  # a double quote inside a single-quoted string
                out.append('\\"')
            else:
                out.append(ch)
            i += 1
            continue
        if ch == '"' or (ch == "'" and prev in "{[,:"):
            if prev == '"' or prev in "}]" or prev.isdigit():
                out.append(",")  # a missing comma between members
            quote = ch
            out.append('"')
        elif m := _WORD.match(blob, i):
            token = m.group(0)
            after = blob[m.end():].lstrip()
            if prev in "{," and after.startswith(":"):
                out.append(f'"{token}"')  # a bare key
            else:
                out.append(_PY_LITERALS.get(token, token))
            i = m.end()
            prev = token[-1]
            continue
        elif ch in "}]":
            while out and (out[-1].isspace() or out[-1] == ","):  # trailing comma
                out.pop()
            out.append(ch)
        else:
            out.append(ch)
        if not ch.isspace():
            prev = ch
        i += 1
    return "".join(out)


def _norm(key: Any) -> str:
    return re.sub(r"[\s_\-]+", "", str(key)).lower()


def _match_keys(obj: dict, required: tuple[str, ...]) -> tuple[dict, list[str]]:
    """Rename near-miss keys ("Hard Negative Item") to the required names; list the missing."""
    out = dict(obj)
    by_norm = {_norm(k): k for k in obj}
    missing = []
    for key in required:
        if key in out:
            continue
        found = by_norm.get(_norm(key))
        if found is None:
            missing.append(key)
        else:
            out[key] = out.pop(found)
    return out, missing
