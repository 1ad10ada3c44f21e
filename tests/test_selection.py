"""The one-standard-error rule on hand-made validation runs."""
from __future__ import annotations

import pandas as pd
import pytest

from hnlmrec_lib.selection import one_standard_error_choice


def _runs(rows):
    return pd.DataFrame(rows, columns=["backbone", "lr", "valid", "epochs"])


def test_cheaper_setting_within_one_standard_error_is_chosen():
    # lr 2e-3: mean 0.232, sem = std / sqrt(3) = 0.002 / 1.732 = 0.0011547; 5e-3: mean 0.2312
    runs = _runs([("sgl", 2e-3, v, 80) for v in (0.230, 0.232, 0.234)]
                 + [("sgl", 5e-3, v, 50) for v in (0.2302, 0.2312, 0.2322)]
                 + [("sgl", 1e-3, v, 100) for v in (0.226, 0.228, 0.230)])
    out = one_standard_error_choice(runs, "backbone", "lr", "valid", "epochs").set_index("lr")
    assert out.loc[2e-3, "sem"] == pytest.approx(0.002 / 3 ** 0.5)
    assert list(out["eligible"]) == [False, True, True]          # 0.228 < 0.232 - 0.00115
    assert out["chosen"].idxmax() == 5e-3                         # 0.2312 >= 0.23085, fewer epochs


def test_best_is_kept_when_the_cheaper_one_is_clearly_worse():
    runs = _runs([("mf", 1e-3, v, 70) for v in (0.216, 0.218, 0.220)]
                 + [("mf", 5e-3, v, 25) for v in (0.210, 0.212, 0.214)]
                 + [("lightgcn", 5e-3, v, 70) for v in (0.231, 0.233)])
    out = one_standard_error_choice(runs, "backbone", "lr", "valid", "epochs")
    chosen = out[out["chosen"]].set_index("backbone")["lr"].to_dict()
    assert chosen == {"mf": 1e-3, "lightgcn": 5e-3}
    assert out.groupby("backbone")["chosen"].sum().tolist() == [1, 1]
