"""The sidebar every page draws: store file, run and checkpoint. Also the no-store and empty-store screens."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import streamlit as st

from t3vis.errors import SchemaVersionError, StoreError
from t3vis.markdown_text import escape_markdown as md
from t3vis.store.database import DEFAULT_DEMO_PATH, read_meta_of_any_version
from t3vis_app import data, follow, state


@dataclass(frozen=True)
class Context:
    """What the sidebar chose, for the page to use."""

    store: data.StoreHandle  # the open store and its version, for the cached reads in t3vis_app.data
    run: pd.Series  # the runs row
    checkpoints: pd.DataFrame
    checkpoint: str | None


@st.cache_resource(show_spinner=False)
def _demo_build_lock() -> threading.Lock:
    """One demo build at a time for the whole server, whatever the number of browser sessions."""
    return threading.Lock()


def offer_demo(path: str, *, outdated: bool = False) -> None:
    """The no-store screen (``outdated``: the demo there was built by an older t3vis). The demo can be built from
    the browser only at the default demo path: a visitor of a hosted app must not create files at paths of their
    choosing."""
    if outdated:
        st.info(f"The demo store at `{path}` was built by an older t3vis (another store schema version); build it "
                "again to open it.")
    else:
        st.info(f"No store at `{path}` yet.")
    if Path(path).resolve() != DEFAULT_DEMO_PATH.resolve():
        st.markdown(
            f"Record a run into it with `t3vis ingest --model CHECKPOINT --data FILE --store {path}` or "
            f"the `T3visCallback`, or open the built-in demo at `{DEFAULT_DEMO_PATH}`."
        )
        return
    st.markdown(
        "Build the **built-in demo**: the pretrained MiniLM fine-tuned for 4 epochs on a generated topic "
        "corpus with 10% flipped labels (about 1.5 minutes on 2 CPU cores, no network needed), "
        f"or record your own run with `t3vis ingest --model CHECKPOINT --data FILE --store {path}`."
    )
    if st.button("Build the demo store", type="primary"):
        lock = _demo_build_lock()
        if not lock.acquire(blocking=False):
            st.warning("The demo is being built in another session; reload this page in a minute.")
            return
        try:
            from t3vis.demo.build import build_demo  # imports torch and transformers: only when needed

            bar = st.progress(0.0, text="Starting ...")

            def report(phase: str, done: int, total: int) -> None:
                bar.progress(min(done / max(total, 1), 1.0), text=f"{phase}: {done} / {total}")

            if not _current_store(DEFAULT_DEMO_PATH):  # another session may have finished it meanwhile
                result = build_demo(DEFAULT_DEMO_PATH, progress=report)
                bar.progress(1.0, text=f"Built in {result.seconds:.0f} s")
        finally:
            lock.release()
        st.rerun()


def is_outdated_demo(path: str) -> bool:
    """Whether ``path`` is the default demo store built by an older t3vis (the demo's mark, another version)."""
    return (Path(path).resolve() == DEFAULT_DEMO_PATH.resolve()
            and read_meta_of_any_version(path, "demo_build") is not None)  # t3vis.demo.build.DEMO_MARK_KEY


def _current_store(path: Path) -> bool:
    """Whether ``path`` is a store this t3vis reads (of the current schema version)."""
    try:
        data.open_store(str(path))
    except StoreError:
        return False
    return True


def _leave_pages_folder_mode() -> None:
    """Streamlit treats a ``pages/`` folder beside the entry point as old-style multipage navigation until the
    entry point's ``st.navigation`` has run once on the server. A visitor whose first request opens a page's
    own link (``/heads?...``) on a fresh server would get that page alone: file names for navigation, no wide
    layout. Switch the server to ``st.navigation`` and rerun, which then opens the requested page properly."""
    from streamlit.runtime.pages_manager import PagesManager

    if getattr(PagesManager, "uses_pages_directory", False):
        PagesManager.uses_pages_directory = False
        st.rerun()


def render() -> Context:
    """Draw the sidebar; stops the page with a helpful screen when there is nothing to show."""
    _leave_pages_folder_mode()
    state.load_url_once()
    sidebar = st.sidebar
    sidebar.markdown("### t3vis")
    # T3VIS_STORE (an environment variable) names another default store, e.g. for a deployment.
    default = os.environ.get("T3VIS_STORE", str(DEFAULT_DEMO_PATH))
    path = sidebar.text_input("Store file", help="A DuckDB store written by t3vis.",
                              **state.bind("store_path", state.get("store_path", default)))
    st.session_state["store_path"] = path
    if not Path(path).is_file():
        offer_demo(path)
        st.stop()
    try:
        store = data.open_store(path)
    except SchemaVersionError as error:
        if is_outdated_demo(path):
            offer_demo(path, outdated=True)
        else:
            st.error(md(error))
        st.stop()
    except StoreError as error:
        st.error(md(error))
        st.stop()
    runs = data.runs(store)
    if runs.empty:
        st.info("This store has no runs yet. Record one with `t3vis ingest`, or build the demo with `t3vis demo`.")
        st.stop()
    run_id = state.choice(sidebar.selectbox, "Run", runs.run_id.tolist(), name="run_id")
    run = runs.set_index("run_id").loc[run_id]
    run["run_id"] = run_id
    checkpoints = data.checkpoints(store, run_id)
    names = checkpoints.checkpoint.tolist()
    checkpoint = state.choice(sidebar.selectbox, "Checkpoint", names, name="checkpoint",
                              default=names[-1] if names else None,
                              help="Checkpoints in training order; the latest is the default.")
    if checkpoint is None:
        sidebar.caption("This run has training dynamics but no ingested checkpoint yet.")
    follow.render(store, run_id, names)  # the "Follow training" switch: reruns the page when the store grows
    return Context(store=store, run=run, checkpoints=checkpoints, checkpoint=checkpoint)
