"""Artifact store: stable keys, reuse, atomic writes that survive a killed writer."""
from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import numpy as np

from hnlmrec_lib.artifacts import ArtifactStore, JsonlLog, stable_hash


def test_hash_depends_on_exactly_the_inputs():
    assert stable_hash({"a": 1, "b": [1, 2]}) == stable_hash({"b": [1, 2], "a": 1})
    assert stable_hash({"a": 1}) != stable_hash({"a": 2})
    assert stable_hash({"lr": 0.001}) != stable_hash({"lr": 0.0011})


def test_cached_computes_once(tmp_path):
    store = ArtifactStore(tmp_path)
    calls = []

    def compute():
        calls.append(1)
        return np.arange(5)

    first = store.cached("thing", {"n": 5}, compute)
    second = store.cached("thing", {"n": 5}, compute)
    assert len(calls) == 1 and np.array_equal(first, second)
    store.cached("thing", {"n": 6}, compute)
    assert len(calls) == 2


def test_killed_writer_leaves_no_partial_artifact(tmp_path):
    """A process killed in the middle of a large write leaves nothing under the final name."""
    script = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(__import__('pathlib').Path(__file__).resolve().parents[1])!r})
        from hnlmrec_lib.artifacts import atomic_path
        from pathlib import Path
        with atomic_path(Path({str(tmp_path)!r}) / "big.bin") as tmp:
            with open(tmp, "wb") as fh:
                fh.write(b"x" * 1000)
                fh.flush()
                print("writing", flush=True)
                time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    proc.kill()
    proc.wait()
    assert not (tmp_path / "big.bin").exists()
    # the store still works on the same folder afterwards
    store = ArtifactStore(tmp_path)
    assert store.cached("x", {}, lambda: 3) == 3


def test_jsonl_log_ignores_torn_tail_and_resumes(tmp_path):
    log = JsonlLog(tmp_path / "calls.jsonl")
    log.append([{"k": 1}, {"k": 2}])
    with open(log.path, "ab") as fh:      # simulate a write cut short by a kill
        fh.write(b'{"k": 3, "te')
    assert [r["k"] for r in log.read()] == [1, 2]
    log.append([{"k": 3}])
    assert [r["k"] for r in log.read()] == [1, 2, 3]
