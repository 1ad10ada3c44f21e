"""Cold vs cached time of all MovieLens-100K profiles on a preset; writes results/profiles.json.

    python benchmarks/bench_profiles.py            # build (cold if not cached) + warm rebuild
    python benchmarks/bench_profiles.py --cold     # also a cold build now, in a scratch store

When the store holds no profiles for the preset, the first build is cold and its wall time
is recorded (``first_build``). ``recorded_build_seconds`` is the item and user generation
time stored in the profiles artifact by the build that made it (after an interrupted,
resumed build: the resumed part only); the warm time is measured by building again from the
cache. ``--cold`` builds every profile again in a scratch artifact store that shares
only the converted model (``llm_models``: loading is not profile work) and the dataset, timing
the whole build end to end with the current code (e.g. the shared-prefix KV cache). Run it
after notebook 01 (or it builds cold here first).
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from hnlmrec_lib import notebook  # noqa: E402
from hnlmrec_lib.profiles import PROFILE_KIND, build_profiles, profile_inputs  # noqa: E402

OUT = Path(__file__).resolve().parent / "results" / "profiles.json"

if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="default")
    ap.add_argument("--cold", action="store_true", help="also time a cold build in a scratch store")
    args = ap.parse_args()
    session = notebook.start(args.preset)
    data = session.data()
    key = session.store.key(PROFILE_KIND, profile_inputs(session.cfg, data))
    was_cached = session.store.path(PROFILE_KIND, key, "pkl").exists()
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    profiles = build_profiles(session.cfg, data, session.store)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    profiles = build_profiles(session.cfg, data, session.store)
    warm = time.perf_counter() - t0
    report = profiles.report()
    asked_attempts = [a[src != "template"] for a, src in ((profiles.item_attempts, profiles.item_source),
                                                         (profiles.user_attempts, profiles.user_source))]
    result = {
        "preset": args.preset, "model": profiles.model_id, "profiles_key": key,
        "items": int(data.n_items), "users": int(data.n_users),
        "llm_calls": int(sum(a.sum() for a in asked_attempts)),
        # generation time the artifact recorded when it was built (a resumed build: its last part)
        "recorded_build_seconds": {k: round(v, 1) for k, v in profiles.seconds.items()},
        "warm_seconds": round(warm, 2),
        "json_ok_rate": report["json_ok_rate"].round(4).to_dict(),
        "mean_attempts": report["mean_attempts"].round(3).to_dict(),
    }
    if not was_cached:   # this run built them: the cold wall time, model loading included
        result["first_build"] = {
            "cold": True, "wall_seconds": round(first, 1),
            "loadavg_1m_start": load0, "loadavg_1m_end": os.getloadavg()[0]}
    elif OUT.exists():   # a warm rerun keeps the cold measurement of the same artifact
        previous = json.loads(OUT.read_text())
        if previous.get("profiles_key") == key and previous.get("first_build"):
            result["first_build"] = previous["first_build"]
    if args.cold:
        import tempfile

        from hnlmrec_lib.artifacts import ArtifactStore

        with tempfile.TemporaryDirectory() as tmp:
            scratch = ArtifactStore(Path(tmp) / args.preset)
            scratch.root.mkdir(parents=True, exist_ok=True)
            for shared in ("llm_models", "dataset"):
                if (session.store.root / shared).exists():
                    (scratch.root / shared).symlink_to(session.store.root / shared)
            load0 = os.getloadavg()[0]
            t0 = time.perf_counter()
            cold = build_profiles(session.cfg, data, scratch)
            result["cold_build_now"] = {
                "wall_seconds": round(time.perf_counter() - t0, 1),
                "item_seconds": round(cold.seconds["item"], 1), "user_seconds": round(cold.seconds["user"], 1),
                "json_ok_rate": cold.report()["json_ok_rate"].round(4).to_dict(),
                "loadavg_1m_start": load0, "loadavg_1m_end": os.getloadavg()[0]}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))
