"""Download buttons that export a chart as a publication figure (SVG, PNG at 2x, and LaTeX for token
saliency), rendered on click."""

from __future__ import annotations

import re
from collections.abc import Callable

import altair as alt
import streamlit as st

from t3vis.charts import figures
from t3vis.markdown_text import escape_markdown as md


def file_stem(name: str) -> str:
    """A file name stem (no characters a file system minds: run and split names come from the store)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "figure"


def figure_buttons(chart: alt.TopLevelMixin | Callable[[], alt.TopLevelMixin], *, name: str, caption: str, key: str,
                   latex: Callable[[], str] | None = None) -> None:
    """SVG and PNG buttons under a chart (and a LaTeX one when ``latex`` makes the snippet); the figure is rendered
    by vl-convert only when one is clicked. ``chart`` may be a function making the chart, called then too."""
    stem = file_stem(name)
    make = chart if callable(chart) and not isinstance(chart, alt.TopLevelMixin) else (lambda: chart)
    row = st.container(horizontal=True)
    row.download_button("SVG", lambda: figures.figure_svg(make(), caption=caption), file_name=f"{stem}.svg",
                        mime="image/svg+xml", key=f"{key}.svg", on_click="ignore", icon=":material/download:",
                        help=f"This chart as a vector figure for a paper, captioned “{md(caption)}”.")
    row.download_button("PNG", lambda: figures.figure_png(make(), caption=caption), file_name=f"{stem}.png",
                        mime="image/png", key=f"{key}.png", on_click="ignore", icon=":material/download:",
                        help=f"This chart at twice its size, captioned “{md(caption)}”.")
    if latex is not None:
        row.download_button("LaTeX", latex, file_name=f"{stem}.tex", mime="text/x-tex", key=f"{key}.tex",
                            on_click="ignore", icon=":material/download:",
                            help="The tokens as a LaTeX snippet: one \\\\colorbox per token in its colour here "
                                 "(needs \\\\usepackage{xcolor}).")
