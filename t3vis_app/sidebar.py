"""The sidebar every page draws: store file, run and checkpoint. Also the no-store and empty-store screens."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import streamlit as st

from t3vis.demo.background import BackgroundDemoBuild
from t3vis.errors import SchemaVersionError, StoreError
from t3vis.markdown_text import escape_markdown as md
from t3vis.store.allowed_stores import check_store_allowed, default_store
from t3vis.store.database import DEFAULT_DEMO_PATH, read_meta_of_any_version
from t3vis_app import data, follow, models, state


@dataclass(frozen=True)
class Context:
    """What the sidebar chose, for the page to use."""

    store: data.StoreHandle  # the open store and its version, for the cached reads in t3vis_app.data
    run: pd.Series  # the runs row
    checkpoints: pd.DataFrame
    checkpoint: str | None


@st.cache_resource(show_spinner=False)
def _demo_build(path: str) -> BackgroundDemoBuild:
    """One demo build at a time for the whole server, whatever the number of browser sessions."""
    return BackgroundDemoBuild(path)


def offer_demo(path: str, *, outdated: bool = False) -> None:
    """The no-store screen (``outdated``: the demo there was built by an older t3vis).

    At the default demo path the demo is built at once, in the background, as on the first visit of a fresh
    hosted app: every session shows the one build's progress and opens the page when the store is ready. Nothing
    is built anywhere else: a visitor of a hosted app must not make the server write at paths of their choosing.
    """
    if Path(path).resolve() != DEFAULT_DEMO_PATH.resolve():
        st.info(f"No store at `{path}` yet.")
        st.markdown(f"To fill it, record a run with `t3vis ingest --model CHECKPOINT --data FILE --store {path}` or "
                    f"the `T3visCallback`; or open the built-in demo at `{DEFAULT_DEMO_PATH}`.")
        return
    build = _demo_build(str(DEFAULT_DEMO_PATH.resolve()))
    status = build.status()
    if status.error and not status.running:
        notice = st.empty()  # the failure, how far it got, and the one button to try again
        with notice.container():
            st.error(f"Building the demo failed: {md(status.error)}")
            st.progress(status.fraction, text=f"How far it got: {status.text}")
            retry = st.button("Build the demo again", type="primary", key="demo_rebuild")
        if not retry:
            return
        notice.empty()
    elif not status.running and not _builds_on_first_visit():
        st.info(f"No store at `{path}` yet.")
        st.markdown("This deployment opens its own store by default; the built-in demo (the pretrained MiniLM "
                    "fine-tuned on a generated topic corpus, about 1.5 minutes on 2 CPU cores) is built only on "
                    "request.")
        if not st.button("Build the demo store", type="primary", key="demo_build"):
            return
    build.start()  # nothing happens while another session's build runs
    status = build.status()
    if outdated:
        st.info(f"The demo store at `{path}` was built by an older t3vis (another store schema version): "
                "building it again.")
    else:
        st.info(f"No store at `{path}` yet: building the built-in demo.")
    st.markdown(
        "The **built-in demo** is the pretrained MiniLM fine-tuned for 4 epochs on a generated topic corpus with "
        "10% flipped labels, recorded at every epoch: about 1.5 minutes on 2 CPU cores, no network needed. "
        "This page opens it when it is ready. To look at your own training instead, record it into a store of its "
        "own (`t3vis ingest --model CHECKPOINT --data FILE --store store/mine.duckdb`, or the `T3visCallback`) and "
        "open that file here."
    )
    bar = st.progress(0.0, text=status.text)
    while status.running:
        status = build.wait(timeout=0.5)
        bar.progress(status.fraction, text=status.text)
    st.rerun()  # the store opens, or the failure shows with its one button to try again


def _builds_on_first_visit() -> bool:
    """Whether the demo is built as soon as a visitor opens its path: when it is the app's default store (a fresh
    hosted demo). A deployment whose default store is its own (``T3VIS_STORE``) builds it only on a click, so that
    typing the demo's path is not enough to start a training run on its server."""
    configured = os.environ.get("T3VIS_STORE")
    return not configured or Path(configured).resolve() == DEFAULT_DEMO_PATH.resolve()



def is_outdated_demo(path: str) -> bool:
    """Whether ``path`` is the default demo store built by an older t3vis (the demo's mark, another version)."""
    return (Path(path).resolve() == DEFAULT_DEMO_PATH.resolve()
            and read_meta_of_any_version(path, "demo_build") is not None)  # t3vis.demo.build.DEMO_MARK_KEY


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
    path = sidebar.text_input("Store file", help="A DuckDB store written by t3vis.",
                              **state.bind("store_path", state.get("store_path", default_store())))
    st.session_state["store_path"] = path
    try:
        check_store_allowed(path)  # T3VIS_ALLOWED_STORES: before the file is looked at, let alone opened
    except StoreError as error:
        st.error(md(error))
        st.stop()
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
    models.adapter_base_field(sidebar, store, run, checkpoint)  # a LoRA checkpoint: which base it loads over
    follow.render(store, run_id, names)  # the "Follow training" switch: reruns the page when the store grows
    return Context(store=store, run=run, checkpoints=checkpoints, checkpoint=checkpoint)
