"""benchmarks/run_library.py's table: each study's verdict on its two seed sets, read from storage."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from helpers import REPO, STUDIES_V1


def _module():
    spec = importlib.util.spec_from_file_location("run_library", REPO / "benchmarks" / "run_library.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_table_shows_both_seed_sets_and_their_wall_times(stored: Path, tmp_path: Path):
    library = _module()
    (stored / "library.json").write_text(json.dumps({"balance": 180.0, "balance-rep1": 200.0}))
    try:
        text, clashes = library.table(sorted(STUDIES_V1.glob("*.yaml")), stored)
    finally:
        (stored / "library.json").unlink()
    rows = {line.split("|")[1].strip(): line for line in text.splitlines() if line.startswith("| `")}
    assert set(rows) == {f"`{p.name}`" for p in STUDIES_V1.glob("*.yaml")}
    assert "| no rule | no rule |" in rows["`search.yaml`"]  # a search has no verdict
    balance = [cell.strip() for cell in rows["`balance.yaml`"].split("|")[1:-1]]
    assert balance[3] == balance[4] == "SUPPORTED"  # the original and its replication
    assert balance[1] == "-" and balance[-2] == "CPU"  # the v1 file quotes no sentence; a laptop profile
    assert balance[5] in {
        f"{a} / {b}" for a in ("yes", "may be smaller", "no") for b in ("yes", "may be smaller", "no")
    }
    assert balance[6].startswith("+") and "[" in balance[6] and balance[-1] == "3.0 min / 3.3 min"
    assert [cell.strip() for cell in rows["`noise.yaml`"].split("|")[4:6]] == ["not run", "not run"]
    assert "Total wall time of these runs: 6.3 min (2 runs): seeds 0.. 3.0 min, seeds 10000.. 3.3 min." in text
    assert clashes == []


def test_the_sentence_column_quotes_the_header_and_is_cut_to_its_width(tmp_path: Path):
    library = _module()
    study = tmp_path / "s.yaml"
    study.write_text('# Field note 6: "Enough noise dimensions: too few | none."\n# more\nname: s\n# "not header"\n')
    assert library.cited(study) == "Enough noise dimensions: too few / none."
    assert library.cited(study, width=20) == "Enough noise dime..."  # 17 characters and the ellipsis
    assert library.cited(REPO / "studies" / "noise.yaml").startswith("Enough non-salient noise dimensions")
    assert library.profile(REPO / "studies" / "gpu" / "noise.yaml") == "GPU"


def test_the_table_replaces_only_the_text_between_its_markers(tmp_path: Path):
    library = _module()
    readme = tmp_path / "README.md"
    readme.write_text(f"before\n{library.MARK_START}\nold table\n{library.MARK_END}\nafter\n")
    root = tmp_path / "runs"
    assert (
        library.main_args(["--root", str(root), "--studies", str(STUDIES_V1), "--table-only", "--write", str(readme)])
        == 0
    )
    text = readme.read_text()
    assert text.startswith("before\n") and text.endswith("\nafter\n") and "old table" not in text
    assert "| `balance.yaml` |" in text and "not run" in text
