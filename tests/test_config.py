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


def test_backbone_lr_reads_a_mapping_and_names_bad_entries(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text("cf:\n  lr: 0.001\n  backbone_lr: {lightgcn: 0.005, sgl: 5.0e-3}\n")
    cf = load_preset(good).cf
    assert (cf.lr_for("lightgcn"), cf.lr_for("sgl"), cf.lr_for("mf")) == (0.005, 0.005, 0.001)
    bad = tmp_path / "bad.yaml"
    bad.write_text("cf:\n  backbone_lr: {lightgnc: 0.005}\n")
    with pytest.raises(ConfigError, match=r"bad.yaml.*lightgnc"):
        load_preset(bad)
    bad.write_text("cf:\n  backbone_lr: {mf: fast}\n")
    with pytest.raises(ConfigError, match=r"cf.backbone_lr.mf"):
        load_preset(bad)


def test_run_settings_resolve_the_backbone_lr_and_overrides():
    from hnlmrec_lib.experiments import RunSpec, run_cf_config, run_inputs

    cfg = load_preset("smoke", {"cf.lr": 1e-3, "cf.backbone_lr": {"ngcf": 2e-3}, "cf.ngcf_reg": 3e-5})
    ngcf = run_cf_config(cfg, RunSpec("ngcf", "rns", 0))
    assert (ngcf.lr, ngcf.reg, ngcf.ngcf_reg) == (2e-3, 3e-5, 3e-5)
    # an override reaches the model (it used to be shadowed by NGCF's own learning rate)
    tuned = run_cf_config(cfg, RunSpec("ngcf", "rns", 0, (("lr", 5e-3),)))
    assert tuned.lr == 5e-3 and tuned.lr_for("ngcf") == 5e-3
    assert run_cf_config(cfg, RunSpec("mf", "rns", 0)).lr == 1e-3
    # the key holds the learning rate that trains, and only the backbone's own
    key = run_inputs(cfg, RunSpec("mf", "rns", 0))
    other = load_preset("smoke", {"cf.lr": 1e-3, "cf.backbone_lr": {"ngcf": 9e-3}, "cf.ngcf_reg": 3e-5})
    assert run_inputs(other, RunSpec("mf", "rns", 0)) == key
    assert run_inputs(other, RunSpec("ngcf", "rns", 0)) != run_inputs(cfg, RunSpec("ngcf", "rns", 0))
