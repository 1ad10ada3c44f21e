"""Profiles (Eq. 2-3 (v2)): prompts from train interactions only; failures fall back, counted."""
from __future__ import annotations

import json

import numpy as np

from hnlmrec_lib.profiles import item_info, user_history, user_prompt_for
from hnlmrec_lib.prompts import hard_negative_prompt, item_profile_prompt


def test_user_prompt_uses_train_items_only(toy_data):
    item_text = [f"profile of {t}" for t in toy_data.items["title"]]
    for user in range(toy_data.n_users):
        prompt = user_prompt_for(toy_data, user, item_text, max_items=10, seed=0)
        train_titles = set(toy_data.items.title[toy_data.train[toy_data.train[:, 0] == user, 1]])
        held_out = toy_data.items.title[np.concatenate([
            toy_data.valid[toy_data.valid[:, 0] == user, 1],
            toy_data.test[toy_data.test[:, 0] == user, 1]])]
        for title in held_out:
            assert title not in prompt.user, f"user {user}: held-out item {title!r} leaked"
        for title in train_titles:
            assert title in prompt.user


def test_user_history_prefers_high_ratings_and_is_bounded(toy_data):
    toy_data.train_ratings = np.array([4, 5, 4, 5, 4, 5, 4, 5], dtype=float)
    rows = user_history(toy_data, 0, max_items=1, seed=0)
    assert len(rows) == 1 and toy_data.train_ratings[rows[0]] == 5


def test_prompts_carry_json_inputs_and_keys(toy_data):
    p = item_profile_prompt("ml-100k", item_info(toy_data, 0), [])
    assert json.loads(p.user)["title"] == "Toy Story"
    assert p.keys == ("summarization", "reasoning")
    assert p.completion_text().endswith('Answer: {"summarization": "')
    roles = [m["role"] for m in p.messages()]
    assert roles == ["system", "user", "assistant", "user"]      # one worked example as a turn
    assert p.messages()[-1]["content"] == p.user
    h = hard_negative_prompt("ml-100k", "likes comedies", "Babe", "family comedy", k=3)
    assert "exactly 3" in h.system and h.keys[0] == "hard negative items"
