"""environment.yml lists the same dependencies as pyproject.toml (conda cannot run here)."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[ ;]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_environment_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = {_name(d): d for d in project["dependencies"] + project["optional-dependencies"]["dev"]}
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    listed = {_name(d): d.split("#")[0].strip() for d in pip_section}
    for name, spec in wanted.items():
        assert name in listed, f"environment.yml lacks {name}"
        assert listed[name].replace(" ", "") == spec.replace(" ", ""), f"{name}: {listed[name]} != {spec}"
    makefile = (ROOT / "Makefile").read_text()
    for extra in set(listed) - set(wanted):   # the --no-deps wheels must be installed by make too
        assert extra in makefile, f"{extra} is in environment.yml but not installed by the Makefile"


def test_torch_is_pinned_to_the_cpu_wheel():
    assert "torch==2.13.0" in (ROOT / "constraints.txt").read_text()
    assert "PIP_CONSTRAINT" in (ROOT / "Makefile").read_text()


def test_every_notebook_has_kernelspec_parameters_and_no_outputs():
    import json

    books = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    assert books, "no notebooks"
    for book in books:
        nb = json.loads(book.read_text())
        assert nb["metadata"]["kernelspec"]["name"] == "python3", book.name
        tags = [c.get("metadata", {}).get("tags", []) for c in nb["cells"]]
        assert sum("parameters" in t for t in tags) == 1, f"{book.name}: one parameters cell"
        assert all(not c.get("outputs") for c in nb["cells"] if c["cell_type"] == "code"), book.name
