"""The projection chart: one point per example, coloured by an attribute, clickable, zoomable.

- colour: hue with a legend for a categorical attribute, a saturation scale for a continuous one;
- a click selection named ``PICK`` over ``example_id`` (the app reads it to select the example);
- zoom and pan (a scale-bound interval named ``ZOOM``, which the app does not listen to);
- a ring around the selected example, drawn as a second layer.

A large view's spec (``raster_projection_spec``) shows a picture of its points (t3vis.charts.point_raster) under
a grid of hover cells; a WebGL view's figure is drawn from its dots (``point_cloud_figure_chart``).
"""

from __future__ import annotations

import altair as alt
import pandas as pd

from t3vis.charts.style import CATEGORY_SCHEME, SATURATION_SCHEME, SVG
from t3vis.queries.explore import DATA_MAP, Attribute

PICK = "pick"
LARGE = 10_000  # above this many points, tooltips show a shorter text (the table and the panel show more)
TOOLTIP_TEXT_LARGE = 80
ZOOM = "zoom"



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
    domain = sorted(frame[attribute.name].dropna().astype(str).unique())
    return alt.Color(f"{attribute.name}:N", title=attribute.label,
                     scale=alt.Scale(scheme=CATEGORY_SCHEME, domain=domain), legend=alt.Legend(orient="right"))


def _tooltip(frame: pd.DataFrame) -> list[alt.Tooltip]:
    fields = [("example_id", "id"), ("unit", "sentence"), ("text", "text"), ("label", "label"),
              ("prediction", "prediction"), ("loss", "loss"), ("rouge1", "ROUGE-1"), ("region", "region")]
    return [alt.Tooltip(name, title=title, format=".3f" if name in ("loss", "rouge1") else "")
            for name, title in fields if name in frame.columns and frame[name].notna().any()]


def axis_titles(layout: str, layer: int | None) -> tuple[str, str]:
    if layout == DATA_MAP:
        # "gold probability": of the gold label, or (generation) the geometric mean of the gold completion tokens'
        return "variability (std of the gold probability)", "confidence (mean gold probability)"
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
    columns = ["example_id", "x", "y", color.name] + [c for c in ("unit", "text", "label", "prediction", "loss",
                                                                  "rouge1", "region")
                                                       if c in frame.columns and c != color.name]
    data = frame[columns].copy()
    if "text" in data and len(data) > LARGE:  # fewer bytes for the browser to parse; the table has more
        data["text"] = data["text"].str.slice(0, TOOLTIP_TEXT_LARGE)
    if color.kind == "categorical":
        data[color.name] = data[color.name].astype("string")
    scale_x = alt.Scale(domain=[0, 0.5]) if layout == DATA_MAP else alt.Scale(zero=False)
    scale_y = alt.Scale(domain=[0, 1]) if layout == DATA_MAP else alt.Scale(zero=False)
    pick = alt.selection_point(name=PICK, fields=["example_id"], on="click")
    zoom = alt.selection_interval(name=ZOOM, bind="scales")
    points = alt.Chart(data).mark_circle(size=point_size(len(data)), opacity=0.75).encode(
        x=alt.X("x:Q", title=x_title, scale=scale_x),
        y=alt.Y("y:Q", title=y_title, scale=scale_y),
        color=_color(color, data),
        tooltip=_tooltip(data),
    ).add_params(pick, zoom)
    # The ring has its own one-row dataset: filtering the full set again would double the browser's work.
    chosen = data.loc[data.example_id == selected_id, ["example_id", "x", "y"]] if selected_id is not None else \
        data.iloc[:0][["example_id", "x", "y"]]
    ring = alt.Chart(chosen).mark_point(size=400, filled=False, color="black", strokeWidth=3).encode(x="x:Q", y="y:Q")
    chart = alt.layer(points, ring).properties(height=height, title=title)
    if svg:
        chart = chart.properties(usermeta=SVG)
    return chart


BOX = "box"  # the drag selection of a rasterised projection (the app zooms to it)
HOVER = "hover"


def raster_projection_spec(raster, *, layout: str, layer: int | None, selected: pd.DataFrame | None = None,
                           title: str = "", zoomable: bool = True, interactive: bool = True) -> dict:
    """A large view as one image (:class:`t3vis.charts.point_raster.Raster`) under a grid of transparent cells, as a
    Vega-Lite spec (for ``st.vega_lite_chart``: written directly, as Altair's validation of a layered chart
    costs a few hundred milliseconds per run). Hover a cell for its count, colour and nearest example (its
    outline shows), click it to select that example (selection ``PICK`` over ``example_id``); with
    ``zoomable``, drag a box to zoom (selection ``BOX`` over the cells' ``x0`` and ``y0``). The selected
    example (``selected``: its x and y, one row or none) gets a ring, as on the scatter plot. ``interactive``
    False: the same chart with no cells yet (nothing to hover, click or zoom), which a fresh browser draws sooner;
    the next run's cells then only change the chart's data (t3vis_app/deferred.py)."""
    x_title, y_title = axis_titles(layout, layer)
    x0, x1, y0, y1 = raster.box
    x_scale = {"domain": [x0, x1], "nice": False, "zero": False}
    y_scale = {"domain": [y0, y1], "nice": False, "zero": False}
    x = {"field": "x0", "type": "quantitative", "title": x_title, "scale": x_scale}
    y = {"field": "y0", "type": "quantitative", "title": y_title, "scale": y_scale}
    cells = raster.cells
    continuous = cells.share.isna().all()
    shown = pd.DataFrame({
        "x0": cells.x0, "x1": cells.x1, "y0": cells.y0, "y1": cells.y1, "n": cells.n,
        "example_id": cells.example_id,
        "colour": cells.colour + ("" if continuous else cells.share.map(lambda share: f" ({share:.0%})")),
        "nearest": cells.example_id.astype(str) + " · " + cells.label
        + cells.prediction.map(lambda predicted: f" → {predicted}" if predicted else ""),
        "text": cells.text,
    })
    summary = f"mean {raster.legend_title}" if continuous else f"most common {raster.legend_title}"
    tooltip = [{"field": "n", "type": "quantitative", "title": "points in this cell", "format": ","},
               {"field": "colour", "type": "nominal", "title": summary},
               {"field": "nearest", "type": "nominal", "title": "nearest (click selects)"}]
    if (shown.text != "").any():
        tooltip.append({"field": "text", "type": "nominal", "title": "its text"})
    params = [{"name": HOVER, "select": {"type": "point", "on": "pointerover", "clear": "pointerout",
                                          "fields": ["x0", "y0"]}},
              {"name": PICK, "select": {"type": "point", "on": "click", "fields": ["example_id"]}}]
    if zoomable:
        params.append({"name": BOX, "select": {"type": "interval", "encodings": ["x", "y"]}})
    selected = pd.DataFrame({"x": [], "y": []}) if selected is None else selected
    ring = pd.DataFrame({"x0": selected.x.astype(float), "y0": selected.y.astype(float)})
    return {
        "width": raster.width, "height": raster.height, "title": title,
        "usermeta": {"embedOptions": {"renderer": "canvas"}},
        "datasets": {"image": pd.DataFrame({"url": [raster.image_url], "x0": [x0], "x1": [x1], "y0": [y0],
                                            "y1": [y1]}),
                     "cells": shown if interactive else shown.iloc[:0], "selected": ring},
        "layer": [
            {"data": {"name": "image"}, "mark": {"type": "image", "aspect": False, "align": "left",
                                                 "baseline": "top"},
             "encoding": {"x": x, "x2": {"field": "x1"}, "y": {**y, "field": "y1"}, "y2": {"field": "y0"},
                          "url": {"field": "url", "type": "nominal"}}},
            {"data": {"name": "cells"}, "params": params,
             "mark": {"type": "rect", "fill": "black", "fillOpacity": 0.001, "stroke": "black"},
             "encoding": {"x": x, "x2": {"field": "x1"}, "y": y, "y2": {"field": "y1"}, "tooltip": tooltip,
                          "strokeOpacity": {"condition": {"param": HOVER, "empty": False, "value": 0.9},
                                            "value": 0}}},
            {"data": {"name": "selected"}, "mark": {"type": "point", "size": 400, "filled": False,
                                                    "color": "black", "strokeWidth": 3},
             "encoding": {"x": x, "y": y}},
        ],
    }


def point_cloud_figure_chart(dots: pd.DataFrame, legend, *, legend_title: str, layout: str, layer: int | None,
                             title: str = "", binned: bool = False) -> alt.Chart:
    """A large view as a publication figure: the WebGL chart's dots (every point, or one per occupied grid
    cell) drawn by Vega, in the same colours (``legend``: :class:`t3vis.charts.point_cloud.LegendEntry` in order)."""
    x_title, y_title = axis_titles(layout, layer)
    zero = layout == DATA_MAP
    return alt.Chart(dots).mark_circle(size=6 if binned or len(dots) > 10_000 else 12, opacity=0.8).encode(
        x=alt.X("x:Q", title=x_title, scale=alt.Scale(zero=zero)),
        y=alt.Y("y:Q", title=y_title, scale=alt.Scale(zero=zero)),
        color=alt.Color("colour:N", title=legend_title,
                        scale=alt.Scale(domain=[entry.label for entry in legend],
                                        range=[entry.colour for entry in legend])),
    ).properties(width=640, height=460, title=title)
