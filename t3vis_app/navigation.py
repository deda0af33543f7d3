"""The app's pages and its entry: what ``streamlit run streamlit_app.py`` (a checkout) and ``t3vis_app/entry.py``
(an installed wheel) run.

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


def run_app() -> None:
    """Set up the page and run the chosen one (the entry file's only job)."""
    st.set_page_config(page_title="t3vis", layout="wide")
    folder = pages_folder()
    navigation = st.navigation([st.Page(folder / f"{stem}.py", title=title, icon=icon, default=index == 0)
                                for index, (stem, title, icon) in enumerate(PAGES)])
    navigation.run()
