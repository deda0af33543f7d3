"""Models for the live views: one cached model per checkpoint, shared by every session (never modified),
and per-session caches of what was computed on it."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import streamlit as st

from t3vis.markdown_text import escape_markdown as md
from t3vis.model.access import ModelBundle
from t3vis.record.task import recording_task
from t3vis.tasks import SEQUENCE_CLASSIFICATION
from t3vis_app import data


@st.cache_resource(show_spinner="Loading the checkpoint's model ...", max_entries=3)
def load_checkpoint_model(path: str, label_names: tuple[str, ...], task: str = SEQUENCE_CLASSIFICATION) -> ModelBundle:
    # Shared across sessions: pruning and attribution pass masks per call and never change it.
    return recording_task(task).load_checkpoint(path, label_names=label_names, device="cpu")


def checkpoint_model(store: data.StoreHandle, run, checkpoint: str | None) -> tuple[ModelBundle | None, str]:
    """The checkpoint's model, or None with the reason it cannot be loaded (Markdown, names escaped)."""
    if checkpoint is None:
        return None, "No checkpoint is chosen."
    folder = data.checkpoint_weights(store, run.run_id, checkpoint)
    if folder is None:
        return None, (f"The weights of {md(checkpoint)} are not on disk (the store records no readable folder "
                      "for it), so live computations are unavailable. Ingest with `t3vis ingest --model FOLDER` or "
                      "record training with `T3visCallback(checkpoint_dir=...)` to keep them.")
    return load_checkpoint_model(str(Path(folder)), tuple(run.label_names), run.task), ""


def session_cached(name: str, key: tuple, compute: Callable, *, size: int = 16):
    """compute() once per key in this browser session (a small LRU in st.session_state)."""
    cache: OrderedDict = st.session_state.setdefault(f"_cache.{name}", OrderedDict())
    if key in cache:
        cache.move_to_end(key)
        return cache[key]
    value = compute()
    cache[key] = value
    while len(cache) > size:
        cache.popitem(last=False)
    return value
