"""Choosing a setting on VALID runs: the one-standard-error rule.

Among candidate settings (say learning rates), the best mean validation metric over seeds is
itself noisy; settings whose mean lies within one standard error of it are indistinguishable
on this evidence. The rule (Breiman et al., *Classification and Regression Trees*, 1984)
takes the cheapest of those. Here "cheapest" is the fewest training epochs, so a faster
setting is kept only when validation cannot tell it from the best.
"""
from __future__ import annotations

import pandas as pd


def one_standard_error_choice(runs: pd.DataFrame, group: str, setting: str, metric: str,
                              cost: str) -> pd.DataFrame:
    """Per ``group`` (e.g. backbone), the ``setting`` to use from per-seed ``runs``.

    Returns one row per (group, setting) with the mean and standard error of ``metric``,
    the mean ``cost``, ``eligible`` (mean >= best mean - its standard error) and ``chosen``
    (the eligible setting of lowest mean cost; ties go to the higher mean metric).
    """
    summary = (runs.groupby([group, setting])
               .agg(mean=(metric, "mean"), sem=(metric, "sem"), cost=(cost, "mean"),
                    seeds=(metric, "size"))
               .reset_index())
    summary["sem"] = summary["sem"].fillna(0.0)   # one seed: no spread to allow for
    summary["eligible"] = False
    summary["chosen"] = False
    for _, rows in summary.groupby(group):
        best = rows.loc[rows["mean"].idxmax()]
        eligible = rows[rows["mean"] >= best["mean"] - best["sem"]]
        summary.loc[eligible.index, "eligible"] = True
        pick = eligible.sort_values(["cost", "mean"], ascending=[True, False]).index[0]
        summary.loc[pick, "chosen"] = True
    return summary


__all__ = ["one_standard_error_choice"]
