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
    tokens = _table("profiles_user_prompt_tokens").iloc[0]
    assert 0 < tokens["mean tokens"] <= tokens["max tokens"]
    assert tokens["limit (llm.max_prompt_tokens)"] == SMOKE.llm.max_prompt_tokens
    rho = _table("profiles_semantic_vs_cooccurrence")["spearman rho"].iloc[0]
    assert -1.0 <= rho <= 1.0 and rho == rho


def check_02():
    fhns = _table("naive_generation_grounding_fhns").set_index("Unnamed: 0")
    assert set(fhns.index) == set(SMOKE.negatives.llms)
    parts = ["failed", "not_grounded", "grounded"]
    assert (fhns[parts].sum(axis=1) - 1.0).abs().max() < 1e-9      # every candidate is counted once
    assert (fhns["false_hard_negative"] <= fhns["grounded"] + 1e-12).all()
    table = _table("table2_naive_llm_alignment")
    assert {"rns", "dns", "mixgcf", "ahns"} <= set(table["method"])
    rns = float(table.loc[table.method == "rns", "ndcg@20"].iloc[0].strip("*<u>/"))
    assert 3.0 < rns < 40.0          # LightGCN on the smoke slice, percent


def check_03():
    retrieval = _table("sft_retrieval_before_after").set_index("Unnamed: 0")
    assert retrieval.loc["n", "after SFT"] >= 1
    assert 0.0 < retrieval.loc["mrr", "after SFT"] <= 1.0
    table = _table("table1_hnlmrec_rows")
    assert {"hnlmrec", "hnlmrec+align"} <= set(table["method"])
    assert set(table["backbone"]) == set(SMOKE.cf.backbones)


def check_04():
    table = _table("main_results_mean_std")
    lightgcn = table[(table.backbone == "lightgcn") & (table.method == "rns")].iloc[0]
    assert lightgcn["n_seeds"] == len(SMOKE.cf.main_seeds)
    assert 0.03 < lightgcn["ndcg@20 mean"] < 0.4
    assert (table["recall@20 mean"] >= table["recall@10 mean"]).all()
    grid = _table("main_results_ndcg20_grid").set_index("backbone")
    assert set(grid.index) == set(SMOKE.cf.backbones)


def check_05():
    table = _table("table2_llm_alignment_ablation")
    assert any(m.startswith("naive-") for m in table["method"])
    assert (SMOKE.figure_root / "tables" / "table3v1_hnlmrec_ablation.csv").exists()


CHECKS = {name[len("check_"):]: fn for name, fn in dict(globals()).items() if name.startswith("check_")}


@pytest.mark.notebooks
@pytest.mark.parametrize("book", list_notebooks(), ids=lambda p: p.stem)
def test_notebook_runs_on_smoke(book, tmp_path):
    run_notebook(book, "smoke", ROOT / "runs" / "smoke")
    check = CHECKS.get(book.name[:2])
    assert check is not None, f"no value checks for {book.name}: add check_{book.name[:2]}"
    check()
