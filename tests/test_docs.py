"""The docs say what the code does: the README stays a newcomer's page whose links lead somewhere, the
study examples validate, every metric and every benchmark is named where a reader looks for it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sweep import spec
from sweep.core import METRICS

from helpers import REPO

README = REPO / "README.md"
README_LINES = 150  # a newcomer's page: what it is, the quick start, a short tour, where to read more


def yaml_blocks(path: Path) -> list[str]:
    text = path.read_text()
    return re.findall(r"```yaml\n(.*?)```", text, flags=re.DOTALL)


def test_the_readme_is_short_and_its_links_lead_to_real_pages() -> None:
    text = README.read_text()
    assert len(text.splitlines()) <= README_LINES
    linked = set(re.findall(r"`((?:docs|studies|benchmarks)/[\w./-]+\.md)`", text))
    assert {"docs/architecture.md", "docs/storage.md", "docs/clusters.md", "docs/studies.md"} <= linked
    assert {p for p in linked if not (REPO / p).is_file()} == set()


@pytest.mark.parametrize("page", ["README.md", "docs/studies.md"])
def test_the_example_studies_validate(page: str, tmp_path: Path) -> None:
    blocks = yaml_blocks(REPO / page)
    assert blocks, f"{page} shows no study"
    for i, block in enumerate(blocks):
        path = tmp_path / f"example{i}.yaml"
        path.write_text(block)
        assert spec.load(path).trial_count > 0


def test_the_study_guide_names_every_metric_and_only_real_ones() -> None:
    text = (REPO / "docs" / "studies.md").read_text()
    section = text[text.index("Metric names") : text.index("\n## ", text.index("Metric names"))]
    named = set(re.findall(r"`((?:loss|d|grad|q|mi|eval|time)/[a-z_0-9]+)`", section))
    assert set(METRICS) - named == set(), f"metrics the guide does not name: {sorted(set(METRICS) - named)}"
    assert named - set(METRICS) == set(), f"the guide names metrics that do not exist: {sorted(named - set(METRICS))}"


def test_the_benchmarks_page_names_every_script() -> None:
    text = (REPO / "benchmarks" / "README.md").read_text()
    scripts = {p.name for p in (REPO / "benchmarks").glob("*.py")}
    assert scripts, "no benchmark scripts found: the check itself must be able to fail"
    assert {s for s in scripts if f"`{s}`" not in text} == set()
