"""Run the study's notebooks in order with papermill.

    python -m hnlmrec_lib.study --preset default [--only 00,03] [--from 03]

Executed copies go to ``runs/<preset>/``. The run stops at the first failing
notebook and names the notebook and the cell that failed.
"""
from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from .artifacts import JsonlLog
from .config import PROJECT_ROOT, load_preset

NOTEBOOK_DIR = PROJECT_ROOT / "notebooks"
KERNEL = "python3"


class NotebookFailed(RuntimeError):
    """A notebook raised; the message names the notebook and the cell."""


def list_notebooks(only: list[str] | None = None, start: str | None = None) -> list[Path]:
    """Ordered notebooks ``NN_name.ipynb``; ``only`` and ``start`` take the NN prefixes."""
    books = sorted(p for p in NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))
    if only:
        wanted = {o.strip().zfill(2) for o in only if o.strip()}
        unknown = wanted - {p.name[:2] for p in books}
        if unknown:
            raise SystemExit(f"--only names unknown notebooks: {', '.join(sorted(unknown))}")
        books = [p for p in books if p.name[:2] in wanted]
    if start:
        books = [p for p in books if p.name[:2] >= start.zfill(2)]
    return books


def run_notebook(path: Path, preset: str, out_dir: Path,
                 parameters: dict | None = None) -> Path:
    """Execute one notebook with papermill under the project's kernel."""
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    out_dir.mkdir(parents=True, exist_ok=True)
    output = out_dir / path.name
    params = {"preset": preset, **(parameters or {})}
    try:
        pm.execute_notebook(
            str(path), str(output), parameters=params, kernel_name=KERNEL,
            cwd=str(path.parent), progress_bar=False, log_output=False,
        )
    except PapermillExecutionError as err:
        raise NotebookFailed(
            f"{path.name} failed in cell {err.cell_index} (execution count {err.exec_count}): "
            f"{err.ename}: {err.evalue}\n  executed copy: {output}"
        ) from None
    return output


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="default")
    parser.add_argument("--only", default="", help="comma-separated notebook numbers, e.g. 00,03")
    parser.add_argument("--from", dest="start", default=None, help="start at this notebook number")
    args = parser.parse_args(argv)

    cfg = load_preset(args.preset)  # fail early on a bad preset
    books = list_notebooks(args.only.split(",") if args.only else None, args.start)
    out_dir = PROJECT_ROOT / "runs" / cfg.name
    print(f"study: preset {cfg.name!r}, {len(books)} notebooks -> {out_dir}", flush=True)
    total = time.perf_counter()
    for i, book in enumerate(books, 1):
        t0 = time.perf_counter()
        print(f"[{i}/{len(books)}] {book.name} ...", end=" ", flush=True)
        try:
            run_notebook(book, args.preset, out_dir)
        except NotebookFailed as err:
            print("FAILED", flush=True)
            print(f"study: {err}", file=sys.stderr)
            return 1
        seconds = time.perf_counter() - t0
        print(f"done in {seconds:.1f} s", flush=True)
        JsonlLog(out_dir / "timings.jsonl").append([
            {"notebook": book.name, "preset": cfg.name, "seconds": round(seconds, 1),
             "finished": datetime.now(timezone.utc).isoformat(timespec="seconds")}])
    print(f"study: all {len(books)} notebooks done in {time.perf_counter() - total:.1f} s")
    if cfg.figure_root == PROJECT_ROOT / "figures":
        from .readme import refresh

        missing = refresh()
        print("study: README tables refreshed" + (f" (not yet produced: {', '.join(missing)})" if missing else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
