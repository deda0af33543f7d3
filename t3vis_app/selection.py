"""The selected example: reading clicks on charts and tables, and the panel that shows the example."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from t3vis import charts
from t3vis.markdown_text import escape_markdown as md
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


def picked_from_table(event, table: pd.DataFrame, key: str) -> int | None:
    """The example id of a newly selected table row, else None."""
    rows = selected(event, "rows")
    current = int(table.iloc[rows[0]].example_id) if rows and rows[0] < len(table) else None
    return current if state.newly_clicked(key, current) else None


def example_panel(ctx, split: str) -> None:
    """Text, label, prediction and class probabilities of the selected example."""
    example_id = state.get("example_id")
    st.subheader("Selected example")
    if example_id is None or state.get("split") != split:
        st.caption("Click a point or a table row to select an example; the other views follow the selection.")
        return
    details = data.example_details(ctx.store, ctx.path, ctx.stamp, ctx.run.run_id, split, int(example_id),
                                   ctx.checkpoint)
    if details is None:
        st.caption(f"Example {example_id} is not in the {md(split)} split of this run.")
        return
    label_names = list(details["label_names"])
    left, right = st.columns([3, 2])
    with left:
        st.markdown(f"**#{example_id}** · {md(split)} split · label **{md(details['label_name'])}**"
                    + (" · truncated" if details["truncated"] else ""))
        st.text(details["text"] + ("" if not details.get("text_pair") else "\n\n" + details["text_pair"]))
    with right:
        probs = details.get("probs")
        if probs is None or (isinstance(probs, float)):
            st.caption("No prediction at this checkpoint for this split.")
        else:
            predicted = label_names[int(details["pred"])]
            st.markdown(f"Prediction at **{md(ctx.checkpoint)}**: **{md(predicted)}** "
                        f"(loss {details['loss']:.3f})")
            st.altair_chart(charts.probability_chart(label_names, list(probs), gold=details["label_name"],
                                                     predicted=predicted),
                            width="stretch", height=28 * len(label_names) + 70)
