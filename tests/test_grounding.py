"""Grounding generated negative names in a hand-made catalogue and text-domain FHNS shares."""
from __future__ import annotations

import numpy as np
import pytest

from hnlmrec_lib.negatives.grounding import (fhns_text_stats, ground, ground_generations,
                                             is_failed, normalize_title, split_year)

TITLES = ["Toy Story", "Usual Suspects, The", "Heat", "Heat", "Alien", "Toy Story 2",
          "Shawshank Redemption, The", "Postino, Il"]
YEARS = [1995, 1995, 1986, 1995, 1979, 1999, 1994, 1994]


@pytest.mark.parametrize("raw, norm", [
    ("Usual Suspects, The (1995)", "usual suspects"),
    ("The Usual Suspects", "usual suspects"),
    ("City of Lost Children, The (Cité des enfants perdus, La) (1995)", "city of lost children"),
    ("Postino, Il", "il postino"),
    ("Godfather: Part II", "godfather part 2"),
    ("Beauty & the Beast", "beauty and the beast"),
    ("  \"A Bug's Life.\" ", "bugs life"),
    ("Die Hard", "die hard"),
    (None, ""),
])
def test_normalize_title(raw, norm):
    assert normalize_title(raw) == norm


def test_split_year_and_failed():
    assert split_year("Heat (1995)") == ("Heat", 1995)
    assert split_year("Heat") == ("Heat", None)
    assert all(is_failed(x) for x in (None, "", "None", " n/a ", float("nan")))
    assert not is_failed("Nonesuch")


def test_ground_on_hand_made_catalogue():
    names = ["Toy Story", "The Usual Suspects", "Shawshank Redemtion", "toy story 2 (1999)",
             "Heat (1995)", "Il Postino", "Alien Resurrection", "Toy Story 3", "Jurassic Park",
             None, "None"]
    items, scores = ground(names, TITLES, 85.0, catalogue_years=YEARS)
    assert items.tolist() == [0, 1, 6, 5, 3, 7, -1, -1, -1, -1, -1]
    assert scores[[0, 1, 3, 4, 5]].tolist() == [100.0] * 5          # exact after normalising
    assert 85.0 <= scores[2] < 100.0                                # fuzzy (typo)
    assert scores[9] == 0.0 and scores[10] == 0.0                   # failed names
    assert scores[7] == 0.0                                         # sequel guard


def test_ground_ties_without_years_and_threshold():
    items, _ = ground(["Heat (1995)"], TITLES, 85.0)
    assert items.tolist() == [2]                                    # lowest index of the tie
    items, scores = ground(["Shawshank Redemtion"], TITLES, 99.0)
    assert items.tolist() == [-1] and 85.0 <= scores[0] < 99.0      # below a strict threshold
    items, _ = ground(["Toy Story"] * 5, TITLES, 85.0, chunk=2)     # chunking is transparent
    assert items.tolist() == [0] * 5


def test_ground_generations_keeps_failed_candidates_apart():
    out = ground_generations([["Toy Story", None, "Jurassic Park"], None, ["None", "Heat"]],
                             TITLES, 85.0)
    assert out == [[0, None, -1], [], [None, 2]]


def test_fhns_text_stats_by_hand():
    train = [np.array([0, 1]), np.array([2])]
    valid = [np.array([2]), np.array([3])]
    test = [np.array([3]), np.array([4])]
    generations = [[0, 1, 5],          # user 0, v+ = 0: self, train positive, true negative
                   [None, -1, 5],      # user 0, v+ = 1: failed, not grounded, repeat of 5
                   [3, 4, 4]]          # user 1, v+ = 2: valid positive, test positive twice
    stats = fhns_text_stats(generations, train, valid, test, pair_items=[0, 1, 2],
                            pair_users=[0, 0, 1])
    expected = {"n_pairs": 3, "n_candidates": 9, "failed": 1 / 9, "not_grounded": 1 / 9,
                "grounded": 7 / 9, "self_item": 1 / 9, "train_positive": 1 / 9,
                "valid_positive": 1 / 9, "test_positive": 2 / 9, "duplicate": 2 / 9,
                "false_hard_negative": 5 / 9, "false_hard_negative_of_grounded": 5 / 7}
    assert stats == pytest.approx(expected)
    # without pair_users the positives are aligned with the pairs; duplicates are per pair
    aligned = fhns_text_stats(generations, [train[0], train[0], train[1]],
                              [valid[0], valid[0], valid[1]], [test[0], test[0], test[1]],
                              pair_items=[0, 1, 2])
    assert aligned["duplicate"] == pytest.approx(1 / 9)
    assert aligned["false_hard_negative"] == pytest.approx(5 / 9)
