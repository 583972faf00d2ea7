"""The claims of a folder of study files beside their verdicts in the storage: one row per file, with its
replications' verdicts and the p-values Holm-adjusted over the claims (`sweep claims`)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sweep.errors import SweepError
from sweep.report import verdict_text
from sweep.results import load_results, related_studies
from sweep.spec import Study, load
from sweep.stats import holm

if TYPE_CHECKING:
    from sweep.store import Store


def claim_rows(studies_dir: str | Path, store: Store) -> list[dict[str, Any]]:
    """One row per study file in studies_dir: study, file, claim, cost, verdict, summary (effect, interval,
    MDE, n, size), message, p (the deciding test's, scaled to the rule's alpha at its look), p_holm (Holm over the
    claims), and replications: [(name, verdict, summary)].

    The verdict is a Status once the study has run; otherwise "INVALID" (with the file's error as the
    message), "not run" (not in the storage yet) or "no rule" (a study without a verdict rule).
    """
    files = sorted(Path(studies_dir).glob("*.yaml"))
    if not files:
        raise SweepError(f"no study files (*.yaml) in {studies_dir}")
    stored = set(store.study_names())
    rows = []
    for path in files:
        row: dict[str, Any] = {
            "study": path.stem,
            "file": str(path),
            "claim": "",
            "cost": "",
            "summary": "",
            "message": "",
            "p": math.nan,
            "replications": [],
        }
        try:
            study = load(path)
        except SweepError as exc:
            rows.append({**row, "verdict": "INVALID", "message": str(exc)})
            continue
        row.update(study=study.name, claim=study.claim, cost=_cost(study))
        if study.name not in stored:
            row["verdict"] = "not run"
        else:
            result = load_results(store.load_study(study.name)).verdict
            if result is None:
                row["verdict"] = "no rule"
            else:
                row.update(
                    verdict=result.status, summary=verdict_text.summary(result), message=verdict_text.message(result)
                )
                row["p"] = result.p_adjusted
            row["replications"] = [
                (r.name, r.verdict.status, verdict_text.summary(r.verdict)) if r.verdict else (r.name, "no rule", "")
                for r in related_studies(store, study.name)
            ]
        rows.append(row)
    adjusted = holm(np.array([r["p"] for r in rows], dtype=float))
    for row, p in zip(rows, adjusted, strict=True):
        row["p_holm"] = float(p)
    return rows


def _cost(study: Study) -> str:
    if study.sequential:
        configs = study.trial_count // len(study.seed_list)
        return f"{configs * study.looks[0]} to {study.trial_count} trials x {study.budget.steps} steps"
    return f"{study.trial_count} trials x {study.budget.steps} steps"


__all__ = ["claim_rows"]
