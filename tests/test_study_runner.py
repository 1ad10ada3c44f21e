"""The papermill runner: ordered notebooks, --only/--from, and a failure naming notebook and cell."""
from __future__ import annotations

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from hnlmrec_lib import study


def test_notebooks_are_ordered_and_selectable():
    books = study.list_notebooks()
    assert [b.name[:2] for b in books] == sorted(b.name[:2] for b in books)
    assert [b.name[:2] for b in study.list_notebooks(only=["1", "00"])] == ["00", "01"]
    assert all(b.name[:2] >= "03" for b in study.list_notebooks(start="03"))
    with pytest.raises(SystemExit, match="99"):
        study.list_notebooks(only=["99"])


@pytest.mark.notebooks
def test_failure_names_notebook_and_cell(tmp_path):
    nb = new_notebook(cells=[new_code_cell("preset = 'x'"), new_code_cell("x = 1"),
                             new_code_cell("raise ValueError('boom')")])
    nb.cells[0].metadata["tags"] = ["parameters"]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = tmp_path / "07_broken.ipynb"
    nbformat.write(nb, path)
    with pytest.raises(study.NotebookFailed) as err:
        study.run_notebook(path, "smoke", tmp_path / "out")
    message = str(err.value)
    assert "07_broken.ipynb" in message and "ValueError: boom" in message
    assert "cell 3" in message      # papermill's injected-parameters cell shifts the index by one
