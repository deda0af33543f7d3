"""Altair chart specs built from DataFrames (no Streamlit here: the app only displays them).

The projection chart is a scatter plot of one point per example with:

- colour: hue with a legend for a categorical attribute, a saturation scale for a continuous one;
- a click selection named ``PICK`` over ``example_id`` (the app reads it to select the example);
- zoom and pan (a scale-bound interval named ``ZOOM``, which the app does not listen to);
- a ring around the selected example, drawn as a second layer.
"""

from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd

from t3vis.colour_scales import DARK_TEXT_SHARE, token_extent, token_scale
from t3vis.queries.explore import DATA_MAP, Attribute

PICK = "pick"
LARGE = 10_000  # above this many points, tooltips show a shorter text (the table and the panel show more)
TOOLTIP_TEXT_LARGE = 80
ZOOM = "zoom"
CATEGORY_SCHEME = "tableau10"
SATURATION_SCHEME = "blues"
SVG = {"embedOptions": {"renderer": "svg"}}  # small charts: crisp, and their marks are DOM elements

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
    """A large view as one image (:class:`t3vis.point_raster.Raster`) under a grid of transparent cells, as a
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
    cell) drawn by Vega, in the same colours (``legend``: :class:`t3vis.point_cloud.LegendEntry` in order)."""
    x_title, y_title = axis_titles(layout, layer)
    zero = layout == DATA_MAP
    return alt.Chart(dots).mark_circle(size=6 if binned or len(dots) > 10_000 else 12, opacity=0.8).encode(
        x=alt.X("x:Q", title=x_title, scale=alt.Scale(zero=zero)),
        y=alt.Y("y:Q", title=y_title, scale=alt.Scale(zero=zero)),
        color=alt.Color("colour:N", title=legend_title,
                        scale=alt.Scale(domain=[entry.label for entry in legend],
                                        range=[entry.colour for entry in legend])),
    ).properties(width=640, height=460, title=title)


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
    return alt.layer(bars, text).properties(height=24 * len(label_names) + 10, title=title, usermeta=SVG)


HEAD = "head"  # the click selection of the head grid, over (layer, head)


def _head_selection() -> alt.Parameter:
    return alt.selection_point(name=HEAD, fields=["layer", "head"], on="click")


def head_importance_chart(grid: pd.DataFrame, *, value_title: str, selected: tuple[int, int] | None = None,
                          pruned: frozenset = frozenset(), diverging: bool = False, title: str = "") -> alt.LayerChart:
    """Layers x heads grid: one cell per head, colour saturation = ``value``, the value printed in the cell.

    ``grid`` has columns layer, head, value. Pruned heads are crossed out; the selected head has
    a thick outline. With ``diverging`` (a difference of two checkpoints) the scale is red-blue around 0.
    """
    data = grid[["layer", "head", "value"]].copy()
    data["pruned"] = [(int(l), int(h)) in pruned for l, h in zip(data["layer"], data["head"])]
    data["label"] = [("✕ " if p else "") + f"{v:.2f}" for v, p in zip(data.value, data.pruned)]
    if diverging:
        extent = float(np.nanmax(np.abs(data.value))) if len(data) else 1.0
        scale = alt.Scale(scheme="redblue", domain=[-extent, extent], reverse=True)
    else:
        scale = alt.Scale(scheme="oranges", domain=[0, float(max(data.value.max(), 1e-12))] if len(data) else None)
    layer_axis = alt.Y("layer:O", title="layer", sort="ascending")
    head_axis = alt.X("head:O", title="head", axis=alt.Axis(orient="top"))
    cells = alt.Chart(data).mark_rect(stroke="white", strokeWidth=1).encode(
        x=head_axis, y=layer_axis,
        color=alt.Color("value:Q", title=value_title, scale=scale,
                        legend=alt.Legend(gradientLength=max(60, 30 * int(data["layer"].nunique()) - 30))),
        opacity=alt.condition("datum.pruned", alt.value(0.35), alt.value(1.0)),
        tooltip=["layer", "head", alt.Tooltip("value:Q", format=".4f", title=value_title), "pruned"],
    ).add_params(_head_selection())
    text = alt.Chart(data).mark_text(fontSize=10).encode(
        x=head_axis, y=layer_axis, text="label:N",
        color=alt.condition("datum.pruned", alt.value("#b71c1c"), alt.value("black")),
    )
    marked = pd.DataFrame([{"layer": selected[0], "head": selected[1]}] if selected else [], columns=["layer", "head"])
    outline = alt.Chart(marked).mark_rect(fill=None, stroke="black", strokeWidth=3).encode(x=head_axis, y=layer_axis)
    n_layers = int(data["layer"].nunique()) if len(data) else 1
    # (the page stretches the grid to its column; the width is what a figure gets: room for "0.00" in a cell)
    return alt.layer(cells, text, outline).properties(height=30 * n_layers, width=alt.Step(44), title=title,
                                                      usermeta=SVG)


def head_pattern_chart(patterns: pd.DataFrame, *, selected: tuple[int, int] | None = None,
                       pruned: frozenset = frozenset(), title: str = "") -> alt.FacetChart:
    """A small attention heatmap per head, faceted layers x heads.

    ``patterns`` is long: layer, head, query, key, weight (query/key are relative-position bins
    or token positions). Click a heatmap to select its head.
    """
    data = patterns.copy()
    data["status"] = ["pruned" if (int(l), int(h)) in pruned else
                      "selected" if selected == (int(l), int(h)) else "" for l, h in zip(data["layer"], data["head"])]
    cell = alt.Chart(data).mark_rect().encode(
        x=alt.X("key:O", axis=None), y=alt.Y("query:O", axis=None),
        color=alt.Color("weight:Q", title="attention", scale=alt.Scale(scheme="blues", domain=[0, 1], clamp=True)),
        opacity=alt.condition(alt.datum.status == "pruned", alt.value(0.2), alt.value(1.0)),
        tooltip=["layer", "head", "query", "key", alt.Tooltip("weight:Q", format=".3f")],
    ).add_params(_head_selection()).properties(width=46, height=46)
    return cell.facet(
        row=alt.Row("layer:O", title="layer", header=alt.Header(labelOrient="left")),
        column=alt.Column("head:O", title="head"),
        spacing=3,
    ).properties(title=title)


RASTER_ABOVE = 64  # tokens: larger attention matrices are drawn as one image, not size² rectangles
RASTER_SIDE = 640  # pixels a side of that image: above this many tokens, a pixel is a block of consecutive ones
QUERY = "query_token"  # the click selection of a rasterised attention matrix, over the query's index
_BLUES = np.array([[247, 251, 255], [198, 219, 239], [107, 174, 214], [33, 113, 181], [8, 48, 107]], dtype=float)


def _blues(values: np.ndarray) -> np.ndarray:
    """Weights in [0, 1] (any shape) -> RGB uint8 (shape + (3,)), the 'blues' scheme."""
    position = np.clip(values, 0, 1) * (len(_BLUES) - 1)
    low = np.floor(position).astype(int).clip(0, len(_BLUES) - 2)
    fraction = (position - low)[..., None]
    return np.round(_BLUES[low] * (1 - fraction) + _BLUES[low + 1] * fraction).astype(np.uint8)


def attention_image_url(attention: np.ndarray, *, largest: float) -> str:
    """A (T, T) attention matrix as a PNG data URL, one pixel per (query, key): 'blues' on a square-root
    scale from 0 to ``largest`` (most weights of a long input are tiny; a linear scale would show white)."""
    import base64
    import io

    from PIL import Image

    buffer = io.BytesIO()
    shade = np.sqrt(np.asarray(attention, dtype=float) / max(largest, 1e-12))
    Image.fromarray(_blues(shade)).save(buffer, format="PNG", optimize=False, compress_level=1)  # fast, a bit larger
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def pooled_attention(attention: np.ndarray, bins: int) -> np.ndarray:
    """A (T, T) attention matrix in (bins, bins) blocks of consecutive positions: each block row is the mean of
    its queries, each block column the sum of its keys, so rows still sum to 1. Unchanged when T <= bins."""
    size = attention.shape[0]
    if size <= bins:
        return attention
    edges = np.linspace(0, size, bins + 1).round().astype(int)
    rows = np.add.reduceat(attention, edges[:-1], axis=0) / np.diff(edges)[:, None]  # (bins, T)
    return np.add.reduceat(rows, edges[:-1], axis=1)  # (bins, bins)


def _top_keys(attention: np.ndarray, count: int) -> np.ndarray:
    """(T, count): each query's ``count`` most attended keys, most first (a partial sort: T x T stays cheap)."""
    count = min(count, attention.shape[1])
    if count == attention.shape[1]:
        return np.argsort(-attention, axis=1, kind="stable")
    candidates = np.argpartition(-attention, count - 1, axis=1)[:, :count]  # (T, count), unordered
    order = np.argsort(-np.take_along_axis(attention, candidates, axis=1), axis=1, kind="stable")
    return np.take_along_axis(candidates, order, axis=1)


def attention_raster_chart(tokens: list[str], attention: np.ndarray, *, title: str = "", side: int = RASTER_SIDE
                           ) -> alt.LayerChart:
    """A long example's attention matrix as one image scaled to ``side`` pixels: one pixel per query and key,
    or, above ``side`` tokens (a 2,048-token input), one pixel per block of consecutive queries and keys
    (:func:`pooled_attention`), so the image stays readable and light. One transparent band per pixel row
    gives hover (its query token, or above ``side`` tokens the block's tokens, with the keys attended most:
    by the token's row of the full matrix, or by the block's mean row) and click (selection ``QUERY`` over
    ``query_index``, a block's first token): at most ``side`` marks instead of T² rectangles."""
    size = len(tokens)
    attention = np.asarray(attention, dtype=float)
    shown = pooled_attention(attention, side)  # (≤ side, ≤ side)
    edges = np.linspace(0, size, len(shown) + 1).round().astype(int)  # the pixel rows' first tokens, and the end
    rows_of = attention if len(shown) == size else \
        np.add.reduceat(attention, edges[:-1], axis=0) / np.diff(edges)[:, None]  # (rows, T) a row or block's mean
    top = _top_keys(rows_of, 3)  # (rows, 3) the most attended keys of each pixel row
    queries = [f"{start}:{tokens[start]}" if end - start == 1 else
               f"{start}–{end - 1}: {' '.join(tokens[start:end])}"[:80] for start, end in zip(edges[:-1], edges[1:])]
    rows = pd.DataFrame({
        "query_index": edges[:-1], "y0": edges[:-1], "y1": edges[1:], "query": queries,
        "top_keys": [", ".join(f"{k}:{tokens[k]} {rows_of[row, k]:.2f}" for k in top[row]) for row in range(len(top))],
        "max_weight": rows_of.max(1),
    })
    largest = float(attention.max()) if attention.size else 1.0
    x = alt.X("x0:Q", scale=alt.Scale(domain=[0, size], nice=False), title="attends to (key position)")
    y = alt.Y("y0:Q", scale=alt.Scale(domain=[0, size], nice=False, reverse=True), title="token (query position)")
    image_largest = float(shown.max()) if shown.size else 1.0
    corners = pd.DataFrame({"url": [attention_image_url(shown, largest=image_largest)], "x0": [0], "x1": [size],
                            "y0": [0], "y1": [size]})
    image = alt.Chart(corners).mark_image(aspect=False, align="left", baseline="top").encode(
        x=x, x2="x1:Q", y=y, y2="y1:Q", url="url:N")
    pick = alt.selection_point(name=QUERY, fields=["query_index"], on="click")
    bands = alt.Chart(rows.assign(x0=0, x1=size)).mark_rect(opacity=0.001).encode(
        x=x, x2="x1:Q", y=y, y2="y1:Q",
        color=alt.Color("max_weight:Q", title="attention",
                        scale=alt.Scale(scheme="blues", type="sqrt", domain=[0, largest])),
        tooltip=[alt.Tooltip("query:N", title="query token"), alt.Tooltip("top_keys:N", title="attends most to")],
    ).add_params(pick)
    if len(shown) < size:
        title = f"{title} · {size} tokens in {len(shown)}×{len(shown)} blocks of ~{size / len(shown):.1f}".lstrip(" ·")
    properties = dict(usermeta=SVG) if size <= SVG_TOKENS else {}  # thousands of bands: a canvas draws them fast
    return alt.layer(image, bands).properties(width=side, height=side, title=title, **properties)


def attention_matrix_chart(tokens: list[str], attention: np.ndarray, *, title: str = "") -> alt.Chart:
    """One head's attention over the tokens of one example: rows = query tokens, columns = keys. Above
    ``RASTER_ABOVE`` tokens it is :func:`attention_raster_chart`."""
    size = len(tokens)
    if size > RASTER_ABOVE:
        return attention_raster_chart(tokens, attention, title=title)
    labels = [f"{index}:{token}" for index, token in enumerate(tokens)]
    query, key = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    data = pd.DataFrame({"query": np.array(labels)[query.ravel()], "key": np.array(labels)[key.ravel()],
                         "weight": attention.reshape(-1)})
    side = min(16 * size, 640)
    return alt.Chart(data).mark_rect().encode(
        x=alt.X("key:N", sort=labels, title="attends to (key)"),
        y=alt.Y("query:N", sort=labels, title="token (query)"),
        color=alt.Color("weight:Q", title="attention", scale=alt.Scale(scheme="blues", domain=[0, 1])),
        tooltip=["query", "key", alt.Tooltip("weight:Q", format=".3f")],
    ).properties(width=side, height=side, title=title)


TOKEN = "token"  # the click selection of the token view, over the token's index


SVG_TOKENS = 600  # longer texts are drawn on a canvas: thousands of SVG elements take seconds to lay out


def token_chart(layout: pd.DataFrame, values: np.ndarray, *, value_title: str, diverging: bool = True,
                selected_index: int | None = None, char_px: int = 9, line_px: int = 26, title: str = "") -> alt.LayerChart:
    """Tokens as blocks on wrapped lines, background colour = value (diverging around 0 for signed scores).

    ``layout`` comes from :func:`t3vis.analysis.token_view.layout_tokens`; ``values`` has one value per token.
    Click a token to select it (selection ``TOKEN`` over ``index``). Up to ``SVG_TOKENS`` tokens the chart is
    SVG (crisp, its marks DOM elements); a longer text is drawn on a canvas, which draws thousands of blocks
    at once (hover and click work the same).
    """
    data = layout.copy()
    data["value"] = np.asarray(values, dtype=float)
    data["x0"], data["x1"] = data.start * char_px, (data.start + data.width - 0.3) * char_px
    data["y0"], data["y1"] = data.line * line_px, data.line * line_px + line_px - 4
    data["xc"], data["yc"] = (data.x0 + data.x1) / 2, (data.y0 + data.y1) / 2
    extent = token_extent(data.value.to_numpy())
    domain, colours = token_scale(extent, diverging)
    scale = alt.Scale(domain=domain, range=list(colours), interpolate="rgb")
    data["dark"] = np.abs(data.value) > DARK_TEXT_SHARE * extent  # white text on strong colours
    width = int(max(data.x1.max(), 640)) if len(data) else 640  # room for the title on short texts
    height = int(data.y1.max() + 4) if len(data) else 30
    x = alt.X("x0:Q", axis=None, scale=None)  # positions are pixels: no scale to squeeze the lines together
    y = alt.Y("y0:Q", axis=None, scale=None)
    pick = alt.selection_point(name=TOKEN, fields=["index"], on="click")
    blocks = alt.Chart(data).mark_rect(cornerRadius=3).encode(
        x=x, x2="x1:Q", y=y, y2="y1:Q",
        color=alt.Color("value:Q", title=value_title, scale=scale,
                        legend=alt.Legend(orient="none", legendX=0, legendY=height + 10, direction="horizontal")),
        stroke=alt.condition(alt.datum.index == (-1 if selected_index is None else int(selected_index)),
                             alt.value("black"), alt.value(None)),
        strokeWidth=alt.value(2),
        tooltip=[alt.Tooltip("token:N"), alt.Tooltip("index:Q", title="position"),
                 alt.Tooltip("value:Q", title=value_title, format=".4f")],
    ).add_params(pick)
    text = alt.Chart(data).mark_text(fontSize=13, font="monospace").encode(
        color=alt.condition("datum.dark", alt.value("white"), alt.value("black")),
        x=alt.X("xc:Q", axis=None, scale=None), y=alt.Y("yc:Q", axis=None, scale=None),
        text="token:N",
    )
    properties = dict(usermeta=SVG) if len(data) <= SVG_TOKENS else {}
    return alt.layer(blocks, text).properties(width=width, height=height, title=title, **properties).configure_view(
        strokeWidth=0)


WORD = "word"  # the click selection of the tagged-sentence view, over the word's index


def tagged_words_chart(words: pd.DataFrame, *, selected_word: int | None = None, char_px: int = 9,
                       line_chars: int = 100, title: str = "") -> alt.LayerChart:
    """A sentence's words with the gold tag and the predicted tag under each: each tag's box is coloured by its
    entity type (so an entity spans its words), a wrong prediction is red and marked ✗.

    ``words``: columns unit, word, tag, predicted (None for words the model never saw). Click a word to select it
    (selection ``WORD`` over ``unit``).
    """
    rows, line, start = [], 0, 0
    for item in words.itertuples():
        width = max(len(str(item.word)), len(str(item.tag)), len(str(item.predicted or "—")) + 2, 2) + 1
        if start and start + width > line_chars:
            line, start = line + 1, 0
        predicted = item.predicted if isinstance(item.predicted, str) else None
        rows.append({"unit": int(item.unit), "word": str(item.word), "tag": str(item.tag),
                     "predicted": predicted or "—", "wrong": predicted is not None and predicted != item.tag,
                     "gold_type": _entity_type(item.tag), "predicted_type": _entity_type(predicted or "O"),
                     "line": line, "start": start, "width": width})
        start += width
    data = pd.DataFrame(rows)
    line_px, row_px, margin = 70, 21, 72  # the margin holds the row names
    data["x0"], data["x1"] = margin + data.start * char_px, margin + (data.start + data.width - 0.4) * char_px
    data["xc"] = (data.x0 + data.x1) / 2
    data["y_word"] = data.line * line_px
    data["y_gold"], data["y_pred"] = data.y_word + row_px, data.y_word + 2 * row_px
    data["shown_prediction"] = np.where(data.wrong, "✗ " + data.predicted, data.predicted)
    width = int(max(data.x1.max(), 640)) if len(data) else 640
    height = int(data.y_pred.max() + row_px + 4) if len(data) else 60
    types = sorted({t for t in (*data.gold_type, *data.predicted_type) if t != "O"})
    colour = alt.Scale(domain=["O", *types], range=["#f3f3f3", *_TYPE_COLOURS[: len(types)]])
    x, x2 = alt.X("x0:Q", axis=None, scale=None), alt.X2("x1:Q")
    pick = alt.selection_point(name=WORD, fields=["unit"], on="click")
    selected = -1 if selected_word is None else int(selected_word)
    tooltip = [alt.Tooltip("word:N"), alt.Tooltip("unit:Q", title="word"), alt.Tooltip("tag:N", title="gold"),
               alt.Tooltip("predicted:N", title="predicted")]

    for name in ("y_word", "y_gold", "y_pred"):
        data[f"{name}_end"] = data[name] + row_px - 3
        data[f"{name}_mid"] = data[name] + (row_px - 3) / 2

    def boxes(y: str, kind: str, legend: bool) -> alt.Chart:
        return alt.Chart(data).mark_rect(cornerRadius=3).encode(
            x=x, x2=x2, y=alt.Y(f"{y}:Q", axis=None, scale=None), y2=alt.Y2(f"{y}_end:Q"),
            color=alt.Color(f"{kind}:N", scale=colour, title="entity type",
                            legend=alt.Legend(orient="right") if legend else None),
            tooltip=tooltip)

    word_boxes = alt.Chart(data).mark_rect(cornerRadius=3, fill="white").encode(
        x=x, x2=x2, y=alt.Y("y_word:Q", axis=None, scale=None), y2=alt.Y2("y_word_end:Q"),
        stroke=alt.condition(alt.datum.unit == selected, alt.value("black"), alt.value("#bbbbbb")),
        strokeWidth=alt.condition(alt.datum.unit == selected, alt.value(2.5), alt.value(0.6)),
        tooltip=tooltip)
    # The click target: a transparent box over the word and its two tags, on top of the texts.
    targets = alt.Chart(data).mark_rect(opacity=0).encode(
        x=x, x2=x2, y=alt.Y("y_word:Q", axis=None, scale=None), y2=alt.Y2("y_pred_end:Q"),
        tooltip=tooltip).add_params(pick)

    def texts(y: str, field: str, **style) -> alt.Chart:
        return alt.Chart(data).mark_text(**style).encode(
            x=alt.X("xc:Q", axis=None, scale=None), y=alt.Y(f"{y}_mid:Q", axis=None, scale=None), text=f"{field}:N",
            tooltip=tooltip)

    word_text = texts("y_word", "word", fontSize=13, fontWeight="bold")
    gold_text = texts("y_gold", "tag", fontSize=11)
    predicted_text = alt.Chart(data).mark_text(fontSize=11).encode(
        x=alt.X("xc:Q", axis=None, scale=None), y=alt.Y("y_pred_mid:Q", axis=None, scale=None),
        text="shown_prediction:N", color=alt.condition("datum.wrong", alt.value("#c0392b"), alt.value("black")),
        tooltip=tooltip)
    names = pd.DataFrame({"name": ["word", "gold", "predicted"] * (int(data.line.max()) + 1 if len(data) else 1),
                          "line": np.repeat(np.arange(int(data.line.max()) + 1 if len(data) else 1), 3)})
    names["y"] = names.line * line_px + np.tile([0, row_px, 2 * row_px], len(names) // 3) + (row_px - 3) / 2
    row_names = alt.Chart(names).mark_text(align="left", fontSize=11, color="#777777").encode(
        x=alt.value(0), y=alt.Y("y:Q", axis=None, scale=None), text="name:N")
    return alt.layer(
        word_boxes, boxes("y_gold", "gold_type", True), boxes("y_pred", "predicted_type", False),
        word_text, gold_text, predicted_text, row_names, targets,
    ).properties(width=width, height=height, title=title, usermeta=SVG).configure_view(strokeWidth=0)


_TYPE_COLOURS = ["#aec7e8", "#ffbb78", "#98df8a", "#c5b0d5", "#f7b6d2", "#c49c94", "#dbdb8d", "#9edae5"]


def _entity_type(tag: str) -> str:
    return tag[2:] if tag[:2] in ("B-", "I-", "E-", "S-") and len(tag) > 2 else "O"


def confusion_chart(confusion: pd.DataFrame, *, tags: list[str], value: str = "count",
                    title: str = "") -> alt.LayerChart:
    """The tag confusion matrix: gold tags as rows, predicted tags as columns, in ``tags`` order (every tag, so
    an empty row or column shows), colour and text = ``value`` (``count`` or ``rate``). Click a cell to select it
    (selection ``CELL`` over gold and predicted)."""
    order = list(tags) + [tag for tag in dict.fromkeys(confusion.gold.tolist() + confusion.predicted.tolist())
                          if tag not in tags]
    confusion = confusion.copy()
    # White text where the cell is dark: the colour scale is sqrt for counts, linear for rates.
    shade = (np.sqrt(confusion["count"] / max(int(confusion["count"].max()), 1)) if value == "count"
             else confusion["rate"] / max(float(confusion["rate"].max()), 1e-12))
    confusion["dark"] = shade > 0.6
    pick = alt.selection_point(name=CELL, fields=["gold", "predicted"], on="click")
    base = alt.Chart(confusion).encode(
        x=alt.X("predicted:N", scale=alt.Scale(domain=order), title="predicted tag",
                axis=alt.Axis(labelAngle=-45, orient="top")),
        y=alt.Y("gold:N", scale=alt.Scale(domain=order), title="gold tag"),
        tooltip=[alt.Tooltip("gold:N"), alt.Tooltip("predicted:N"), alt.Tooltip("count:Q"),
                 alt.Tooltip("rate:Q", format=".1%", title="rate (of the gold tag's words)")])
    cells = base.mark_rect(stroke="white").encode(
        color=alt.Color(f"{value}:Q", scale=alt.Scale(scheme="blues", type="sqrt" if value == "count" else "linear"),
                        title="words" if value == "count" else "rate"),
        opacity=alt.condition(pick, alt.value(1.0), alt.value(0.55)))
    labels = base.mark_text(fontSize=11).encode(
        text=alt.Text(f"{value}:Q", format="d" if value == "count" else ".0%"),
        color=alt.condition("datum.dark", alt.value("white"), alt.value("black")))
    # The click target sits on top, transparent: a click on a cell's number selects the cell too.
    targets = base.mark_rect(opacity=0).add_params(pick)
    return alt.layer(cells, labels, targets).properties(width=alt.Step(44), height=alt.Step(28), title=title,
                                                        usermeta=SVG)


CELL = "cell"  # the click selection of the confusion matrix, over the gold and predicted tags


def _training_axis(x_title: str) -> alt.X:
    """Epochs and steps are whole numbers: ticks at whole numbers only (not 1.5, 2.5)."""
    return alt.X("x:Q", title=x_title, axis=alt.Axis(tickMinStep=1, format="d"))


def learning_curve_chart(curves: pd.DataFrame, metric: str, *, x_title: str) -> alt.Chart:
    """One metric ("accuracy" or "loss") over training, one line per source (training passes, each split)."""
    return alt.Chart(curves).mark_line(point=True).encode(
        x=_training_axis(x_title), y=alt.Y(f"{metric}:Q", title=metric),
        color=alt.Color("source:N", title=None, scale=alt.Scale(scheme=CATEGORY_SCHEME)),
        tooltip=["source", "checkpoint", "x", alt.Tooltip(metric, format=".4f")],
    ).properties(title=f"{metric.capitalize()} over training", height=260)


def per_class_accuracy_chart(per_class: pd.DataFrame, *, x_title: str, split: str) -> alt.Chart:
    """Accuracy of each gold label over the checkpoints."""
    return alt.Chart(per_class).mark_line(point=True).encode(
        x=_training_axis(x_title), y=alt.Y("accuracy:Q", title="accuracy", scale=alt.Scale(domain=[0, 1])),
        color=alt.Color("label:N", title="gold label", scale=alt.Scale(scheme=CATEGORY_SCHEME)),
        tooltip=["checkpoint", "label", "n", alt.Tooltip("accuracy", format=".3f")],
    ).properties(title=f"Per-class accuracy on the {split} split", height=280)


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
