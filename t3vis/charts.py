"""Altair chart specs built from DataFrames (no Streamlit here: the app only displays them).

The projection chart is a scatter plot of one point per example with:

- colour: hue with a legend for a categorical attribute, a saturation scale for a continuous one;
- a click selection named ``PICK`` over ``example_id`` (the app reads it to select the example);
- zoom and pan (a scale-bound interval named ``ZOOM``, which the app does not listen to);
- a ring around the selected example, drawn as a second layer.
"""

from __future__ import annotations

import altair as alt
import pandas as pd

from t3vis.explore import DATA_MAP, Attribute

PICK = "pick"
ZOOM = "zoom"
CATEGORY_SCHEME = "tableau10"
SATURATION_SCHEME = "blues"

# A large inline dataset is shipped by Streamlit as Arrow; Altair's own row limit does not apply.
alt.data_transformers.disable_max_rows()


def point_size(n_points: int) -> int:
    """Smaller points for larger sets, so that dense regions stay readable."""
    if n_points <= 1_000:
        return 60
    if n_points <= 10_000:
        return 25
    return 8


def _color(attribute: Attribute, frame: pd.DataFrame) -> alt.Color:
    if attribute.kind == "continuous":
        return alt.Color(f"{attribute.name}:Q", title=attribute.label,
                         scale=alt.Scale(scheme=SATURATION_SCHEME), legend=alt.Legend(orient="right"))
    domain = sorted({str(value) for value in frame[attribute.name].dropna()})
    return alt.Color(f"{attribute.name}:N", title=attribute.label,
                     scale=alt.Scale(scheme=CATEGORY_SCHEME, domain=domain), legend=alt.Legend(orient="right"))


def _tooltip(frame: pd.DataFrame) -> list[alt.Tooltip]:
    fields = [("example_id", "id"), ("text", "text"), ("label", "label"), ("prediction", "prediction"),
              ("loss", "loss"), ("region", "region")]
    return [alt.Tooltip(name, title=title, format=".3f" if name == "loss" else "")
            for name, title in fields if name in frame.columns and frame[name].notna().any()]


def axis_titles(layout: str, layer: int | None) -> tuple[str, str]:
    if layout == DATA_MAP:
        return "variability (std of gold-label probability)", "confidence (mean gold-label probability)"
    name = {"tsne": "t-SNE", "pca": "PCA"}.get(layout, layout)
    where = "embeddings" if layer == 0 else f"layer {layer}"
    return f"{name} 1 ({where})", f"{name} 2 ({where})"


def projection_chart(
    frame: pd.DataFrame,
    *,
    color: Attribute,
    layout: str,
    layer: int | None = None,
    selected_id: int | None = None,
    title: str = "",
    height: int = 460,
    svg: bool = False,
) -> alt.LayerChart:
    """Scatter plot of the example frame (columns example_id, x, y, and the colour attribute)."""
    x_title, y_title = axis_titles(layout, layer)
    columns = ["example_id", "x", "y", color.name] + [c for c in ("text", "label", "prediction", "loss", "region")
                                                       if c in frame.columns and c != color.name]
    data = frame[columns].copy()
    if color.kind == "categorical":
        data[color.name] = data[color.name].astype("string")
    scale_x = alt.Scale(domain=[0, 0.5]) if layout == DATA_MAP else alt.Scale(zero=False)
    scale_y = alt.Scale(domain=[0, 1]) if layout == DATA_MAP else alt.Scale(zero=False)
    pick = alt.selection_point(name=PICK, fields=["example_id"], on="click")
    zoom = alt.selection_interval(name=ZOOM, bind="scales")
    base = alt.Chart(data)
    points = base.mark_circle(size=point_size(len(data)), opacity=0.75).encode(
        x=alt.X("x:Q", title=x_title, scale=scale_x),
        y=alt.Y("y:Q", title=y_title, scale=scale_y),
        color=_color(color, data),
        tooltip=_tooltip(data),
    ).add_params(pick, zoom)
    ring = base.transform_filter(alt.datum.example_id == (-1 if selected_id is None else int(selected_id))).mark_point(
        size=400, filled=False, color="black", strokeWidth=3
    ).encode(x="x:Q", y="y:Q")
    chart = alt.layer(points, ring).properties(height=height, title=title)
    if svg:
        chart = chart.properties(usermeta={"embedOptions": {"renderer": "svg"}})
    return chart


def probability_chart(label_names: list[str], probs: list[float], *, gold: str | None = None,
                      predicted: str | None = None, title: str = "") -> alt.Chart:
    """Horizontal bars of class probabilities, one row per label, gold and predicted labels marked."""
    data = pd.DataFrame({"label": label_names, "probability": [float(p) for p in probs]})
    data["role"] = [
        "gold & predicted" if name == gold and name == predicted else
        "gold" if name == gold else "predicted" if name == predicted else "other"
        for name in label_names
    ]
    roles = ["gold & predicted", "gold", "predicted", "other"]
    colours = ["#2e7d32", "#1565c0", "#c62828", "#9e9e9e"]
    bars = alt.Chart(data).mark_bar().encode(
        x=alt.X("probability:Q", scale=alt.Scale(domain=[0, 1]), title="probability"),
        y=alt.Y("label:N", sort=label_names, title=None),
        color=alt.Color("role:N", scale=alt.Scale(domain=roles, range=colours), legend=alt.Legend(title=None)),
        tooltip=["label", alt.Tooltip("probability:Q", format=".3f"), "role"],
    )
    text = bars.mark_text(align="left", dx=3).encode(text=alt.Text("probability:Q", format=".3f"),
                                                    color=alt.value("black"))
    return alt.layer(bars, text).properties(height=24 * len(label_names) + 10, title=title)
