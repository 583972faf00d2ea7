"""The metric table: every name a run reports, the direction in which it is better, and its meaning.

Names are flat strings namespaced with `/`, the same in the core, Ray, Optuna and reports. A study may
name any of them; `measured_metrics` says which ones a configuration reports, and why not the others.
This module imports no torch; `evaluation` computes the `eval/*` values.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from infogan_core.data import dataset_entry

if TYPE_CHECKING:
    from infogan_core.config import TrainConfig


class Metric(NamedTuple):
    direction: str  # "minimize" | "maximize": the direction in which it is better
    doc: str  # meaning and unit
    caveat: str = ""  # what a reader of the number must know, shown wherever the metric is
    censored: bool = False  # a time to an event: a run that never reached it reports steps + report_every


# caveats that several metrics share, said once (reports print each distinct line once)
_PRDC_CAVEAT = (
    "eval/precision, eval/recall, eval/density and eval/coverage are computed in the features eval/fd uses (a small "
    "classifier's, or raw 2-D coordinates), not Inception's: not comparable to published values"
)
_DCI_CAVEAT = (
    "eval/dci_d and eval/dci_c read random-forest importances fitted to 2,000 real samples; a code that predicts "
    "nothing still spreads importance, so read them with eval/mig"
)
_INCEPTION_CAVEAT = (
    "eval/fid and eval/kid compare eval_samples samples with up to 10,000 real images upsampled to 299x299: published "
    "values use 50,000 samples of natural images, and FID falls as the sample count grows"
)

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
    "eval/class_entropy": Metric(
        "maximize",
        "entropy (nats) of the classes G's samples are drawn as, by the reference classifier of eval/fd; ln 10 = "
        "2.30 when ten classes are drawn equally often, 0 when G draws one class",
        "eval/class_entropy reads the reference classifier's predictions: a sample it cannot place still counts as "
        "its likeliest class",
    ),
    "eval/factor_align": Metric("maximize", "mean |Spearman| of continuous codes matched one-to-one to true factors"),
    # the metrics GAN papers report (issue 26); sources in docs/studies.md
    "eval/nmi": Metric(
        "maximize",
        "normalized mutual information (arithmetic mean) of Q's first categorical code on real data and the labels",
        "eval/nmi is not adjusted for chance: more categories than classes raise it; read it with eval/ari",
    ),
    "eval/ari": Metric(
        "maximize",
        "adjusted Rand index of Q's first categorical code on real data and the labels; 0 is chance, 1 a relabelling",
    ),
    "eval/precision": Metric(
        "maximize",
        "fraction of samples inside the real data's k-NN balls (Kynkaanniemi et al. 2019), k = 5",
        _PRDC_CAVEAT,
    ),
    "eval/recall": Metric(
        "maximize", "fraction of real data inside the samples' k-NN balls (Kynkaanniemi et al.)", _PRDC_CAVEAT
    ),
    "eval/density": Metric(
        "maximize",
        "mean number of real k-NN balls holding a sample, over k (Naeem et al. 2020); about 1 when the sets match",
        _PRDC_CAVEAT
        + "; eval/density is not bounded by 1: samples crowded where the real data is dense score above it",
    ),
    "eval/coverage": Metric(
        "maximize",
        "fraction of real samples whose k-NN ball holds at least one sample (Naeem et al. 2020)",
        _PRDC_CAVEAT,
    ),
    "eval/mig": Metric(
        "maximize",
        "mutual information gap of Q's codes on real data over the true factors, each / H(factor) (Chen et al. 2018)",
        "eval/mig discretizes codes and factors into 20-bin histograms (disentanglement_lib's estimator); the "
        "plug-in mutual information is biased up by about (bins - 1)^2 / 2N nats",
    ),
    "eval/dci_d": Metric(
        "maximize",
        "DCI disentanglement: 1 - entropy of each code's importance over the factors, weighted (Eastwood & Williams "
        "2018), random-forest importances",
        _DCI_CAVEAT,
    ),
    "eval/dci_c": Metric(
        "maximize",
        "DCI completeness: 1 - entropy of each factor's importance over the codes, weighted (Eastwood & Williams)",
        _DCI_CAVEAT,
    ),
    "eval/fid": Metric(
        "minimize",
        "FID: Frechet distance in InceptionV3's 2048-d pool features (torch-fidelity's network, local weights)",
        _INCEPTION_CAVEAT,
    ),
    "eval/kid": Metric(
        "minimize",
        "KID: unbiased MMD^2 with a cubic kernel in InceptionV3's features, mean of 100 subsets (Binkowski et al. "
        "2018)",
        _INCEPTION_CAVEAT,
    ),
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


INCEPTION_WEIGHTS_ENV = "INFOGAN_INCEPTION_WEIGHTS"
INCEPTION_WEIGHTS_FILE = "weights-inception-2015-12-05-6726825d.pth"  # torch-fidelity's release asset


def inception_weights() -> tuple[Path | None, str]:
    """(the InceptionV3 weights file eval/fid and eval/kid read, "") or (None, why they cannot be computed)."""
    name = os.environ.get(INCEPTION_WEIGHTS_ENV, "")
    if not name:
        return None, f"it needs InceptionV3 weights: set ${INCEPTION_WEIGHTS_ENV} to {INCEPTION_WEIGHTS_FILE}"
    if not Path(name).is_file():
        return None, f"${INCEPTION_WEIGHTS_ENV} names {name}, which is not a file"
    if not _has_torch_fidelity():
        return None, 'it needs the torch-fidelity package: pip install -e ".[inception]"'
    return Path(name), ""


def _has_torch_fidelity() -> bool:
    return importlib.util.find_spec("torch_fidelity") is not None  # found, not imported: it loads torchvision


def measured_metrics(cfg: TrainConfig) -> dict[str, str]:
    """Metric name -> "" for each metric a run of cfg reports, or -> why it is not measured."""
    entry = dataset_entry(cfg.dataset)
    labels = "labels" in entry.provides
    codes = len(cfg.cat_codes) + cfg.cont_codes
    why = {
        "mi/cat": "" if cfg.cat_codes else "there are no categorical codes (cat_codes is empty)",
        "mi/cont": "" if cfg.cont_codes else "there are no continuous codes (cont_codes is 0)",
        "eval/cat_acc": "" if cfg.cat_codes and labels else "it needs categorical codes and labelled data",
        "eval/prior_kl": ""
        if cfg.cat_codes and labels and cfg.cat_codes[0] == entry.classes
        else "it needs labelled data and a first categorical code with one category per class",
        "eval/modes": "" if "modes" in entry.provides else "it needs a 2-D mixture dataset (ring8, grid25)",
        "eval/fd": "" if labels or not entry.is_image else "its reference classifier is trained on labelled images",
        "eval/class_entropy": "" if labels and entry.is_image else "it needs labelled images",
        "eval/factor_align": ""
        if cfg.cont_codes and "factors" in entry.provides
        else "it needs continuous codes and `shapes`",
        "eval/mig": "" if codes >= 2 and "factors" in entry.provides else "it needs two codes or more and `shapes`",
        "eval/precision": "" if labels or not entry.is_image else "it needs labelled images or 2-D data",
        "eval/fid": "it needs images" if not entry.is_image else inception_weights()[1],
    }
    why |= _geometry_measured(cfg)
    why["mi/cat_ratio"] = why["mi/cat_steps_to_90"] = why["mi/cat"]
    why["q/std_min"] = why["mi/cont"]
    why["eval/hq"] = why["eval/modes"]
    why["eval/nmi"] = why["eval/ari"] = why["eval/cat_acc"]
    why["eval/recall"] = why["eval/density"] = why["eval/coverage"] = why["eval/precision"]
    why["eval/dci_d"] = why["eval/dci_c"] = why["eval/mig"]
    why["eval/kid"] = why["eval/fid"]
    return {name: why.get(name, "") for name in METRIC_NAMES}


def _geometry_measured(cfg: TrainConfig) -> dict[str, str]:
    """Why the slant and width metrics are not measured for cfg ("" where they are): they read images' ink and
    continuous codes, and the alignment assigns the two factors to two different codes."""
    image = dataset_entry(cfg.dataset).is_image
    one = "" if image and cfg.cont_codes else "it needs image data and at least one continuous code"
    two = "" if image and cfg.cont_codes >= 2 else "it needs image data and at least two continuous codes"
    return {"eval/slant_corr": one, "eval/width_corr": one, "eval/slant_width_align": two}


__all__ = [
    "INCEPTION_WEIGHTS_ENV",
    "INCEPTION_WEIGHTS_FILE",
    "METRICS",
    "METRIC_NAMES",
    "Metric",
    "inception_weights",
    "measured_metrics",
]
