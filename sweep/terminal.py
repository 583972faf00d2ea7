"""The terminal's shared parts, on rich: the two consoles, tables drawn for an 80-column terminal, prose
wrapped under a hanging indent, a verdict's colour, progress bars with lines of text under them, and the
one-line error. `console` (what each command prints) and `live` (progress while work runs) draw with them."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rich import box
from rich.console import Console, ConsoleOptions, Group, RenderableType
from rich.markup import escape
from rich.measure import Measurement
from rich.padding import Padding
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.segment import Segment
from rich.table import Column, Table
from rich.text import Text

from sweep.vocab import STATUS_COLOURS, Status, masked, num, visible


class PlainConsole(Console):
    """A rich Console that shows the text it is given, never acts on it: a control character in a study's
    claim, a crash's reason or a stored value (an escape sequence that would clear the screen or hide a
    link) prints as a visible symbol. Rich's own styling and cursor codes are added after this, as controls."""

    def render_str(self, text: str, **kwargs: Any) -> Text:
        # strings (printed, or table cells) are made visible before they are measured and laid out
        return super().render_str(visible(text), **kwargs)

    def render(self, renderable: RenderableType, options: ConsoleOptions | None = None) -> Iterable[Segment]:
        # the last line of defence, for Text built elsewhere: shown, though its column may be one too wide
        for segment in super().render(renderable, options):
            shown = segment.text if segment.control else visible(segment.text)
            yield segment if shown is segment.text else Segment(shown, segment.style)


# rich markup is off unless a call asks for it: what the tool prints holds data (a claim, a level, a path, an
# error's quoted value) that must not be read as markup; a call with a literal style passes markup=True and
# escapes what it interpolates (rich.markup.escape)
def new_console(**options: Any) -> PlainConsole:
    """A console as the tool's own are made: text shown as it is, rich markup only where a call asks for it."""
    return PlainConsole(markup=False, **options)


out = new_console()
err = new_console(stderr=True)

PROGRESS_INTERVAL = 15.0  # seconds between progress lines when the output is not a terminal (CI, logs)


def new_table(*, leading: int = 0) -> Table:
    """A table drawn for an 80-column terminal: a rule under the header, no side borders, two spaces between
    columns. Columns that hold numbers never wrap; text columns wrap (or fold) instead of being cut."""
    return Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 1, 0, 0), leading=leading)


def print_table(title: str, table: Table, *, wide: bool = False) -> None:
    """A title (wrapped at the terminal's width, not the table's) and its table; with `wide`, the table at its
    natural width, however wide (the terminal wraps what is longer)."""
    out.print(Text(visible(title), style="bold"))
    if not wide:
        out.print(table)
        return
    natural = Measurement.get(out, out.options.update_width(100_000), table).maximum
    wide_console = new_console(
        file=out.file,
        width=max(out.width, natural),
        color_system=out.color_system,
        force_terminal=out.is_terminal,
        highlight=False,
    )
    wide_console.print(table)


def print_lines(lines: Iterable[str], *, indent: int = 2, style: str = "") -> None:
    """Lines of prose, each wrapped at the terminal's width under a hanging indent."""
    for line in lines:
        out.print(Padding(Text(visible(line), style=style), (0, 0, 0, indent)))


def error(message: str) -> None:
    """One red line on stderr (any URL in it without its password)."""
    err.print(f"[red]error:[/] {escape(masked(message))}", markup=True, highlight=False, soft_wrap=True)


def status_text(status: Status | str) -> Text:
    """A verdict in its colour; other words as they are."""
    colour = STATUS_COLOURS.get(status)  # type: ignore[call-overload]  # words that are no verdict have none
    return Text(str(status), style=f"bold {colour}" if colour else "")


def cell(value: Any) -> str:
    return num(value) if isinstance(value, float) or value is None else str(value)


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def metric_caveats(metrics: Iterable[str]) -> list[str]:
    from sweep.core import caveats  # lazy: the core's metric table loads only where metrics are shown

    return caveats(metrics)


class StatusProgress(Progress):
    """A rich Progress with lines of text under its bars, wrapped at the terminal's width (never cut)."""

    status: Text = Text()

    def get_renderables(self) -> Iterable[RenderableType]:
        yield Group(self.make_tasks_table(self.tasks), self.status)


def progress_bars(console: Console) -> StatusProgress:
    label = Column(overflow="fold")
    return StatusProgress(
        BarColumn(bar_width=24),
        MofNCompleteColumn(),
        TextColumn("{task.description}", table_column=label),
        console=console,
        transient=False,
    )


__all__ = [
    "PROGRESS_INTERVAL",
    "StatusProgress",
    "cell",
    "err",
    "error",
    "metric_caveats",
    "new_console",
    "new_table",
    "out",
    "plural",
    "print_lines",
    "print_table",
    "progress_bars",
    "status_text",
]
