"""Models for the live views: one cached model per checkpoint, shared by every session (never modified),
and per-session caches of what was computed on it."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

import pandas as pd
import streamlit as st

from t3vis.errors import T3visError
from t3vis.markdown_text import escape_markdown as md
from t3vis.model.access import ModelBundle
from t3vis.model.checkpoint_folders import (ADAPTER, NOT_A_MODEL, NOT_RECORDED, WeightsStatus, recorded_folder,
                                            weights_status)
from t3vis.store.allowed_stores import ALLOWED_STORES_VARIABLE, allowed_entries
from t3vis.record.task import recording_task
from t3vis.tasks import SEQUENCE_CLASSIFICATION
from t3vis_app import data, state


@st.cache_resource(show_spinner="Loading the checkpoint's model ...", max_entries=3)
def load_checkpoint_model(path: str, label_names: tuple[str, ...], task: str = SEQUENCE_CLASSIFICATION,
                          base_model: str | None = None) -> ModelBundle:
    # Shared across sessions: pruning and attribution pass masks per call and never change it.
    return recording_task(task).load_checkpoint(path, label_names=label_names, device="cpu", base_model=base_model)


def base_model_choice(run_id: str) -> str | None:
    """The base model named in the sidebar for the run's adapter checkpoints (None: the one each adapter names).
    A deployment that lists the stores visitors may open (``T3VIS_ALLOWED_STORES``) lets them name no other path."""
    if allowed_entries() is not None:
        return None
    return st.session_state.get(f"base_model.{run_id}") or None


def weights_of(store: data.StoreHandle, run, checkpoint: str) -> WeightsStatus:
    """What the checkpoint's recorded folder holds, with the base chosen in the sidebar. The recorded path comes
    from the cached checkpoints read (no query per run); the folders are looked at afresh each run, so a base put
    back where the adapter names it loads at once."""
    checkpoints = data.checkpoints(store, run.run_id)
    recorded = checkpoints.loc[checkpoints.checkpoint == checkpoint, "path"]
    path = recorded.iloc[0] if len(recorded) and not pd.isna(recorded.iloc[0]) else None
    return weights_status(recorded_folder(store.database.path.parent, path), base_model=base_model_choice(run.run_id))


def adapter_base_field(container, store: data.StoreHandle, run, checkpoint: str | None) -> None:
    """For an adapter checkpoint (LoRA), the sidebar's "Base model of the adapter": which base it loads over, and a
    field to name another, the app's counterpart of ``--base-model`` (kept for the run in this browser session)."""
    if checkpoint is None:
        return
    status = weights_of(store, run, checkpoint)
    if status.kind != ADAPTER:
        return
    name = f"base_model.{run.run_id}"
    with container.expander("Base model of the adapter", expanded=not status.base_found):
        st.caption(f"{md(checkpoint)} is a peft adapter (LoRA); its folder names the base model "
                   f"{md(status.named_base or 'none')}.")
        if allowed_entries() is not None:  # a visitor names no path on a deployment that fixes its stores
            if not status.base_found:
                st.warning(f"**{md(status.base)}** cannot be found on this server, and its operator lets visitors "
                           f"name no other path ({ALLOWED_STORES_VARIABLE}).")
            return
        if not status.base_found:
            st.warning(f"**{md(status.base)}** cannot be found here: give the base model's folder (or hub name).")
        chosen = st.text_input("Base model folder or hub name", placeholder=status.named_base or "",
                               help="Where the base model the adapters were trained on is now, when it is not where "
                                    "the adapter says (moved, or recorded on another machine); as "
                                    "`t3vis ingest --base-model`. Leave empty to use the one the adapter names.",
                               **state.bind(name, state.get(name, "")))
        st.session_state[name] = chosen.strip()


def checkpoint_model(store: data.StoreHandle, run, checkpoint: str | None) -> tuple[ModelBundle | None, str]:
    """The checkpoint's model, or None with the reason it cannot be loaded (Markdown, names escaped)."""
    if checkpoint is None:
        return None, "No checkpoint is chosen."
    status = weights_of(store, run, checkpoint)
    if status.kind == NOT_RECORDED:
        return None, (f"The weights of {md(checkpoint)} are not on disk (the store records no folder for them), so "
                      "live computations are unavailable. Ingest with `t3vis ingest --model FOLDER` or record "
                      "training with `T3visCallback(checkpoint_dir=...)` to keep them.")
    if status.kind == NOT_A_MODEL:
        return None, (f"The weights of {md(checkpoint)} were saved in {md(str(status.folder))}, which holds no model "
                      "any more (moved or deleted), so live computations are unavailable. Ingest the checkpoint "
                      "again from where it is now (`t3vis ingest --model FOLDER`).")
    if status.kind == ADAPTER and status.base is not None and not status.base_found:
        return None, (f"The weights of {md(checkpoint)} are a peft adapter (LoRA) over the base model "
                      f"**{md(status.base)}**, which cannot be found here (moved, or recorded on another machine). "
                      "Give the base model's folder (or hub name) under **Base model of the adapter** in the "
                      "sidebar, as `--base-model` does for `t3vis ingest`.")
    if not status.loadable:
        return None, f"The weights of {md(checkpoint)} cannot be loaded: {md(status.problem)}"
    try:
        return load_checkpoint_model(str(status.folder), tuple(run.label_names), run.task,
                                     base_model_choice(run.run_id)), ""
    except T3visError as error:
        where = (" If the base model is not the one the adapter was trained on, name the right one under **Base "
                 "model of the adapter** in the sidebar.") if status.kind == ADAPTER else ""
        return None, f"The weights of {md(checkpoint)} cannot be loaded: {md(error)}{where}"


def checkpoint_model_or_stop(ctx) -> ModelBundle:
    """The chosen checkpoint's model for a live view; without one, the page says why and stops."""
    bundle, why_not = checkpoint_model(ctx.store, ctx.run, ctx.checkpoint)
    if bundle is None:
        st.info(why_not)
        st.stop()
    return bundle


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
