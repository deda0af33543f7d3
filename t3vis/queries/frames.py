"""The parts every task's example frame is made of: the view, attributes, filters and the dataset's extra columns.

An example frame is what the Projection view and the Data Table draw: one row per point (an example,
or a unit of one such as a document's sentence) with columns example_id, x, y, text and attributes.
Each task says how its rows become such a frame in a :class:`TaskFrames`; :mod:`t3vis.queries.explore`
picks the run's task's and filters the result in SQL.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from t3vis.store.database import Store

DATA_MAP = "datamap"
TEXT_PREVIEW = 160
_SAFE_KEY = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_ .:-]{0,63}$")


@dataclass(frozen=True)
class Attribute:
    """A column of the example frame that can colour points and filter them."""

    name: str
    label: str
    kind: str  # "categorical" (hue, multiselect) or "continuous" (saturation, range slider)


@dataclass(frozen=True)
class View:
    """Which examples and which layout to show."""

    run_id: str
    split: str
    checkpoint: str | None = None  # predictions (and projections) of this checkpoint
    layout: str = "tsne"  # a projection method ("tsne", "pca") or DATA_MAP
    layer: int | None = None
    pooling: str = "cls"
    points: str = "examples"  # "examples", or "units" (a document's sentences) laid out by their own vectors


@dataclass(frozen=True)
class RangeFilter:
    column: str
    low: float
    high: float


@dataclass(frozen=True)
class ValuesFilter:
    column: str
    values: tuple


Filter = RangeFilter | ValuesFilter

PREDICTION_ATTRIBUTES = (
    Attribute("prediction", "prediction", "categorical"),
    Attribute("correct", "correct", "categorical"),
    Attribute("loss", "loss", "continuous"),
    Attribute("confidence", "confidence (max probability)", "continuous"),
    Attribute("gold_prob", "gold-label probability", "continuous"),
)
DATA_MAP_ATTRIBUTES = (
    Attribute("region", "Data Map region", "categorical"),
    Attribute("dm_confidence", "Data Map confidence", "continuous"),
    Attribute("variability", "variability", "continuous"),
    Attribute("correctness", "correctness", "continuous"),
    Attribute("forgetting_events", "forgetting events", "continuous"),
)
BASE_ATTRIBUTES = (
    Attribute("label", "label", "categorical"),
    Attribute("truncated", "truncated", "categorical"),
    Attribute("n_tokens", "length (tokens)", "continuous"),
)


def splits(store: Store, run_id: str) -> pd.DataFrame:
    """The run's splits: split, n_examples, has_projections, has_predictions, has_dynamics, has_unit_projections."""
    return store.query(
        """SELECT e.split, count(*) AS n_examples,
                  EXISTS (SELECT 1 FROM projections p WHERE p.run_id = e.run_id AND p.split = e.split) AS has_projections,
                  EXISTS (SELECT 1 FROM predictions p WHERE p.run_id = e.run_id AND p.split = e.split)
                  OR EXISTS (SELECT 1 FROM unit_predictions p WHERE p.run_id = e.run_id AND p.split = e.split)
                      AS has_predictions,
                  EXISTS (SELECT 1 FROM training_dynamics d WHERE d.run_id = e.run_id AND d.split = e.split)
                      AS has_dynamics,
                  EXISTS (SELECT 1 FROM unit_projections p WHERE p.run_id = e.run_id AND p.split = e.split)
                      AS has_unit_projections
           FROM examples e WHERE e.run_id = ? GROUP BY e.run_id, e.split ORDER BY e.split""",
        [run_id],
    )


def layouts(store: Store, run_id: str, split: str, checkpoint: str) -> pd.DataFrame:
    """Projections available for a checkpoint and split: method, layer, pooling."""
    return store.query(
        """SELECT DISTINCT method, layer, pooling FROM projections
           WHERE run_id = ? AND split = ? AND checkpoint = ? ORDER BY method DESC, layer DESC, pooling""",
        [run_id, split, checkpoint],
    )


def unit_layouts(store: Store, run_id: str, split: str, checkpoint: str) -> pd.DataFrame:
    """Layouts of units (a document's sentences) available for a checkpoint and split: method, layer."""
    return store.query(
        """SELECT DISTINCT method, layer FROM unit_projections
           WHERE run_id = ? AND split = ? AND checkpoint = ? ORDER BY method DESC, layer DESC""",
        [run_id, split, checkpoint],
    )


def extra_columns(store: Store, run_id: str, split: str) -> dict[str, str]:
    """The dataset's extra columns of a split and their JSON types (keys with odd characters are skipped)."""
    rows = store.query(
        """SELECT key, any_value(json_type(extra, '$."' || replace(key, '"', '\\"') || '"')) AS type
           FROM (SELECT extra, unnest(json_keys(extra)) AS key FROM examples
                 WHERE run_id = ? AND split = ? AND extra IS NOT NULL)
           GROUP BY key ORDER BY key""",
        [run_id, split],
    )
    return {key: kind for key, kind in zip(rows.key, rows.type) if _SAFE_KEY.match(key)}



@dataclass(frozen=True)
class TaskFrames:
    """How one task's rows in the store become the app's frames (the read side of the task seam)."""

    attributes: Callable[[Store, View, list[Attribute]], list[Attribute]]  # (store, view, extra attributes)
    frame_sql: Callable[[Store, View], tuple[str, list]]  # the unfiltered frame's SQL and parameters
    frame_order: Callable[[View], tuple[str, ...]]  # the frame's key columns, in sort order
    details: Callable[[Store, str, str, int, str | None], dict | None]  # one example (run, split, id, checkpoint)


def quote_identifier(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


# Names the example frame uses itself; an extra column with one of these names is called extra_<name>.
_RESERVED = {a.name for a in (*BASE_ATTRIBUTES, *PREDICTION_ATTRIBUTES, *DATA_MAP_ATTRIBUTES)} | {
    "example_id", "text", "x", "y", "label_id", "pred", "unit", "rouge1", "rouge2", "rougeL", "n_sentences",
    "sentences_lost", "lead3_rouge1", "oracle_rouge1", "position", "prob", "last_prediction", "last_correct"}
_NUMERIC_JSON = {"BIGINT", "UBIGINT", "DOUBLE"}


def extra_attributes(store: Store, view: View,
                     reserved: frozenset[str] = frozenset()) -> list[tuple[str, Attribute, str]]:
    """(JSON key, attribute, SQL type) of each extra column: the one place that names and types them. A column
    named like one of the frame's own (those every task uses, and a task's ``reserved``) is called extra_<name>."""
    found = []
    for key, kind in extra_columns(store, view.run_id, view.split).items():
        name = key if key not in _RESERVED and key not in reserved else f"extra_{key}"
        numeric = kind in _NUMERIC_JSON
        cast = "DOUBLE" if numeric else "BOOLEAN" if kind == "BOOLEAN" else "VARCHAR"
        found.append((key, Attribute(name, key, "continuous" if numeric else "categorical"), cast))
    return found


def example_layout(view: View) -> tuple[str, str, list, str]:
    """How an example frame places its examples: (the x, y SELECT items, the JOIN of the projection, its parameters,
    the WHERE condition). The Data Map's points are the CTE ``dm`` joined as ``d``; a projection's are joined as ``j``."""
    if view.layout == DATA_MAP:
        return "d.variability AS x, d.confidence AS y", "", [], "d.example_id IS NOT NULL"
    join = """JOIN projections j ON j.run_id = e.run_id AND j.split = e.split AND j.example_id = e.example_id
              AND j.checkpoint = ? AND j.method = ? AND j.layer = ? AND j.pooling = ?"""
    return "j.x, j.y", join, [view.checkpoint, view.layout, view.layer, view.pooling], "TRUE"


def extra_select(store: Store, view: View, reserved: frozenset[str] = frozenset()) -> tuple[str, list]:
    """SELECT items for the extra JSON columns, and their parameters (the JSON paths)."""
    extras = extra_attributes(store, view, reserved)
    items = [f"TRY_CAST(json_extract_string(e.extra, ?) AS {cast}) AS {quote_identifier(attribute.name)}"
             for _, attribute, cast in extras]
    return ", ".join(items), ['$."' + key + '"' for key, _, _ in extras]


