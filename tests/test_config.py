"""Presets read into one typed config; bad keys and values are named."""
from __future__ import annotations

import pytest

from hnlmrec_lib.config import ConfigError, load_preset


@pytest.mark.parametrize("name", ["smoke", "default", "paper"])
def test_presets_load(name):
    cfg = load_preset(name)
    assert cfg.name == name
    assert abs(sum(cfg.data.split) - 1.0) < 1e-9
    assert cfg.cf.main_backbone in cfg.cf.backbones


def test_smoke_is_small_and_default_is_full():
    smoke, default = load_preset("smoke"), load_preset("default")
    assert smoke.data.max_users is not None and default.data.max_users is None
    assert smoke.llm.tiny_random and not default.llm.tiny_random
    assert len(default.cf.main_seeds) == 5 and len(default.cf.seeds) >= 3
    assert "runs" in smoke.figure_root.parts  # smoke never overwrites figures/


def test_unknown_key_names_key_and_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("cf:\n  epoch: 3\n")
    with pytest.raises(ConfigError) as err:
        load_preset(bad)
    assert "epoch" in str(err.value) and "bad.yaml" in str(err.value)


def test_bad_value_type_is_named(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("cf:\n  epochs: many\n")
    with pytest.raises(ConfigError, match="cf.epochs"):
        load_preset(bad)


def test_dotted_overrides_apply_and_are_checked():
    cfg = load_preset("smoke", {"cf.epochs": 2, "llm": {"max_new_tokens": 5}})
    assert cfg.cf.epochs == 2 and cfg.llm.max_new_tokens == 5
    with pytest.raises(ConfigError, match="nonsense"):
        load_preset("smoke", {"cf.nonsense": 1})


def test_unknown_preset_lists_known():
    with pytest.raises(ConfigError, match="smoke"):
        load_preset("smokey")
