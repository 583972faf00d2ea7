"""The study file: schema, validation with `file:line: key.path: problem` messages, expansion into trials.

A study is a YAML mapping validated once, at the boundary, into a `Study`. Ablation and grid studies
expand into a deterministic, indexable list of `TrialSpec`s (configuration-major, then seeds), so a
crashed study resumes by index; a search study describes a space that a sampler explores instead.

`load` reads a file (`parse` a dict, `parse_stored` a stored definition) into a `Study` (study.py),
built from the parts in schema.py; `expand` lists its trials (expand.py); messages.py says where a
problem is and what it is.
"""

from __future__ import annotations

from sweep.spec.expand import TrialSpec, expand, factor_levels, format_value, iter_trials
from sweep.spec.load import ALIAS_NODES, load, parse, parse_stored, study_json_schema
from sweep.spec.schema import (
    BUDGET_FIELDS,
    DIVERGED,
    GPUS_PER_DEVICE,
    MAX_POPULATION,
    MAX_TRIALS,
    NAME_MAX,
    REPLICATION_SEED_OFFSET,
    Budget,
    CategoricalDistribution,
    Distribution,
    EarlyStopping,
    FloatDistribution,
    IntDistribution,
    Objective,
    Resources,
    SeedPlan,
    Verdict,
    check_study_name,
)
from sweep.spec.study import Study

__all__ = [
    "ALIAS_NODES",
    "BUDGET_FIELDS",
    "DIVERGED",
    "GPUS_PER_DEVICE",
    "MAX_POPULATION",
    "MAX_TRIALS",
    "NAME_MAX",
    "REPLICATION_SEED_OFFSET",
    "Budget",
    "CategoricalDistribution",
    "Distribution",
    "EarlyStopping",
    "FloatDistribution",
    "IntDistribution",
    "Objective",
    "Resources",
    "SeedPlan",
    "Study",
    "TrialSpec",
    "Verdict",
    "check_study_name",
    "expand",
    "factor_levels",
    "format_value",
    "iter_trials",
    "load",
    "parse",
    "parse_stored",
    "study_json_schema",
]
