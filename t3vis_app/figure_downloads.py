"""Download buttons that export a chart as a publication figure (SVG, PNG at 2x), rendered on click."""

from __future__ import annotations

import re

import altair as alt
import streamlit as st

from t3vis import figures
from t3vis.markdown_text import escape_markdown as md


def figure_buttons(chart: alt.TopLevelMixin, *, name: str, caption: str, key: str) -> None:
    """SVG and PNG buttons under a chart; the figure is rendered by vl-convert only when one is clicked."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "figure"
    row = st.container(horizontal=True)
    row.download_button("SVG", lambda: figures.figure_svg(chart, caption=caption), file_name=f"{stem}.svg",
                        mime="image/svg+xml", key=f"{key}.svg", on_click="ignore", icon=":material/download:",
                        help=f"This chart as a vector figure for a paper, captioned “{md(caption)}”.")
    row.download_button("PNG", lambda: figures.figure_png(chart, caption=caption), file_name=f"{stem}.png",
                        mime="image/png", key=f"{key}.png", on_click="ignore", icon=":material/download:",
                        help=f"This chart at twice its size, captioned “{md(caption)}”.")
