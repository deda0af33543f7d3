"""The app's pages, which ``streamlit_app.py`` (a checkout) and ``t3vis_app/entry.py`` (an installed wheel) route to.

The page files live in ``pages/`` at the top of a checkout; the wheel carries the same files as ``t3vis_app/pages/``
(pyproject.toml maps the one onto the other), so an installed t3vis serves the app without a checkout.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

# file stem (its URL path), title, icon; the first is the default page
PAGES = (
    ("projection", "Projection & data", ":material/scatter_plot:"),
    # Every page reads the selected example, run and checkpoint from st.session_state.
    ("heads", "Attention heads", ":material/grid_view:"),
    ("instance", "Instance", ":material/text_fields:"),
    ("training", "Training", ":material/show_chart:"),
    ("sql", "SQL", ":material/database:"),
    ("overview", "Runs & checkpoints", ":material/table_view:"),
)


def pages_folder() -> Path:
    """The folder of the page files: inside the installed package, else the checkout's ``pages/``."""
    installed = Path(__file__).resolve().parent / "pages"
    return installed if (installed / "projection.py").is_file() else Path(__file__).resolve().parent.parent / "pages"


def pages() -> list:
    """The pages, for ``st.navigation`` (the entry file's only job is to route to them)."""
    folder = pages_folder()
    return [st.Page(folder / f"{stem}.py", title=title, icon=icon, default=index == 0)
            for index, (stem, title, icon) in enumerate(PAGES)]
