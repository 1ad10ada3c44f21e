"""Summaries over seeds, significance against the best baseline, and the paper's table layout.

Layout of Table 1 / Table 5 (v2): for each backbone and metric, **bold** marks the
best method, <u>underline</u> the best baseline, and ``*`` a method whose improvement
over the best baseline is significant (paired t-test over seeds, p < 0.05).
"""
from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np
import pandas as pd
from scipy import stats

METRICS = ("recall@10", "ndcg@10", "recall@20", "ndcg@20")


def summarize(frame: pd.DataFrame, metrics: Sequence[str] = METRICS,
              by: Sequence[str] = ("backbone", "method")) -> pd.DataFrame:
    """Mean, std and number of seeds of each metric per group."""
    grouped = frame.groupby(list(by), sort=False)[list(metrics)]
    out = grouped.agg(["mean", "std"])
    out[("n_seeds", "")] = grouped.size()
    return out


def paired_test(frame: pd.DataFrame, backbone: str, method: str, baseline: str,
                metric: str) -> tuple[float, float]:
    """Improvement (%) of ``method`` over ``baseline`` and the p-value over seeds.

    Seeds present for both are paired (``scipy.stats.ttest_rel``); with fewer than two
    shared seeds the p-value is NaN.
    """
    sub = frame[frame.backbone == backbone]
    a = sub[sub.method == method].set_index("seed")[metric]
    b = sub[sub.method == baseline].set_index("seed")[metric]
    shared = a.index.intersection(b.index)
    improvement = 100.0 * (a.mean() - b.mean()) / b.mean() if b.mean() else float("nan")
    if len(shared) < 2:
        return improvement, float("nan")
    res = stats.ttest_rel(a.loc[shared], b.loc[shared])
    p = float(res.pvalue) if np.isfinite(res.pvalue) else 1.0
    return improvement, p


def best_baseline(frame: pd.DataFrame, backbone: str, baselines: Iterable[str], metric: str) -> str:
    means = frame[(frame.backbone == backbone) & frame.method.isin(list(baselines))] \
        .groupby("method")[metric].mean()
    return str(means.idxmax())


def paper_table(frame: pd.DataFrame, baselines: Sequence[str], ours: Sequence[str],
                metrics: Sequence[str] = METRICS, backbones: Sequence[str] | None = None,
                scale: float = 100.0, digits: int = 2) -> pd.DataFrame:
    """Rows (backbone, method), one column per metric, marked as in Table 1 (v2).

    Values are means over seeds times ``scale`` (the papers print percentages). For each
    method in ``ours`` an extra row gives the improvement over the best baseline in % and
    the p-value of the paired t-test.
    """
    backbones = list(backbones or dict.fromkeys(frame.backbone))
    rows, index = [], []
    for backbone in backbones:
        sub = frame[frame.backbone == backbone]
        methods = [m for m in list(baselines) + list(ours) if m in set(sub.method)]
        if not methods:
            continue
        means = sub.groupby("method")[list(metrics)].mean()
        present_baselines = [m for m in baselines if m in means.index]
        for method in methods:
            cells = []
            for metric in metrics:
                value = means.loc[method, metric]
                text = f"{scale * value:.{digits}f}"
                if method in ours and present_baselines:
                    ref = best_baseline(sub, backbone, present_baselines, metric)
                    _, p = paired_test(sub, backbone, method, ref, metric)
                    if p < 0.05 and value > means.loc[ref, metric]:
                        text += "*"
                if np.isclose(value, means[metric].max()):
                    text = f"**{text}**"
                elif present_baselines and method == means.loc[present_baselines, metric].idxmax():
                    text = f"<u>{text}</u>"
                cells.append(text)
            rows.append(cells)
            index.append((backbone, method))
        for method in [m for m in ours if m in means.index and present_baselines]:
            cells = []
            for metric in metrics:
                ref = best_baseline(sub, backbone, present_baselines, metric)
                imp, p = paired_test(sub, backbone, method, ref, metric)
                cells.append(f"{imp:+.1f}% vs {ref} (p={p:.3f})")
            rows.append(cells)
            index.append((backbone, f"{method}: improv."))
    return pd.DataFrame(rows, index=pd.MultiIndex.from_tuples(index, names=["backbone", "method"]),
                        columns=list(metrics))
