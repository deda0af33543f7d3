"""Cached access to the store for the pages: one Store per path, query results cached per store version."""

from __future__ import annotations

import os

import pandas as pd
import streamlit as st

from t3vis.queries import explore
from t3vis.store.database import Store


@st.cache_resource(show_spinner=False)
def open_store(path: str) -> Store:
    return Store(path, create=False)


def version(store: Store) -> tuple:
    """Changes whenever a writer commits (the file or its write-ahead log is touched)."""
    stamps = []
    for file in (store.path, store.path.with_name(store.path.name + ".wal")):
        try:
            stamps.append(os.stat(file).st_mtime_ns)
        except FileNotFoundError:
            stamps.append(0)
    return tuple(stamps)


@st.cache_data(show_spinner=False, max_entries=32)
def runs(_store: Store, path: str, stamp: tuple) -> pd.DataFrame:
    return _store.runs()


@st.cache_data(show_spinner=False, max_entries=32)
def checkpoints(_store: Store, path: str, stamp: tuple, run_id: str) -> pd.DataFrame:
    return _store.checkpoints(run_id)


@st.cache_data(show_spinner=False, max_entries=32)
def splits(_store: Store, path: str, stamp: tuple, run_id: str) -> pd.DataFrame:
    return explore.splits(_store, run_id)


@st.cache_data(show_spinner=False, max_entries=64)
def layouts(_store: Store, path: str, stamp: tuple, run_id: str, split: str, checkpoint: str) -> pd.DataFrame:
    return explore.layouts(_store, run_id, split, checkpoint)


@st.cache_data(show_spinner=False, max_entries=64)
def attributes(_store: Store, path: str, stamp: tuple, view: explore.View) -> list[explore.Attribute]:
    return explore.attributes(_store, view)


@st.cache_data(show_spinner=False, max_entries=16)
def _unfiltered_frame(_store: Store, path: str, stamp: tuple, view: explore.View) -> pd.DataFrame:
    return explore.example_frame(_store, view, (), known=attributes(_store, path, stamp, view))


@st.cache_data(show_spinner=False, max_entries=64)
def example_frame(_store: Store, path: str, stamp: tuple, view: explore.View,
                  filters: tuple = ()) -> pd.DataFrame:
    """The view's examples passing the filters: read from the store once per view, then filtered by DuckDB
    in memory on each filter change."""
    known = attributes(_store, path, stamp, view)
    return explore.filter_frame(_unfiltered_frame(_store, path, stamp, view), filters, known)


@st.cache_data(show_spinner=False, max_entries=256)
def example_details(_store: Store, path: str, stamp: tuple, run_id: str, split: str, example_id: int,
                    checkpoint: str | None) -> dict | None:
    return explore.example_details(_store, run_id, split, example_id, checkpoint)


@st.cache_data(show_spinner=False, max_entries=64)
def head_importance(_store: Store, path: str, stamp: tuple, run_id: str, checkpoint: str) -> pd.DataFrame:
    return explore.head_importance(_store, run_id, checkpoint)


@st.cache_data(show_spinner=False, max_entries=32)
def attention_patterns(_store: Store, path: str, stamp: tuple, run_id: str, checkpoint: str) -> pd.DataFrame:
    return explore.attention_patterns(_store, run_id, checkpoint)


@st.cache_data(show_spinner=False, max_entries=256)
def head_stats(_store: Store, path: str, stamp: tuple, run_id: str, checkpoint: str, layer: int,
               head: int) -> dict:
    return explore.head_stats(_store, run_id, checkpoint, layer, head)
