"""Run every benchmark in turn; each writes its JSON to benchmarks/results/."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
RUNS = [
    ["bench_cf.py", "--preset", "default"],
    ["bench_llm.py"],
    ["bench_aligner.py", "--random-banks", "--threads", "1", "--out", str(HERE / "results" / "dtype.json")],
    ["bench_lr.py", "--preset", "default"],
    ["bench_profiles.py", "--preset", "default"],
    ["bench_negatives.py", "--preset", "default"],
    ["bench_sft.py", "--model", "tiny"],
    ["bench_sft.py", "--model", "gemma3-270m", "--steps", "3", "--pairs", "48"],
]

if __name__ == "__main__":
    failed = 0
    for args in RUNS:
        print("benchmark:", " ".join(args), flush=True)
        failed += subprocess.call([sys.executable, str(HERE / args[0]), *args[1:]]) != 0
    sys.exit(1 if failed else 0)
