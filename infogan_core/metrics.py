"""The metric table: every name a run reports, the direction in which it is better, and its meaning.

Names are flat strings namespaced with `/`, the same in the core, Ray, Optuna and reports. A study may
name any of them; `measured_metrics` says which ones a configuration reports, and why not the others.
This module imports no torch; `evaluation` computes the `eval/*` values.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

from infogan_core.data import DATASETS

if TYPE_CHECKING:
    from infogan_core.config import TrainConfig


class Metric(NamedTuple):
    direction: str  # "minimize" | "maximize": the direction in which it is better
    doc: str  # meaning and unit
    caveat: str = ""  # what a reader of the number must know, shown wherever the metric is
    censored: bool = False  # a time to an event: a run that never reached it reports steps + report_every


METRICS: dict[str, Metric] = {
    "loss/d": Metric("minimize", "discriminator loss (BCE on real and fake)"),
    "loss/g": Metric("minimize", "generator adversarial loss"),
    "loss/info": Metric("minimize", "weighted information loss (cat CE + cont NLL)"),
    "d/real": Metric("maximize", "mean D(x) on real samples"),
    "d/fake": Metric("maximize", "mean D(G(z)) on generated samples"),
    "grad/d": Metric("minimize", "L2 norm of D's gradient before clipping"),
    "grad/g": Metric("minimize", "L2 norm of G's gradient before clipping"),
    "grad/q": Metric("minimize", "L2 norm of Q's gradient before clipping"),
    "grad/peak": Metric("minimize", "largest gradient norm of any network so far, before clipping: spikes"),
    # derived at the end from the reported history (each report is the mean over its report_every steps)
    "loss/g_trend": Metric(
        "minimize",
        "least-squares slope of the reported loss/g over the second half of training, per 1000 steps: G's loss "
        "climbing",
    ),
    "loss/d_sd": Metric(
        "minimize", "standard deviation of the reported loss/d over the second half of training: D not settling"
    ),
    "mi/cat_steps_to_90": Metric(
        "minimize",
        "first reported step at which mi/cat_ratio reached 0.9 (Figure 1 of the paper, read off)",
        "mi/cat_steps_to_90 is read at report_every resolution; a run that never reached 0.9 H(c) gets steps + "
        "report_every (censored at its budget)",
        censored=True,
    ),
    "q/std_min": Metric("maximize", "smallest predicted posterior std of the continuous codes"),
    "mi/cat": Metric("maximize", "lower bound on I(c_cat; G(z,c)) = H(c) - CE, nats"),
    "mi/cat_ratio": Metric("maximize", "mi/cat / H(c); 1.0 is the maximum"),
    "mi/cont": Metric(
        "maximize",
        "lower bound on I(c_cont; G(z,c)) = H(c_cont) - NLL, nats",
        "mi/cont is a lower bound that can be negative: with a fixed posterior std of 1 on U(-1,1) codes it is "
        "at most ln 2 - ln(2 pi)/2 - 1/2 E[(c - mu)^2] <= -0.23 nats per code, however well Q recovers the code",
    ),
    # eval/*: a run's final score is the mean of its last `eval_last` evaluations; each one is in the history
    "eval/cat_acc": Metric("maximize", "accuracy of Q's categorical code on real labelled data, best matching"),
    "eval/prior_kl": Metric(
        "minimize", "KL(categorical prior || the data's class frequencies), nats, each category matched to a class"
    ),
    "eval/modes": Metric("maximize", "mixture modes covered by at least one high-quality sample"),
    "eval/hq": Metric("maximize", "fraction of samples within 3 std of their nearest mode"),
    "eval/fd": Metric("minimize", "Frechet distance in a reference classifier's features"),
    "eval/factor_align": Metric("maximize", "mean |Spearman| of continuous codes matched one-to-one to true factors"),
    "time/steps_per_s": Metric("maximize", "training steps per second"),
    # the paper's Figure 2 factors, measured on generated images by image moments (evaluation.slant, stroke_width)
    "eval/slant_corr": Metric(
        "maximize",
        "largest |Spearman| of any continuous code with the slant of generated images (shear of the ink's moments)",
        "eval/slant_corr is measured on generated images, over codes and noise drawn together: slant that the digit "
        "class or the noise sets dilutes it, so a code that rotates every digit may read well below 1",
    ),
    "eval/width_corr": Metric(
        "maximize",
        "largest |Spearman| of any continuous code with the stroke width of generated images (ink area over perimeter)",
        "eval/width_corr is measured on generated images, over codes and noise drawn together: width that the digit "
        "class or the noise sets dilutes it",
    ),
    "eval/slant_width_align": Metric(
        "maximize",
        "mean |Spearman| of two different continuous codes matched one-to-one to slant and stroke width of "
        "generated images (the paper's c1 rotation, c2 width)",
        "eval/slant_width_align needs two codes to carry the two factors: one code that both slants and thickens "
        "reads at most half its correlation, plus what the other code carries",
    ),
}
METRIC_NAMES: tuple[str, ...] = tuple(METRICS)


def measured_metrics(cfg: TrainConfig) -> dict[str, str]:
    """Metric name -> "" for each metric a run of cfg reports, or -> why it is not measured."""
    entry = DATASETS[cfg.dataset]
    labels = "labels" in entry.provides
    why = {
        "mi/cat": "" if cfg.cat_codes else "there are no categorical codes (cat_codes is empty)",
        "mi/cont": "" if cfg.cont_codes else "there are no continuous codes (cont_codes is 0)",
        "eval/cat_acc": "" if cfg.cat_codes and labels else "it needs categorical codes and labelled data",
        "eval/prior_kl": ""
        if cfg.cat_codes and labels and cfg.cat_codes[0] == entry.classes
        else "it needs labelled data and a first categorical code with one category per class",
        "eval/modes": "" if "modes" in entry.provides else "it needs a 2-D mixture dataset (ring8, grid25)",
        "eval/factor_align": ""
        if cfg.cont_codes and "factors" in entry.provides
        else "it needs continuous codes and `shapes`",
    }
    why |= _geometry_measured(cfg)
    why["mi/cat_ratio"] = why["mi/cat_steps_to_90"] = why["mi/cat"]
    why["q/std_min"] = why["mi/cont"]
    why["eval/hq"] = why["eval/modes"]
    return {name: why.get(name, "") for name in METRIC_NAMES}


def _geometry_measured(cfg: TrainConfig) -> dict[str, str]:
    """Why the slant and width metrics are not measured for cfg ("" where they are): they read images' ink and
    continuous codes, and the alignment assigns the two factors to two different codes."""
    image = DATASETS[cfg.dataset].is_image
    one = "" if image and cfg.cont_codes else "it needs image data and at least one continuous code"
    two = "" if image and cfg.cont_codes >= 2 else "it needs image data and at least two continuous codes"
    return {"eval/slant_corr": one, "eval/width_corr": one, "eval/slant_width_align": two}


__all__ = ["METRICS", "METRIC_NAMES", "Metric", "measured_metrics"]
