"""Refresh the result tables quoted in README.md from ``figures/tables/*.md``.

README.md marks each quoted table as ``<!-- table:NAME -->`` … ``<!-- /table -->``; this
module replaces the text between the markers with the current ``figures/tables/NAME.md``,
so the README shows exactly what the last ``make study`` wrote. Missing tables are left as
they are and reported.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

from .artifacts import atomic_write_text
from .config import PROJECT_ROOT

BLOCK = re.compile(r"(<!-- table:(?P<name>[\w\-]+) -->\n)(?P<body>.*?)(<!-- /table -->)", re.S)


def refresh(readme: Path = PROJECT_ROOT / "README.md",
            tables: Path = PROJECT_ROOT / "figures" / "tables") -> list[str]:
    """Rewrite the marked blocks; return the names of tables that were missing."""
    text = readme.read_text()
    missing: list[str] = []

    def fill(match: re.Match) -> str:
        path = tables / f"{match['name']}.md"
        if not path.exists():
            missing.append(match["name"])
            return match.group(0)
        return match.group(1) + path.read_text().rstrip("\n") + "\n" + match.group(4)

    new = BLOCK.sub(fill, text)
    if new != text:
        atomic_write_text(readme, new)
    return missing


if __name__ == "__main__":
    gone = refresh()
    if gone:
        print("README tables not produced yet: " + ", ".join(gone), file=sys.stderr)
