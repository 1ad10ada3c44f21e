"""Every notebook runs end to end on the smoke preset, and what it writes makes sense."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from hnlmrec_lib.config import load_preset
from hnlmrec_lib.study import list_notebooks, run_notebook

ROOT = Path(__file__).resolve().parents[1]
SMOKE = load_preset("smoke")
TABLES = SMOKE.figure_root / "tables"


def _table(name: str) -> pd.DataFrame:
    path = TABLES / f"{name}.csv"
    assert path.exists(), f"{path} was not written"
    return pd.read_csv(path)


def check_00():
    stats = _table("table3_dataset_statistics").iloc[0]
    assert 50 <= stats["users"] <= SMOKE.data.max_users
    assert 100 <= stats["items"] <= 1682
    assert stats["train"] > 4 * stats["test"]
    assert 0.01 < stats["density"] < 0.5
    groups = _table("data_popularity_groups").set_index("group")
    assert set(groups.index) == {"Popular", "Normal", "Unpopular"}
    assert groups.loc["Popular", "share of clicks"] > groups.loc["Popular", "items"] / groups["items"].sum()


def check_01():
    report = _table("profiles_json_success").set_index("profiles")
    assert report.loc["item", "asked"] == SMOKE.profiles.max_items
    assert report.loc["user", "asked"] == SMOKE.profiles.max_users
    assert 0.0 <= report.loc["item", "json_ok_rate"] <= 1.0   # a random tiny LLM: any rate
    rho = _table("profiles_semantic_vs_cooccurrence")["spearman rho"].iloc[0]
    assert -1.0 <= rho <= 1.0 and rho == rho


CHECKS = {name[len("check_"):]: fn for name, fn in dict(globals()).items() if name.startswith("check_")}


@pytest.mark.notebooks
@pytest.mark.parametrize("book", list_notebooks(), ids=lambda p: p.stem)
def test_notebook_runs_on_smoke(book, tmp_path):
    run_notebook(book, "smoke", ROOT / "runs" / "smoke")
    check = CHECKS.get(book.name[:2])
    assert check is not None, f"no value checks for {book.name}: add check_{book.name[:2]}"
    check()
