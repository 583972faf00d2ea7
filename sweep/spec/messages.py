"""How a problem in a study file is said: a problem at a key path, its message in the file's vocabulary,
and the dotted key path and line it is reported at (`file:line: key.path: problem`)."""

from __future__ import annotations

import difflib
import re
from typing import Any

import yaml


class _At(ValueError):
    """A problem at a key path below the model being validated (pydantic keeps it in the error's ctx)."""

    def __init__(self, path: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.path = path


class _TooMany(_At):
    """More trials than the limit the study is validated under: raised as a TooManyTrialsError."""


def _unknown(what: str, key: Any, valid: Any) -> str:
    close = difflib.get_close_matches(str(key), list(valid), n=1)
    hint = f"did you mean {close[0]!r}?" if close else f"expected one of: {', '.join(valid)}"
    return f"unknown {what} {key!r}; {hint}"


def _locate(loc: tuple[Any, ...], data: Any, node: yaml.Node | None, *, keep_last: bool) -> tuple[str, int | None]:
    """Dotted key path and 1-based line of a pydantic error location; parts absent from the data are tags."""
    path, line = "", node.start_mark.line + 1 if node is not None else None
    for i, part in enumerate(loc):
        if isinstance(data, dict) and part in data:
            data = data[part]
            path += f".{part}" if path else str(part)
            pairs = node.value if isinstance(node, yaml.MappingNode) else []
            key, node = next(((k, v) for k, v in pairs if k.value == str(part)), (None, None))
            line = key.start_mark.line + 1 if key is not None else line
        elif isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data):
            data, path = data[part], f"{path}[{part}]"
            node = node.value[part] if isinstance(node, yaml.SequenceNode) else None
            line = node.start_mark.line + 1 if node is not None else line
        elif keep_last and i == len(loc) - 1:
            path += f".{part}" if path else str(part)
    return path, line


def _message(error: dict[str, Any]) -> str:
    cause = (error.get("ctx") or {}).get("error")
    if isinstance(cause, ValueError):
        return str(cause)
    kind, ctx = error["type"], error.get("ctx") or {}
    if kind == "missing":
        return "required key is missing"
    if kind == "union_tag_invalid":
        return f"`type` must be one of {ctx['expected_tags']}, but got {ctx['tag']!r}"
    if kind == "union_tag_not_found":
        return "needs a `type`: float, int or categorical"
    if kind == "too_short" and ctx.get("min_length") == 1:
        return "must not be empty"
    msg = re.sub(r"^\w+ should", "must", error["msg"])
    msg = re.sub(r"a valid dictionary( or instance of \w+)?", "a mapping", msg)
    got = repr(error["input"])
    return f"{msg}, but got {got if len(got) <= 60 else got[:57] + '...'}"
