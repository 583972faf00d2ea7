"""`sweep report` on a real stored study, opened in a real headless Chromium from disk."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.slow

EXTERNAL = re.compile(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//|url\(\s*["']?(?:https?:)?//|<script|<link""", re.I)


def not_blank(png: bytes) -> tuple[int, float]:
    """(distinct colours, fraction of pixels that are not white) of a screenshot."""
    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).reshape(-1, 3)
    return len(np.unique(pixels, axis=0)), float((pixels < 245).any(axis=1).mean())


def test_browser_check_catches_a_broken_page(browser, tmp_path):
    # the check below must be able to fail: a missing image, a console error and an uncaught exception
    bad = tmp_path / "bad.html"
    bad.write_text('<img src="missing.png" alt="gone"><script>console.error("boom"); throw new Error("oops")</script>')
    page = browser.load(bad.as_uri())
    assert page.images == [{"complete": True, "naturalWidth": 0, "alt": "gone"}]
    assert any("boom" in e for e in page.errors) and any("oops" in e for e in page.errors), page.errors
    assert any("missing.png" in e or "ERR_FILE_NOT_FOUND" in e for e in page.errors), page.errors


def test_html_report_opens_offline_with_every_image(review_study, browser, sweep, tmp_path):
    out = tmp_path / "review.html"
    proc = sweep("report", review_study.name, "--root", str(review_study.root), "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    assert f"wrote {out}" in proc.stdout and "verdict:" in proc.stdout

    html = out.read_text()
    assert not EXTERNAL.search(html), EXTERNAL.search(html)  # self-contained: no scripts, no external addresses
    for text in (
        "without the information term",
        "Verdict",
        "mi/cat_ratio",
        "95% CI",
        "paired t-test",
        "p (Holm)",
        "3 crashed",
        "fashion-mnist",
        "Training curves",
        "H(c)",
        "Pareto-optimal configurations",
        "trials ran on: code",
    ):
        assert text in html, text
    assert re.search(r"\b(SUPPORTED|CONTRADICTED|NO EFFECT|INCONCLUSIVE)\b", html)

    # copied away from the storage: a report must not depend on anything beside it
    moved = tmp_path / "elsewhere" / "report.html"
    moved.parent.mkdir()
    moved.write_text(html)
    page = browser.load(moved.as_uri())
    assert page.title == "review: sweep report"
    assert page.errors == []
    # effects + the Pareto front (two objectives) + curves for 2 factors + best and worst of base and
    # lambda_cat=0.0 (the crashed level has none)
    assert len(page.images) == 1 + 1 + 2 + 4, [i["alt"] for i in page.images]
    broken = [i["alt"] for i in page.images if not (i["complete"] and i["naturalWidth"] > 0)]
    assert broken == []
    colours, inked = not_blank(page.screenshot)
    assert colours > 50 and inked > 0.03, (colours, inked)
    (tmp_path / "screenshot.png").write_bytes(page.screenshot)


def test_markdown_report_links_resolve(review_study, sweep_main, tmp_path):
    code, out, err = sweep_main(
        "report", review_study.name, "--root", str(review_study.root), "--format", "md", cwd=tmp_path
    )
    assert code == 0, err
    path = tmp_path / "reports" / "review.md"  # the default place
    assert path.exists() and "reports/review.md" in out, out
    text = path.read_text()
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert len(links) == 8, links
    for link in links:
        assert not link.startswith(("/", "http")), link  # relative, so the folder can move
        target = path.parent / link
        assert target.exists(), link
        assert Image.open(target).size[0] > 100
    assert "| factor | level |" in text and "## Verdict" in text


def test_study_note_is_written_for_the_dashboard(review_study):
    import optuna
    from optuna_dashboard import get_note

    study = optuna.load_study(study_name=review_study.name, storage=f"sqlite:///{review_study.root / 'sweep.db'}")
    note = get_note(study)
    for text in ("## review", "**Claim:**", "3 crashed", "best configuration", "### Verdict:"):
        assert text in note, note
