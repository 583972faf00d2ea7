"""Render a `Report`: one self-contained HTML file, or Markdown with its PNG files beside it.

Both come from Jinja2 templates over the same document model. HTML is autoescaped; its images are
inlined as data URIs and its CSS is inline, with no scripts and no external addresses, so it opens
from disk, offline.
"""

from __future__ import annotations

import base64
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING

import jinja2
from markupsafe import Markup

from sweep.errors import SweepError
from sweep.vocab import markdown_text, visible

if TYPE_CHECKING:
    from sweep.report.build import Report

TEMPLATES = Path(__file__).parent / "templates"


class Format(str, Enum):
    HTML = "html"
    MD = "md"

    @classmethod
    def of(cls, output: str | Path | None) -> Format:
        """The format an output file's suffix names (`.md`, `.html`), else HTML."""
        suffix = Path(output).suffix.lstrip(".").lower() if output else ""
        return cls(suffix) if suffix in {f.value for f in cls} else cls.HTML


def _environment(*, html: bool) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=html,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        finalize=_shown,  # every value a template prints: control characters shown, never passed on
    )
    env.filters["b64"] = lambda data: base64.b64encode(data).decode()
    env.filters["md"] = lambda text: str(text).replace("|", "\\|").replace("\n", " ")  # a table cell
    env.filters["text"] = markdown_text  # free text (a claim, a description) that must stay text in Markdown
    return env


def _shown(value: object) -> object:
    """A value as a template prints it: strings with their control characters made visible (HTML escapes
    the rest); markup the templates built themselves passes as it is."""
    return visible(value) if isinstance(value, str) and not isinstance(value, Markup) else value


def html(report: Report) -> str:
    """The report as one self-contained HTML page."""
    css = (TEMPLATES / "report.css").read_text(encoding="utf-8")
    return _environment(html=True).get_template("report.html.j2").render(r=report, css=css)


def markdown(report: Report, image_dir: str) -> tuple[str, dict[str, bytes]]:
    """The report as Markdown, and the PNG files it links to (name -> bytes) under `image_dir`/."""
    text = _environment(html=False).get_template("report.md.j2").render(r=report, image_dir=image_dir)
    return text, {p.name: p.png for p in report.pictures()}


def write(report: Report, output: str | Path | None = None, *, fmt: Format | str = Format.HTML) -> Path:
    """Write the report; default `reports/<study>.<fmt>`. Markdown's images go to `<stem>_files/`."""
    fmt = Format(fmt)
    path = Path(output) if output else Path("reports") / f"{report.study.name}.{fmt.value}"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if fmt is Format.HTML:
            path.write_text(html(report), encoding="utf-8")
            return path
        image_dir = f"{path.stem}_files"
        text, files = markdown(report, image_dir)
        (path.parent / image_dir).mkdir(exist_ok=True)
        for name, data in files.items():
            (path.parent / image_dir / name).write_bytes(data)
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise SweepError(f"cannot write the report to {path} ({exc.strerror})") from exc
    return path


__all__ = ["Format", "html", "markdown", "write"]
