"""The ways a study comes in: a YAML file (read once into nodes that keep their lines, refused when its
aliases would expand it without bound or a key appears twice), a plain dict, or a definition as a
storage keeps it; and the JSON schema of a study file, for editors."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from sweep.core import METRIC_NAMES, field_names, field_schema
from sweep.errors import StudyError
from sweep.spec.schema import BUDGET_FIELDS, MAX_TRIALS
from sweep.spec.study import Study, _validate
from sweep.vocab import control_character

ALIAS_NODES = 10_000  # nodes that YAML aliases may add to a study file: a study needs few, a "billion laughs" many


def parse(data: dict[str, Any], *, source: str = "<study>", max_trials: int | None = MAX_TRIALS) -> Study:
    """Validate a study given as a plain dict (messages name `source` and the key path); at most
    `max_trials` trials (None: no limit)."""
    return _validate(data, source, max_trials=max_trials)


def parse_stored(data: dict[str, Any], *, source: str = "<stored study>") -> Study:
    """Validate a study definition as a storage keeps it, upgrading rules written before verdicts had a
    smallest effect of interest (min_effect 0: never NO EFFECT) and paired tests (welch -> t,
    mannwhitney -> rank). A stored study was within its run's trial limit: none is applied again."""
    data = copy.deepcopy(data)
    rule = data.get("verdict")
    if isinstance(rule, dict):
        rule.setdefault("min_effect", 0.0)
        rule["test"] = {"welch": "t", "mannwhitney": "rank"}.get(rule.get("test"), rule.get("test", "t"))
    return _validate(data, source, max_trials=None, stored=True)


def load(path: str | Path, *, max_trials: int | None = MAX_TRIALS) -> Study:
    """Read and validate a study YAML file of at most `max_trials` trials (None: no limit); every error is
    one line `file:line: key.path: problem`. Dataset paths in it are relative to its folder."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise StudyError(f"{path}: no such study file") from None
    except UnicodeDecodeError as e:
        raise StudyError(f"{path}: not a study file: byte {e.start} is not UTF-8 text (a binary file?)") from None
    except OSError as e:
        raise StudyError(f"{path}: cannot read the study file ({e.strerror})") from None
    if found := control_character(text.replace("\r\n", "\n")):  # raw in the file, where YAML's reader refuses it
        at = text.index(chr(int(found[2:], 16)))
        raise StudyError(
            f"{path}:{text[:at].count(chr(10)) + 1}: holds the control character {found}; study text must be plain "
            "(remove it)"
        )
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()  # parsed once: the nodes keep lines, the data is built from them
        _bounded_aliases(node, str(path))
        _no_duplicate_keys(node, str(path))  # before the data is built: building merges `<<` keys into the nodes
        _no_control_characters(node, str(path))
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        problem = getattr(e, "problem", None) or str(e)
        raise StudyError(" ".join(f"{where}: invalid YAML: {problem}".split())) from None
    except RecursionError:
        raise StudyError(f"{path}: invalid YAML: nested too deeply for a study") from None
    finally:
        loader.dispose()
    if data is None:
        raise StudyError(f"{path}:1: the file is empty; a study needs at least name, kind, objectives, budget")
    return _validate(data, str(path), node, max_trials=max_trials, root=Path(path).parent)


def _bounded_aliases(root: yaml.Node | None, source: str) -> None:
    """Refuse a file whose aliases would expand it by more than ALIAS_NODES nodes, or that refers to itself.

    YAML shares an anchored node wherever an alias names it, so nested aliases (a "billion laughs") make a
    file of a few hundred bytes stand for billions of values: every walk over the data (the duplicate-key
    check, validation, hashing) would run for hours. Each node's expanded size is computed once here."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()
    added = 0  # nodes the aliases add, so far

    def size(node: yaml.Node) -> int:
        nonlocal added
        if id(node) in sizes:  # seen before: this is an alias of it
            added += sizes[id(node)]
            if added > ALIAS_NODES:
                raise StudyError(
                    f"{source}:{node.start_mark.line + 1}: YAML aliases expand the file by more than {ALIAS_NODES:,} "
                    "values; write the values out instead"
                )
            return sizes[id(node)]
        if id(node) in open_nodes:
            raise StudyError(f"{source}:{node.start_mark.line + 1}: a YAML alias refers to a value that contains it")
        open_nodes.add(id(node))
        if isinstance(node, yaml.MappingNode):
            children = [child for pair in node.value for child in pair]
        else:
            children = node.value if isinstance(node, yaml.SequenceNode) else []
        total = 1 + sum(size(child) for child in children)
        open_nodes.discard(id(node))
        sizes[id(node)] = total
        return total

    if root is not None:
        size(root)


def _no_duplicate_keys(node: yaml.Node | None, source: str, where: str = "") -> None:
    """YAML keeps the last of two equal keys silently; in a study that loses a value: refuse it."""
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            path = f"{where}.{key}" if where else key
            if key in seen:
                raise StudyError(f"{source}:{key_node.start_mark.line + 1}: {path}: appears twice; keep one")
            seen.add(key)
            _no_duplicate_keys(value_node, source, path)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _no_duplicate_keys(item, source, f"{where}[{i}]")


def _no_control_characters(node: yaml.Node | None, source: str, where: str = "") -> None:
    """Refuse control characters in any key or value: a claim, a description or a level is shown in
    terminals, reports and the dashboard, where an escape sequence would act (clear the screen, disguise a
    link) instead of being read. Reported at the line the character is on."""
    if isinstance(node, yaml.ScalarNode) and isinstance(node.value, str) and (found := control_character(node.value)):
        before = node.value[: node.value.index(chr(int(found[2:], 16)))]
        line = node.start_mark.line + 1 + (before.count("\n") + 1 if node.style in ("|", ">") else 0)
        raise StudyError(
            f"{source}:{line}: {where or 'key'}: holds the control character {found}; study text must be plain "
            "(write it out, or remove it)"
        )
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            path = f"{where}.{key_node.value}" if where else str(key_node.value)
            _no_control_characters(key_node, source, where)
            _no_control_characters(value_node, source, path)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _no_control_characters(item, source, f"{where}[{i}]")


def study_json_schema() -> dict[str, Any]:
    """JSON schema of a study file (for editors and `sweep schema`); `base` and `factors` carry each
    TrainConfig field's own schema (type, range, choices, meaning), from its one declaration."""
    schema = Study.model_json_schema()
    settable = [f for f in field_names() if f not in (*BUDGET_FIELDS, "seed")]
    props = schema["properties"]
    props["base"]["properties"] = {f: field_schema(f) for f in settable}
    props["base"]["additionalProperties"] = False
    props["factors"]["properties"] = {
        f: {
            "type": "array",
            "minItems": 1,
            "items": {k: v for k, v in field_schema(f).items() if k != "default"},
            "description": f"levels of {f}",
        }
        for f in field_names()
        if f != "seed"
    }
    props["factors"]["additionalProperties"] = False
    short_forms = [{"enum": list(METRIC_NAMES)}, {"type": "object", "maxProperties": 1}]
    props["objectives"]["items"] = {"anyOf": [props["objectives"]["items"], *short_forms]}
    props["space"]["propertyNames"] = {"enum": [f for f in field_names() if f != "seed"]}
    return schema
