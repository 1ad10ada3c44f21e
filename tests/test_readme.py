"""README quotes tables from figures/tables between markers; the refresher rewrites them."""
from __future__ import annotations

from hnlmrec_lib.readme import refresh

ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]


def test_refresh_replaces_marked_blocks(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- table:t1 -->\nold\n<!-- /table -->\n<!-- table:t2 -->\nkeep\n<!-- /table -->\n")
    tables = tmp_path / "tables"
    tables.mkdir()
    (tables / "t1.md").write_text("| a |\n|---|\n| 1 |\n")
    missing = refresh(readme, tables)
    assert missing == ["t2"]
    assert readme.read_text() == ("intro\n<!-- table:t1 -->\n| a |\n|---|\n| 1 |\n<!-- /table -->\n"
                                  "<!-- table:t2 -->\nkeep\n<!-- /table -->\n")


def test_readme_opens_with_the_two_commands():
    head = (ROOT / "README.md").read_text()[:1500]
    assert "make study" in head and "make test" in head
