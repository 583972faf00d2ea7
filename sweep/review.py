"""What optuna-dashboard shows of a trial and a study: artifacts (images, config), notes, the server."""

from __future__ import annotations

import base64
import json
import logging
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import optuna
from optuna.artifacts import upload_artifact
from optuna_dashboard import save_note, wsgi

from sweep import analysis, dashboard_index, provenance
from sweep.core import caveats
from sweep.errors import AddressInUseError
from sweep.report import verdict_text
from sweep.results import StudyResults, load_results
from sweep.spec import Study, factor_levels, format_value
from sweep.store import FINAL_IMAGES, StudyAttr, TrialAttr, save_first_trial_note, study_id
from sweep.vocab import Outcome, counts, markdown_text, num

if TYPE_CHECKING:
    from sweep.store import Store

log = logging.getLogger(__name__)

STD_COLLAPSE = 0.05  # q/std_min below this is flagged "posterior std collapsed"
LIVE_POINTS = 24  # the latest reports a running trial's live curves show
_BARS = "▁▂▃▄▅▆▇█"


def trial_flags(study: Study, final: dict[str, Any], config: dict[str, Any]) -> list[str]:
    """Findings worth a reviewer's eye, in words: divergence, mode collapse, std collapse."""
    flags = []
    metrics = final.get(TrialAttr.METRICS) or {}
    outcome = final.get(TrialAttr.OUTCOME)
    if outcome == Outcome.DIVERGED:
        flags.append(f"diverged at step {final.get(TrialAttr.STEPS_RUN, '?')}")
    if outcome == Outcome.CRASHED:
        flags.append("crashed")
    modes = metrics.get("eval/modes")
    n_modes = {"ring8": 8, "grid25": 25}.get(config.get("dataset", ""))
    if modes is not None and n_modes and modes <= n_modes / 2:
        flags.append(f"mode collapse ({modes:.0f} of {n_modes} modes covered)")
    acc = metrics.get("eval/cat_acc")
    if acc is not None and config.get("cat_codes") and acc < 1.5 / config["cat_codes"][0]:
        flags.append(f"categorical code ignores the classes (accuracy {acc:.2f})")
    std = metrics.get("q/std_min")
    if config.get("q_std") == "learned" and std is not None and std < STD_COLLAPSE:
        flags.append(f"posterior std collapsed (q/std_min = {std:.3g})")
    ratio = metrics.get("mi/cat_ratio")
    if ratio is not None and ratio < 0.5 and config.get("lambda_cat", 1) > 0:
        flags.append(f"low mutual information (mi/cat_ratio = {ratio:.2f})")
    return flags


def sparkline(values: list[float]) -> str:
    """A curve in one line of block characters, lowest to highest ("▁" to "█"); a flat curve is mid-height."""
    if not values:
        return ""
    low, high = min(values), max(values)
    if high == low:
        return _BARS[3] * len(values)
    return "".join(_BARS[round((v - low) / (high - low) * (len(_BARS) - 1))] for v in values)


def live_curves(step: int, curves: dict[str, list[float]]) -> str:
    """A running trial's every metric in one line: its curve over the latest reports and its latest value. The
    trial's `live` user attribute, which optuna-dashboard shows on the trial's page and refreshes as it polls
    (its learning-curve chart draws one series, the first objective's intermediate values)."""
    parts = [f"step {step}"] + [f"{name} {sparkline(v)} {num(v[-1])}" for name, v in sorted(curves.items()) if v]
    return " · ".join(parts)


def _fmt(value: Any) -> str:
    return num(value) if isinstance(value, float) else format_value(value)


def trial_note(study: Study, trial: optuna.Trial | optuna.trial.FrozenTrial, final: dict[str, Any]) -> str:
    """Markdown: what differs from the base, the outcome and flags, the final metrics."""
    attrs = trial.user_attrs
    config = attrs.get(TrialAttr.CONFIG, {})
    lines = [f"### {attrs.get(TrialAttr.CONFIG_ID, 'trial')} (seed {attrs.get(TrialAttr.SEED)})", ""]
    if study.kind == "ablation":
        factor = attrs.get(TrialAttr.FACTOR)
        if factor is None:
            changed = "the base configuration"
        else:  # an ablation's first level of each factor is the base value (set in base, or the default)
            base_value = factor_levels(study)[factor][0]
            changed = f"`{factor}` = {_fmt(attrs.get(TrialAttr.LEVEL))} (base: {_fmt(base_value)})"
        lines.append(f"- **Differs from the base:** {changed}")
    else:
        params = ", ".join(f"`{k}` = {_fmt(v)}" for k, v in trial.params.items())
        lines.append(f"- **Parameters:** {params}")
    outcome = final.get(TrialAttr.OUTCOME, "?")
    reason = final.get(TrialAttr.REASON)  # free text: a crash's message can hold anything
    lines.append(f"- **Outcome:** {outcome}" + (f" - {markdown_text(reason)}" if reason else ""))
    if final.get(TrialAttr.CHECKPOINT_DISCARDED):
        lines.append(f"- **Checkpoint:** not resumed: {markdown_text(final[TrialAttr.CHECKPOINT_DISCARDED])}")
    if final.get(TrialAttr.POPULATION_SPLIT):
        lines.append(f"- **Population:** {markdown_text(final[TrialAttr.POPULATION_SPLIT])}")
    flags = trial_flags(study, final, config)
    lines.append("- **Flags:** " + ("; ".join(flags) if flags else "none"))
    wall = final.get(TrialAttr.WALL_S)
    lines.append(f"- **Steps:** {final.get(TrialAttr.STEPS_RUN, '?')}" + (f" in {wall:.1f} s" if wall else ""))
    others = int(final.get(TrialAttr.POPULATION) or 1) - 1
    if others:
        lines.append(f"- **Population:** trained with {others} other pairs as one stacked model (their time is shared)")
    if final.get(TrialAttr.PROVENANCE):
        lines.append(f"- **Ran on:** {provenance.text(final[TrialAttr.PROVENANCE])}")
    metrics = final.get(TrialAttr.METRICS) or {}
    if metrics:
        lines += ["", "| metric | final |", "|---|---|"]
        lines += [f"| {k} | {_fmt(v)} |" for k, v in sorted(metrics.items())]
        lines += [f"\n_{line}_" for line in caveats(metrics)]
    return "\n".join(lines)


def attach_trial_review(study: Study, trial: optuna.Trial, final: dict[str, Any], artifact_store: Any) -> None:
    """Upload the trial's images and resolved config as artifacts, and write its note.

    Runs before the trial is told: Optuna refuses artifacts on finished trials.
    """
    with tempfile.TemporaryDirectory() as tmp:
        for name, data in (final.get(FINAL_IMAGES) or {}).items():
            path = Path(tmp) / f"{name}.png"
            path.write_bytes(base64.b64decode(data))
            upload_artifact(
                artifact_store=artifact_store, file_path=str(path), study_or_trial=trial, mimetype="image/png"
            )
        config_path = Path(tmp) / "config.json"
        config_path.write_text(json.dumps(trial.user_attrs.get(TrialAttr.CONFIG, {}), indent=2))
        upload_artifact(
            artifact_store=artifact_store, file_path=str(config_path), study_or_trial=trial, mimetype="application/json"
        )
    save_first_trial_note(trial, trial_note(study, trial, final))  # not save_note: O(trials) reads per call


# --- the study's note -------------------------------------------------------------------------


def study_note(results: StudyResults) -> str:
    """Markdown: the claim, kind, trials by outcome, best and worst configuration per objective, the verdict."""
    study, optuna_study, frame = results.study, results.optuna_study, results.frame
    lines = [f"## {study.name}", ""]
    if study.claim:
        lines.append(f"**Claim:** {markdown_text(study.claim)}")
    if study.description:
        lines.append(f"**About:** {markdown_text(study.description)}")
    shape = (
        f"{study.trials} sampled configurations ({study.sampler})"
        if study.kind == "search"
        else f"factors {', '.join(f'`{k}`' for k in study.factors)}"
    )
    seeds = f"{len(study.seed_list)} seeds"
    if study.sequential:
        seeds = f"up to {seeds} (looks at {', '.join(map(str, study.looks))})"
    lines.append(f"**Kind:** {study.kind}, {shape}; {seeds}, {study.budget.steps} steps each")
    lines.append("**Trials:** " + (counts(results.outcomes) if results.outcomes else "none yet"))
    if optuna_study.user_attrs.get(StudyAttr.PROVENANCE):
        lines.append(f"**Latest run:** {provenance.text(optuna_study.user_attrs[StudyAttr.PROVENANCE])}")
    first = study.objectives[0].metric
    if len(study.objectives) > 1:
        lines.append(
            f"**Learning curves:** each trial's intermediate values are its {first} at the steps it was measured; "
            "optuna-dashboard lists them on the trial's page (it draws the Intermediate Values chart only for "
            f"studies with one objective). Every metric's curve so far is the trial's `live` attribute; `sweep report "
            f"{study.name}` draws every curve."
        )
    lines += ["", "| objective | best configuration | worst configuration |", "|---|---|---|"]
    for o in study.objectives:
        ranked = analysis.rank_configs(frame, o.metric, o.direction) if len(frame) else None
        if ranked is None or ranked.empty:
            lines.append(f"| {o.metric} ({o.direction}) | no finished runs | |")
            continue
        best, worst = (
            f"`{r.config_id}`: {_fmt(float(r['mean']))} (mean of {r.n})" for r in (ranked.iloc[0], ranked.iloc[-1])
        )
        lines.append(f"| {o.metric} ({o.direction}) | {best} | {worst} |")
    result = results.verdict_once_run
    if result is not None:
        lines += ["", f"### Verdict: {result.status}", "", verdict_text.message(result), ""]
        lines += [f"- {line}" for line in verdict_text.lines(result)]
    elif study.verdict is None:
        lines += ["", "_No verdict rule: this study has no `verdict:` section._"]
    lines += ["", f"Effects with confidence intervals, curves and images: `sweep report {study.name}`."]
    return "\n".join(lines)


def attach_study_review(study: Study, optuna_study: optuna.Study, *, results: StudyResults | None = None) -> None:
    """Write the study's note for optuna-dashboard (from `results` when the caller has read them already); a
    failure is logged, never raised (the run is stored)."""
    try:
        save_note(optuna_study, study_note(results or load_results(optuna_study, study=study)))
    except Exception as exc:  # a note is not worth losing a finished run over
        log.warning("could not write the study note of %s: %s", study.name, exc)


# --- the dashboard server ---------------------------------------------------------------------


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # the base class's signature
        pass


def dashboard_server(store: Store, *, host: str = "127.0.0.1", port: int = 8080) -> WSGIServer:
    """optuna-dashboard on the store's storage and artifact store, bound but not yet serving.

    Pass it to `serve`; port 0 picks a free port.
    """
    dashboard_index.install()  # its study page in time linear in the trials (dashboard_index.py says why)
    app = wsgi(store.storage(), artifact_store=store.artifact_store())
    try:
        return make_server(host, port, app, handler_class=_QuietHandler)
    except OSError as exc:
        raise AddressInUseError(f"cannot listen on {host}:{port} ({exc.strerror})") from exc


def serve(server: WSGIServer) -> None:
    """Answer requests until Ctrl-C (KeyboardInterrupt, re-raised), then stop and close the server.

    The server loop runs on a thread of its own, so the interrupt always lands here, in the main thread:
    run in the main thread, a Ctrl-C that came while a response was being written was caught by wsgiref's
    error handler (it catches everything), and the server went on serving."""
    loop = threading.Thread(target=server.serve_forever, name="dashboard-server", daemon=True)
    loop.start()
    try:
        while loop.is_alive():
            loop.join(0.5)
    finally:
        server.shutdown()  # the response being written is finished first
        server.server_close()


def dashboard_url(server: WSGIServer, optuna_study: optuna.Study | None = None) -> str:
    """The address to open: the study's page when a study is given."""
    host, port = server.server_address[:2]
    path = f"/dashboard/studies/{study_id(optuna_study)}" if optuna_study is not None else "/dashboard"
    return f"http://{host}:{port}{path}"


__all__ = [
    "LIVE_POINTS",
    "attach_study_review",
    "attach_trial_review",
    "dashboard_server",
    "dashboard_url",
    "live_curves",
    "serve",
    "sparkline",
    "study_note",
    "trial_flags",
    "trial_note",
]
