"""Cached access to the store for the pages.

Pages pass one :class:`StoreHandle`: the open store together with its version. Query results are cached
per (path, version, arguments), so they are reused until a writer commits, and then read afresh.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import pandas as pd
import streamlit as st

from t3vis.charts import point_raster
from t3vis.queries import explore, generation, summaries, tagging, training_view
from t3vis.queries.frame_table import FrameTable
from t3vis.queries.sql_console import schema_description as _schema_description
from t3vis.store.database import Store


@dataclass(frozen=True)
class StoreHandle:
    """An open store and its version when the page started; the cache key is ``(path, version)``."""

    path: str
    version: tuple
    database: Store = field(compare=False, repr=False)


def _cache_key(handle: StoreHandle) -> tuple:
    return (handle.path, handle.version)


def _cached(max_entries: int):
    return st.cache_data(show_spinner=False, max_entries=max_entries, hash_funcs={StoreHandle: _cache_key})


@st.cache_resource(show_spinner=False)
def _open_store(path: str) -> Store:
    return Store(path, create=False)


def open_store(path: str) -> StoreHandle:
    """The store at ``path`` (one Store object per path for the server), with its current version."""
    store = _open_store(path)
    return StoreHandle(path=path, version=_version(store), database=store)


def _version(store: Store) -> tuple:
    """Changes whenever a writer commits (the file or its write-ahead log is touched)."""
    stamps = []
    for file in (store.path, store.path.with_name(store.path.name + ".wal")):
        try:
            stamps.append(os.stat(file).st_mtime_ns)
        except FileNotFoundError:
            stamps.append(0)
    return tuple(stamps)


# -- runs and checkpoints -----------------------------------------------------------------------------

@_cached(32)
def runs(store: StoreHandle) -> pd.DataFrame:
    return store.database.runs()


@_cached(32)
def checkpoints(store: StoreHandle, run_id: str) -> pd.DataFrame:
    return store.database.checkpoints(run_id)


# -- examples: projections, Data Maps, filters ------------------------------------------------------

@_cached(32)
def splits(store: StoreHandle, run_id: str) -> pd.DataFrame:
    return explore.splits(store.database, run_id)


@_cached(64)
def layouts(store: StoreHandle, run_id: str, split: str, checkpoint: str) -> pd.DataFrame:
    return explore.layouts(store.database, run_id, split, checkpoint)


@_cached(64)
def unit_layouts(store: StoreHandle, run_id: str, split: str, checkpoint: str) -> pd.DataFrame:
    return explore.unit_layouts(store.database, run_id, split, checkpoint)


@_cached(64)
def attributes(store: StoreHandle, view: explore.View) -> list[explore.Attribute]:
    return explore.attributes(store.database, view)


@_cached(16)
def _unfiltered_frame(store: StoreHandle, view: explore.View) -> pd.DataFrame:
    return explore.example_frame(store.database, view, (), known=attributes(store, view))


@_cached(64)
def example_frame(store: StoreHandle, view: explore.View, filters: tuple = ()) -> pd.DataFrame:
    """The view's examples passing the filters: read from the store once per view, then filtered by DuckDB
    in memory on each filter change."""
    return explore.filter_frame(_unfiltered_frame(store, view), filters, attributes(store, view))


@_cached(64)
def frame_size(store: StoreHandle, view: explore.View) -> int:
    """How many points the view has before filtering (above LARGE_VIEW it is kept in an in-memory table)."""
    return explore.frame_size(store.database, view)


@st.cache_resource(show_spinner="Reading the view's points ...", max_entries=4,
                   hash_funcs={StoreHandle: _cache_key})
def frame_table(store: StoreHandle, view: explore.View) -> FrameTable:
    """A large view's unfiltered frame in an in-memory DuckDB table: read once, shared by the sessions, not
    copied on each run (``st.cache_data`` would copy a million rows on every filter change)."""
    return FrameTable.of_view(store.database, view, attributes(store, view))


@st.cache_resource(show_spinner=False, max_entries=16, hash_funcs={StoreHandle: _cache_key})
def raster(store: StoreHandle, view: explore.View, filters: tuple, color: explore.Attribute, width: int,
           height: int) -> point_raster.Raster:
    """A large view drawn as one image (:mod:`t3vis.charts.point_raster`), shared by the sessions: a click, or a
    visitor opening the same view, does not draw it again."""
    return point_raster.point_raster(frame_table(store, view), filters, color=color, layout=view.layout,
                                     width=width, height=height)


@_cached(256)
def example_details(store: StoreHandle, run_id: str, split: str, example_id: int,
                    checkpoint: str | None) -> dict | None:
    return explore.example_details(store.database, run_id, split, example_id, checkpoint)


@_cached(128)
def document_details(store: StoreHandle, run_id: str, split: str, example_id: int, checkpoint: str | None) -> dict | None:
    return summaries.document_details(store.database, run_id, split, example_id, checkpoint)


@_cached(64)
def tag_confusion(store: StoreHandle, run_id: str, split: str, checkpoint: str) -> pd.DataFrame:
    return tagging.confusion(store.database, run_id, split, checkpoint)


# -- heads ------------------------------------------------------------------------------------------

@_cached(64)
def head_importance(store: StoreHandle, run_id: str, checkpoint: str) -> pd.DataFrame:
    return explore.head_importance(store.database, run_id, checkpoint)


@_cached(32)
def attention_patterns(store: StoreHandle, run_id: str, checkpoint: str) -> pd.DataFrame:
    return explore.attention_patterns(store.database, run_id, checkpoint)


@_cached(32)
def head_functions(store: StoreHandle, run_id: str, checkpoint: str) -> pd.DataFrame:
    return explore.head_functions(store.database, run_id, checkpoint)


@_cached(256)
def head_stats(store: StoreHandle, run_id: str, checkpoint: str, layer: int, head: int) -> dict:
    return explore.head_stats(store.database, run_id, checkpoint, layer, head)


# -- training ---------------------------------------------------------------------------------------

@_cached(16)
def learning_curves(store: StoreHandle, run_id: str) -> pd.DataFrame:
    return training_view.learning_curves(store.database, run_id)


@_cached(16)
def summary_curves(store: StoreHandle, run_id: str) -> pd.DataFrame:
    return summaries.summary_curves(store.database, run_id)


@_cached(16)
def prediction_splits(store: StoreHandle, run_id: str) -> list[str]:
    return training_view.prediction_splits(store.database, run_id)


@_cached(32)
def per_class_accuracy(store: StoreHandle, run_id: str, split: str) -> pd.DataFrame:
    return training_view.per_class_accuracy(store.database, run_id, split)


@_cached(32)
def flipped_examples(store: StoreHandle, run_id: str, split: str, before: str, after: str) -> pd.DataFrame:
    return training_view.flipped_examples(store.database, run_id, split, before, after)


@_cached(16)
def entity_f1_curves(store: StoreHandle, run_id: str) -> pd.DataFrame:
    return tagging.entity_f1_curves(store.database, run_id)


@_cached(32)
def changed_sentences(store: StoreHandle, run_id: str, split: str, before: str, after: str) -> pd.DataFrame:
    return tagging.changed_sentences(store.database, run_id, split, before, after)


@_cached(16)
def generation_curves(store: StoreHandle, run_id: str) -> pd.DataFrame:
    return generation.metric_curves(store.database, run_id)


@_cached(16)
def generation_splits(store: StoreHandle, run_id: str) -> list[str]:
    return generation.generation_splits(store.database, run_id)


@_cached(32)
def loss_changes(store: StoreHandle, run_id: str, split: str, before: str, after: str) -> pd.DataFrame:
    return generation.loss_changes(store.database, run_id, split, before, after)


# -- SQL --------------------------------------------------------------------------------------------

@_cached(8)
def schema_description(store: StoreHandle) -> pd.DataFrame:
    return _schema_description(store.database)
