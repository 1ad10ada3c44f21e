"""Machine-dependent settings: ``auto`` dtypes and the allocator setting."""
from __future__ import annotations

import platform

import pytest

from hnlmrec_lib import runtime
from hnlmrec_lib.config import ConfigError, load_preset


@pytest.mark.parametrize("native, expected", [(True, "bfloat16"), (False, "float32")])
def test_auto_dtype_follows_the_hardware(monkeypatch, native, expected):
    monkeypatch.setattr(runtime, "native_bf16", lambda: native)
    assert runtime.resolve_dtype("auto") == expected
    assert runtime.resolve_dtype("float32") == "float32"      # concrete values pass through
    assert runtime.resolve_dtype("bfloat16") == "bfloat16"


def test_unknown_dtype_names_the_setting():
    with pytest.raises(ValueError, match="llm.dtype='fp8'"):
        runtime.resolve_dtype("fp8", "llm.dtype")


@pytest.mark.parametrize("native, expected", [(True, "bfloat16"), (False, "float32")])
def test_presets_hold_the_resolved_dtype(monkeypatch, native, expected):
    """Cache keys hash the config: they must see the dtype that runs, never "auto"."""
    monkeypatch.setattr(runtime, "native_bf16", lambda: native)
    for preset in ("default", "smoke"):
        cfg = load_preset(preset)
        assert cfg.negatives.aligner_dtype == expected
    assert load_preset("default").llm.dtype == expected
    assert load_preset("default", {"llm.dtype": "float32"}).llm.dtype == "float32"


def test_bad_dtype_in_a_preset_is_a_config_error():
    with pytest.raises(ConfigError, match="negatives.aligner_dtype"):
        load_preset("default", {"negatives.aligner_dtype": "half"})


def test_this_machine_reports_its_bf16_units():
    facts = runtime.machine_facts()
    assert isinstance(facts["native_bf16"], bool) and facts["cores"] >= 1
    assert facts["cpu_capability"]


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_glibc_keeps_freed_memory():
    assert runtime.keep_freed_memory() is True   # every mallopt call was accepted


def test_keeping_freed_memory_can_be_switched_off(monkeypatch):
    monkeypatch.setenv("HNLMREC_KEEP_FREED", "0")
    assert runtime.keep_freed_memory.__wrapped__() is False
