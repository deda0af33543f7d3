"""The Training page's curves over checkpoints, and the SQL console's automatic chart of a result."""

from __future__ import annotations

import altair as alt
import pandas as pd

from t3vis.charts.style import CATEGORY_SCHEME


def _training_axis(x_title: str) -> alt.X:
    """Epochs and steps are whole numbers: ticks at whole numbers only (not 1.5, 2.5)."""
    return alt.X("x:Q", title=x_title, axis=alt.Axis(tickMinStep=1, format="d"))


# Legends under the plot, in columns, with whole names: a legend beside a short plot is cut after a few entries,
# and a long name ("validation (evaluation, with dropout off)") is cut at Vega's default label limit.
BOTTOM_LEGEND = dict(orient="bottom", direction="horizontal", columns=4, labelLimit=0, columnPadding=12)


def _with_legend_rows(plot_height: int, n_entries: int) -> int:
    """The chart's height for a plot of ``plot_height`` pixels with its bottom legend (the app fits the whole chart,
    legend included, into the height the spec gives)."""
    return plot_height + 60 + 26 * -(-max(n_entries, 1) // BOTTOM_LEGEND["columns"])


def learning_curve_chart(curves: pd.DataFrame, metric: str, *, x_title: str) -> alt.Chart:
    """One metric ("accuracy" or "loss") over training, one line per source (training passes, each split)."""
    return alt.Chart(curves).mark_line(point=True).encode(
        x=_training_axis(x_title), y=alt.Y(f"{metric}:Q", title=metric),
        color=alt.Color("source:N", title=None, scale=alt.Scale(scheme=CATEGORY_SCHEME),
                        legend=alt.Legend(**BOTTOM_LEGEND)),
        tooltip=["source", "checkpoint", "x", alt.Tooltip(metric, format=".4f")],
    ).properties(title=f"{metric.capitalize()} over training",
                 height=_with_legend_rows(220, curves["source"].nunique() if len(curves) else 1))


def per_class_accuracy_chart(per_class: pd.DataFrame, *, x_title: str, split: str) -> alt.Chart:
    """Accuracy of each gold label over the checkpoints."""
    return alt.Chart(per_class).mark_line(point=True).encode(
        x=_training_axis(x_title), y=alt.Y("accuracy:Q", title="accuracy", scale=alt.Scale(domain=[0, 1])),
        color=alt.Color("label:N", title="gold label", scale=alt.Scale(scheme=CATEGORY_SCHEME),
                        legend=alt.Legend(**BOTTOM_LEGEND)),
        tooltip=["checkpoint", "label", "n", alt.Tooltip("accuracy", format=".3f")],
    ).properties(title=f"Per-class accuracy on the {split} split",
                 height=_with_legend_rows(240, per_class["label"].nunique() if len(per_class) else 1))


def auto_chart(frame: pd.DataFrame) -> alt.Chart | None:
    """A chart for a query result when its shape suggests one: two numbers (scatter), or a category and a
    number (bars); None otherwise. Uses the first suitable columns."""
    if frame.empty or len(frame) > 50_000:
        return None
    numbers = [c for c in frame.columns if pd.api.types.is_numeric_dtype(frame[c])
               and not pd.api.types.is_bool_dtype(frame[c])]
    categories = [c for c in frame.columns if c not in numbers and frame[c].map(lambda v: isinstance(v, str)).all()]
    if categories and numbers:
        category, number = categories[0], numbers[-1]
        return alt.Chart(frame).mark_bar().encode(
            x=alt.X(f"{number}:Q", title=number), y=alt.Y(f"{category}:N", title=category, sort="-x"),
            tooltip=[category, number]).properties(title=f"{number} by {category}")
    if len(numbers) >= 2:
        x, y = numbers[0], numbers[1]
        return alt.Chart(frame).mark_circle(size=40).encode(
            x=alt.X(f"{x}:Q", title=x), y=alt.Y(f"{y}:Q", title=y), tooltip=list(frame.columns[:6])
        ).properties(title=f"{y} against {x}")
    return None
