"""The generation task's charts: a completion's tokens coloured by their probability (or its change), and how
pruning changed each token's probability."""

from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd

from t3vis.charts.style import SVG

COMPLETION = "completion"  # the click selection of a completion's tokens, over the token's index
PROBABILITY_COLOURS = ("#d73027", "#fc8d59", "#fee08b", "#d9ef8b", "#91cf60", "#1a9850")  # RdYlGn: 0 → 1
CHANGE_COLOURS = ("#b2182b", "#ef8a62", "#f7f7f7", "#67a9cf", "#2166ac")  # RdBu: lower → same → higher


def completion_chart(layout: pd.DataFrame, values: np.ndarray, *, change: bool = False,
                     selected_index: int | None = None, hover: pd.DataFrame | None = None, char_px: int = 9,
                     line_px: int = 26, title: str = "") -> alt.LayerChart:
    """A completion's tokens as blocks on wrapped lines, coloured by each token's probability (red 0, yellow 0.5,
    green 1) or, with ``change``, by a difference of probabilities (red lower, white unchanged, blue higher).

    ``layout`` comes from :func:`t3vis.analysis.token_view.layout_tokens` (C tokens); ``values`` (C,), NaN where
    unknown (drawn as 0, "—" in the tooltip); ``hover``: extra columns shown in the tooltip (C rows, e.g. rank and
    the predicted token). Click a token to select it (selection ``COMPLETION`` over ``index``); the selected one is
    outlined.
    """
    data = layout.reset_index(drop=True).copy()
    values = np.asarray(values, dtype=float)
    data["value"] = np.nan_to_num(values, nan=0.0)  # Vega drops marks with no value
    data["shown"] = [f"{value:{'+.3f' if change else '.3f'}}" if np.isfinite(value) else "—" for value in values]
    extra = [] if hover is None else list(hover.columns)
    for number, column in enumerate(extra):  # any name as a title: a field name with a quote breaks Vega's paths
        data[f"hover{number}"] = hover[column].to_numpy()
    data["x0"], data["x1"] = data.start * char_px, (data.start + data.width - 0.3) * char_px
    data["y0"], data["y1"] = data.line * line_px, data.line * line_px + line_px - 4
    data["xc"], data["yc"] = (data.x0 + data.x1) / 2, (data.y0 + data.y1) / 2
    if change:
        extent = float(np.nanmax(np.abs(data.value))) if data.value.notna().any() else 0.0
        extent = max(extent, 0.05)  # a tiny change stays pale
        domain = [float(v) for v in np.linspace(-extent, extent, len(CHANGE_COLOURS))]
        scale, value_title = alt.Scale(domain=domain, range=list(CHANGE_COLOURS)), "change in probability"
        data["dark"] = data.value.abs() > 0.6 * extent
    else:
        domain = [float(v) for v in np.linspace(0, 1, len(PROBABILITY_COLOURS))]
        scale, value_title = alt.Scale(domain=domain, range=list(PROBABILITY_COLOURS)), "probability"
        data["dark"] = (data.value < 0.12) | (data.value > 0.88)
    width = int(max(data.x1.max(), 640)) if len(data) else 640
    height = int(data.y1.max() + 4) if len(data) else 30
    x, y = alt.X("x0:Q", axis=None, scale=None), alt.Y("y0:Q", axis=None, scale=None)
    pick = alt.selection_point(name=COMPLETION, fields=["index"], on="click")
    tooltip = [alt.Tooltip("token:N"), alt.Tooltip("index:Q", title="completion token"),
               alt.Tooltip("shown:N", title=value_title)] + [
        alt.Tooltip(f"hover{number}:N", title=str(column)) for number, column in enumerate(extra)]
    blocks = alt.Chart(data).mark_rect(cornerRadius=3).encode(
        x=x, x2="x1:Q", y=y, y2="y1:Q",
        color=alt.Color("value:Q", title=value_title, scale=scale,
                        legend=alt.Legend(orient="none", legendX=0, legendY=height + 10, direction="horizontal")),
        stroke=alt.condition(alt.datum.index == (-1 if selected_index is None else int(selected_index)),
                             alt.value("black"), alt.value(None)),
        strokeWidth=alt.value(2.5),
        tooltip=tooltip,
    ).add_params(pick)
    text = alt.Chart(data).mark_text(fontSize=13, font="monospace").encode(
        color=alt.condition("datum.dark", alt.value("white"), alt.value("black")),
        x=alt.X("xc:Q", axis=None, scale=None), y=alt.Y("yc:Q", axis=None, scale=None), text="token:N",
    )
    return alt.layer(blocks, text).properties(width=width, height=height, title=title, usermeta=SVG).configure_view(
        strokeWidth=0)


def probability_change_chart(table: pd.DataFrame, *, before: str, after: str, title: str = "") -> alt.LayerChart:
    """Each completion token's probability with all heads (``before``) and with pruned heads (``after``): two dots
    per token joined by a line, the tokens in order along x.

    ``table``: columns ``#`` (the token's index), ``token`` and the two probability columns.
    """
    data = pd.DataFrame({"index": table["#"].to_numpy(), "token": table.token.to_numpy(),
                         "before": table[before].to_numpy(dtype=float), "after": table[after].to_numpy(dtype=float)})
    data["label"] = [f"{index}: {token}" for index, token in zip(data["index"], data.token)]
    order = data.label.tolist()
    long = pd.concat([data.assign(model=before, probability=data.before),
                      data.assign(model=after, probability=data.after)], ignore_index=True)
    x = alt.X("label:N", sort=order, title="completion token", axis=alt.Axis(labelAngle=-60, labelLimit=120))
    rules = alt.Chart(data).mark_rule(color="#9e9e9e").encode(x=x, y=alt.Y("before:Q"), y2=alt.Y2("after:Q"))
    dots = alt.Chart(long).mark_point(filled=True, size=60).encode(
        x=x, y=alt.Y("probability:Q", scale=alt.Scale(domain=[0, 1]), title="probability of the reference token"),
        color=alt.Color("model:N", scale=alt.Scale(domain=[before, after], range=["#1565c0", "#c62828"]),
                        legend=alt.Legend(title=None, orient="top")),
        tooltip=["token:N", alt.Tooltip("index:Q", title="completion token"), "model:N",
                 alt.Tooltip("probability:Q", format=".3f")],
    )
    return alt.layer(rules, dots).properties(width=max(320, 18 * len(data)), height=220, title=title, usermeta=SVG)
