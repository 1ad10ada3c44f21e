"""Seed summaries, the paired t-test and the paper's table marks on hand-made numbers."""
from __future__ import annotations

import math

import pandas as pd
import pytest

from hnlmrec_lib.tables import paired_test, paper_table, summarize


def _frame():
    rows = []
    for seed, (ours, rns, dns) in enumerate([(3.0, 0.5, 1.0), (4.0, 1.5, 2.0), (5.0, 2.0, 2.5)]):
        rows += [
            {"backbone": "lightgcn", "method": "ours", "seed": seed, "ndcg@20": ours / 10},
            {"backbone": "lightgcn", "method": "rns", "seed": seed, "ndcg@20": rns / 10},
            {"backbone": "lightgcn", "method": "dns", "seed": seed, "ndcg@20": dns / 10},
        ]
    return pd.DataFrame(rows)


def test_paired_t_test_by_hand():
    frame = _frame()
    frame.loc[(frame.method == "ours") & (frame.seed == 2), "ndcg@20"] = 0.35
    # ours = [.30,.40,.35], dns = [.10,.20,.25]: d = [.2,.2,.1], mean .16667, s .057735,
    # se .033333, t = 5.0 with df = 2
    # two-sided p for df=2: 1 - t/sqrt(t^2+2) = 1 - 5/sqrt(27)
    imp, p = paired_test(frame, "lightgcn", "ours", "dns", "ndcg@20")
    assert p == pytest.approx(1 - 5 / math.sqrt(27), rel=1e-6)
    assert imp == pytest.approx(100 * (0.35 - 0.55 / 3) / (0.55 / 3), rel=1e-3)


def test_summary_mean_std():
    s = summarize(_frame(), metrics=["ndcg@20"])
    assert s.loc[("lightgcn", "rns"), ("ndcg@20", "mean")] == pytest.approx(0.13333, rel=1e-4)
    assert s.loc[("lightgcn", "rns"), ("ndcg@20", "std")] == pytest.approx(0.076376, rel=1e-4)
    assert s.loc[("lightgcn", "rns"), ("n_seeds", "")] == 3


def test_table_marks_best_baseline_and_significance():
    table = paper_table(_frame(), baselines=["rns", "dns"], ours=["ours"], metrics=["ndcg@20"])
    assert table.loc[("lightgcn", "ours"), "ndcg@20"] == "**40.00***"
    assert table.loc[("lightgcn", "dns"), "ndcg@20"] == "<u>18.33</u>"
    assert table.loc[("lightgcn", "rns"), "ndcg@20"] == "13.33"
    assert "vs dns" in table.loc[("lightgcn", "ours: improv."), "ndcg@20"]


def test_no_star_when_ours_loses():
    frame = _frame()
    frame.loc[frame.method == "ours", "ndcg@20"] = 0.01
    table = paper_table(frame, baselines=["rns", "dns"], ours=["ours"], metrics=["ndcg@20"])
    assert "*" not in table.loc[("lightgcn", "ours"), "ndcg@20"]
    assert table.loc[("lightgcn", "dns"), "ndcg@20"] == "**18.33**"


def test_run_key_reads_only_relevant_settings():
    import dataclasses

    from hnlmrec_lib.config import load_preset
    from hnlmrec_lib.experiments import RunSpec, run_inputs

    cfg = load_preset("smoke")
    other = dataclasses.replace(cfg, cf=dataclasses.replace(cfg.cf, sgl_tau=0.9, ahns_beta=0.9))
    lightgcn = RunSpec("lightgcn", "dns", 0)
    assert run_inputs(cfg, lightgcn) == run_inputs(other, lightgcn)      # unrelated settings
    assert run_inputs(cfg, RunSpec("sgl", "rns", 0)) != run_inputs(other, RunSpec("sgl", "rns", 0))
    assert run_inputs(cfg, RunSpec("mf", "ahns", 0)) != run_inputs(other, RunSpec("mf", "ahns", 0))
    assert run_inputs(cfg, lightgcn) != run_inputs(cfg, RunSpec("lightgcn", "dns", 1))


def test_llm_grid_puts_hnlmrec_everywhere_and_other_llm_rows_on_the_main_backbone():
    from hnlmrec_lib import experiments
    from hnlmrec_lib.config import load_preset

    cfg = load_preset("default")
    specs = experiments.llm_grid(cfg, ["naive-gemma3-270m", "hnlmrec", "hnlmrec+align", "hnlmrec+align+norm"])
    by_method: dict[str, set] = {}
    for s in specs:
        by_method.setdefault(s.method, set()).add((s.backbone, s.seed))
    assert {b for b, _ in by_method["hnlmrec+align"]} == set(cfg.cf.llm_backbones) == {"mf", "lightgcn", "ngcf"}
    for m in ("naive-gemma3-270m", "hnlmrec"):
        assert {b for b, _ in by_method[m]} == {cfg.cf.main_backbone}
        assert {s for _, s in by_method[m]} == set(cfg.cf.main_seeds)
    assert by_method["hnlmrec+align+norm"] == {(cfg.cf.main_backbone, s) for s in cfg.cf.seeds}
    assert ("mf", cfg.cf.seeds[-1]) in by_method["hnlmrec+align"]


def test_grid_in_worker_processes_matches_one_process(tmp_path):
    """cf.workers > 1 trains the missing runs in spawned processes: same records, each run
    trained once (a duplicate spec is not trained twice), and a rerun reuses them all."""
    import dataclasses

    from hnlmrec_lib import experiments, notebook
    from hnlmrec_lib.artifacts import ArtifactStore

    session = notebook.start("smoke", {"cf.epochs": 3, "cf.min_epochs": 3})
    data = session.data()
    specs = [experiments.RunSpec("lightgcn", "dns", 0), experiments.RunSpec("mf", "rns", 1),
             experiments.RunSpec("lightgcn", "dns", 0)]
    one = dataclasses.replace(session.cfg, cf=dataclasses.replace(session.cfg.cf, threads=1, workers=1))
    two = dataclasses.replace(session.cfg, cf=dataclasses.replace(session.cfg.cf, threads=2, workers=2))
    here = experiments.run_grid(one, data, ArtifactStore(tmp_path / "one"), specs)
    store = ArtifactStore(tmp_path / "two")
    there = experiments.run_grid(two, data, store, specs)
    assert len(store.list(experiments.RUN_KIND)) == 2
    for a, b in zip(here, there):
        assert a["label"] == b["label"] and a["test"] == b["test"] and a["best_epoch"] == b["best_epoch"]
    files = {p: p.stat().st_mtime_ns for p in store.list(experiments.RUN_KIND)}
    experiments.run_grid(two, data, store, specs)
    assert {p: p.stat().st_mtime_ns for p in store.list(experiments.RUN_KIND)} == files
    with pytest.raises(KeyError, match="unknown method 'nope'"):   # a worker's error reaches the caller
        experiments.run_grid(two, data, store, [experiments.RunSpec("mf", "nope", 0),
                                                experiments.RunSpec("mf", "dns", 2)])
