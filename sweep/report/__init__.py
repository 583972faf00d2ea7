"""The study report: which factor matters, by how much, and is it more than seed noise?

`build.build` reads only the Optuna storage (and its artifact store) into one document model, a
`Report`; `render.write` lays it out as one self-contained HTML file or as Markdown with its PNGs.
`tables` holds the report's text (the effect table, the summary) that the terminal shares; `figures`
draws the plots. Importing this package loads none of them.
"""

from __future__ import annotations

__all__ = ["build", "figures", "render", "tables"]
