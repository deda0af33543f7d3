"""One example's charts: its class probabilities and its tokens coloured by saliency or attention."""

from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd

from t3vis.charts.colour_scales import DARK_TEXT_SHARE, token_extent, token_scale
from t3vis.charts.style import SVG


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
