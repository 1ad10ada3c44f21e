"""Where a cold ``make study`` spent its time; writes benchmarks/results/cold_study.json.

    rm -rf artifacts/default runs/default && make study     # the cold run
    python benchmarks/cold_study.py                          # then account for it

Reads what the run left behind, nothing is re-run: each notebook's wall time
(``runs/<preset>/timings.jsonl``), the generation seconds recorded with every LLM call
(``llm_calls/*.jsonl``, per file and model), the SFT steps' seconds (the last checkpoint's
``state.json``), and every trained run's record (training seconds, epochs), attributed to the
notebook that trained it by the record's write time. Run it right after a cold study: a later
rerun that trains nothing changes no record, but a partial one would mix two runs.
"""
from __future__ import annotations

import argparse
import json
from collections import defaultdict
from datetime import datetime
from pathlib import Path

from hnlmrec_lib.artifacts import ArtifactStore, JsonlLog, atomic_write_text
from hnlmrec_lib.config import load_preset, resolve_path
from hnlmrec_lib.experiments import ID_SAMPLERS
from hnlmrec_lib.runtime import machine_facts

ROOT = Path(__file__).resolve().parent.parent


def notebook_windows(timings: Path) -> list[tuple[str, float, float]]:
    """(notebook, start, end) as POSIX times from the last cold sequence of timings."""
    out = []
    for row in JsonlLog(timings).read():
        end = datetime.fromisoformat(row["finished"]).timestamp()
        out.append((row["notebook"], end - row["seconds"], end))
    return out


def llm_generation(store: Path) -> dict:
    """Calls and summed generation seconds per call log and model."""
    out: dict = {}
    for log in sorted((store / "llm_calls").glob("*.jsonl")):
        per_model: dict = defaultdict(lambda: {"calls": 0, "seconds": 0.0})
        for row in JsonlLog(log).read():
            entry = per_model[row.get("model_id", "?")]
            entry["calls"] += 1
            entry["seconds"] += float(row.get("seconds", 0.0))
        out[log.stem] = {m: {"calls": v["calls"], "seconds": round(v["seconds"], 1)}
                         for m, v in per_model.items()}
    return out


def sft_steps(store: Path) -> list[dict]:
    """Steps and seconds of each SFT run whose checkpoint is in the store."""
    out = []
    for state in sorted(store.glob("**/checkpoints/step-*/state.json")):
        s = json.loads(state.read_text())
        out.append({"checkpoint": str(state.parent.relative_to(store)), "steps": s["step"],
                    "seconds": round(sum(s["seconds"]), 1),
                    "median_step_seconds": round(sorted(s["seconds"])[len(s["seconds"]) // 2], 2)})
    return out


def trained_runs(store: Path, windows: list[tuple[str, float, float]]) -> list[dict]:
    """One row per run record: backbone, method family, seconds, epochs, notebook."""
    rows = []
    for path in sorted((store / "runs").glob("*.pkl")):
        record = ArtifactStore.load(path)
        written = path.stat().st_mtime
        notebook = next((name for name, start, end in windows if start <= written <= end + 1), "?")
        rows.append({"backbone": record["backbone"],
                     "family": "id" if record["method"] in ID_SAMPLERS else "llm",
                     "train_seconds": float(record["train_seconds"]),
                     "epochs_run": int(record["epochs_run"]), "notebook": notebook})
    return rows


def summarise(runs: list[dict]) -> list[dict]:
    groups: dict = defaultdict(list)
    for r in runs:
        groups[(r["notebook"], r["family"], r["backbone"])].append(r)
    return [{"notebook": nb, "family": fam, "backbone": bb, "runs": len(rs),
             "train_seconds": round(sum(r["train_seconds"] for r in rs), 1),
             "mean_epochs": round(sum(r["epochs_run"] for r in rs) / len(rs), 1)}
            for (nb, fam, bb), rs in sorted(groups.items())]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="default")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "cold_study.json"))
    args = ap.parse_args()
    cfg = load_preset(args.preset)
    store = resolve_path(cfg.artifacts_dir) / cfg.name
    windows = notebook_windows(ROOT / "runs" / cfg.name / "timings.jsonl")
    runs = trained_runs(store, windows)
    result = {
        "machine": machine_facts(), "preset": cfg.name,
        "notebooks": [{"notebook": n, "seconds": round(e - s, 1)} for n, s, e in windows],
        "total_seconds": round(sum(e - s for _, s, e in windows), 1),
        "llm_generation": llm_generation(store),
        "sft": sft_steps(store),
        "runs": summarise(runs),
        "train_seconds_by_family": {fam: round(sum(r["train_seconds"] for r in runs
                                                   if r["family"] == fam), 1) for fam in ("id", "llm")},
    }
    atomic_write_text(Path(args.out), json.dumps(result, indent=1))
    print(json.dumps({k: result[k] for k in ("notebooks", "total_seconds", "llm_generation", "sft",
                                              "train_seconds_by_family")}, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
