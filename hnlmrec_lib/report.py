"""Writing figures (PNG + PDF) and tables (CSV + Markdown) from results."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from .artifacts import atomic_path, atomic_write_text


def save_figure(fig, name: str, root: str | Path) -> list[Path]:
    """Save ``fig`` as ``root/name.png`` and ``root/name.pdf`` (atomic writes)."""
    root = Path(root)
    paths = []
    for ext in ("png", "pdf"):
        target = root / f"{name}.{ext}"
        with atomic_path(target) as tmp:
            fig.savefig(tmp, format=ext, dpi=150, bbox_inches="tight",
                        metadata={"CreationDate": None} if ext == "pdf" else None)
        paths.append(target)
    return paths


def save_table(df: pd.DataFrame, name: str, root: str | Path, index: bool = True,
               floatfmt: str = ".4f") -> list[Path]:
    """Save ``df`` as ``root/tables/name.csv`` and ``.md``."""
    if isinstance(df.index, pd.MultiIndex):  # flat columns read better in CSV and Markdown
        df, index = df.reset_index(), False
    tables = Path(root) / "tables"
    csv_path, md_path = tables / f"{name}.csv", tables / f"{name}.md"
    atomic_write_text(csv_path, df.to_csv(index=index))
    shown = df.copy()
    for col in shown.columns:  # keep integer columns integer in the Markdown view
        if pd.api.types.is_integer_dtype(shown[col]):
            shown[col] = shown[col].astype(object)
    atomic_write_text(md_path, shown.to_markdown(index=index, floatfmt=floatfmt) + "\n")
    return [csv_path, md_path]
