"""The head view's charts: the layers x heads grid (importance, patterns) and one head's attention matrix."""

from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd

from t3vis.charts.instance import SVG_TOKENS
from t3vis.charts.style import SVG

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
                        # title, gradient and its end labels within the grid's height: nothing is cut
                        legend=alt.Legend(gradientLength=max(36, 30 * int(data["layer"].nunique()) - 44),
                                          gradientThickness=12, titlePadding=6)),
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
