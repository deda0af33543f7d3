"""The selected example: reading clicks on charts and tables, and the panel that shows the example."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from t3vis import charts
from t3vis_app import data, state


def selected(event, name: str) -> list:
    """What a chart (``name``: its selection parameter) or table (``name="rows"``) reports as selected."""
    return (event or {}).get("selection", {}).get(name, []) if event else []


def picked_from_chart(event, key: str) -> int | None:
    """The example id newly clicked on a projection chart, else None."""
    points = selected(event, charts.PICK)
    current = None
    if points:
        value = points[0].get("example_id")
        current = None if value is None else int(value)
    return current if state.newly_clicked(key, current) else None


def picked_from_cloud(event, key: str) -> int | None:
    """The example id newly clicked on a WebGL point cloud (a point, or a binned cell's first example)."""
    objects = selected(event, "objects")
    current = None
    for layer_objects in (objects.values() if isinstance(objects, dict) else []):
        for picked in layer_objects:
            if isinstance(picked, dict) and picked.get("i") is not None:
                current = int(picked["i"])
                break
    return current if state.newly_clicked(key, current) else None


def picked_from_table(event, table: pd.DataFrame, key: str) -> int | None:
    """The example id of a newly selected table row, else None."""
    rows = selected(event, "rows")
    current = int(table.iloc[rows[0]].example_id) if rows and rows[0] < len(table) else None
    return current if state.newly_clicked(key, current) else None


def selected_details(ctx) -> tuple[str | None, int | None, dict | None]:
    """(split, example_id, details) of the selected example; details is None when none is selected or the
    run has no such example."""
    split, example_id = state.selected_example()
    if split is None or example_id is None:
        return split, example_id, None
    return split, example_id, data.example_details(ctx.store, ctx.run.run_id, split, example_id, ctx.checkpoint)


def probability_bars(names: list[str], probs, *, gold: str, predicted: str, figure: tuple[str, str] | None = None,
                     key: str = "probabilities") -> None:
    """The class probabilities as a bar chart, sized to the number of classes; ``figure`` = (file name, caption)
    adds its export buttons."""
    chart = charts.probability_chart(names, list(probs), gold=gold, predicted=predicted)
    st.altair_chart(chart, width="stretch", height=28 * len(names) + 70)
    if figure is not None:
        from t3vis_app.figure_downloads import figure_buttons

        figure_buttons(chart, name=figure[0], caption=figure[1], key=f"figure.{key}")
