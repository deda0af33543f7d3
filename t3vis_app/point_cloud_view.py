"""The Projection page's large-set widgets: the rasterised view and the WebGL point cloud with their legends,
and the Data Table."""

from __future__ import annotations

import html
import os
from collections.abc import Sequence

import pandas as pd
import streamlit as st

from t3vis import charts
from t3vis.charts import point_cloud, point_raster
from t3vis.queries.explore import Attribute, Filter
from t3vis.markdown_text import escape_markdown as md
from t3vis.queries.frame_table import FrameTable
from t3vis_app.figure_downloads import figure_buttons
from t3vis.queries.frames import View
from t3vis_app import data, state
from t3vis_app.filters import zoom_to
from t3vis_app.selection import picked_from_chart, picked_from_cloud, selected

LARGE_VIEW = 5_000  # views with more points are kept in an in-memory DuckDB table, their Data Table paged
TABLE_PAGE_ROWS = 100  # rows of a large view's Data Table sent to the browser at once
CHART_HEIGHT = 460
RASTER_ABOVE = int(os.environ.get("T3VIS_RASTER_ABOVE", 5_000))  # more points: drawn as one image


def raster_chart(store, view: View, table: FrameTable, filters: Sequence[Filter], *, color: Attribute,
                 selected_id: int | None, title: str, key: str, width: int, zoomable: bool,
                 figure: tuple[str, str] | None = None, interactive: bool = True) -> int | None:
    """Draw the view's points as one image with hover cells (:mod:`t3vis.charts.point_raster`), its legend and, with
    ``figure`` = (file name, caption), its export buttons; the example id newly clicked. A box dragged on a
    ``zoomable`` chart zooms into it (the x and y filters, from the next run). ``table``: the view's
    :func:`t3vis_app.data.frame_table` in ``store``. ``interactive`` False: the chart without its cells yet (a
    fresh browser's first draw; :mod:`t3vis_app.deferred`)."""
    raster = data.raster(store, view, tuple(filters), color, width, CHART_HEIGHT)
    spec = charts.raster_projection_spec(
        raster, layout=view.layout, layer=view.layer, title=title, zoomable=zoomable, interactive=interactive,
        selected=point_raster.selected_point(table, filters, raster.box, selected_id))
    # a key of its own per zoom: the dragged box is not drawn again over the zoomed chart
    chart_key = f"{key}@" + "_".join(f"{value:.6g}" for value in raster.box)
    event = st.vega_lite_chart(spec, on_select="rerun", key=chart_key, width="content",
                               selection_mode=[charts.PICK, charts.BOX] if zoomable else [charts.PICK])
    legend(raster.legend_title, raster.legend)
    if figure is not None:
        figure_buttons(lambda: cloud_figure(table, filters, color=color, layout=view.layout, layer=view.layer,
                                            title=title), name=figure[0], caption=figure[1], key=f"figure.{key}")
    st.caption(f"{raster.n_points:,} points drawn as one image. Hover a {point_raster.CELL_PX}-pixel cell for its "
               "count, colour and the example nearest its centre; click to select that example"
               + ("; drag a box to zoom in (the x and y filters), until every point can be hovered and clicked."
                  if zoomable else "."))
    box = point_raster.zoom_box(selected(event, charts.BOX), raster)
    if box is not None and state.newly_clicked(f"{chart_key}.box", box):
        zoom_to(box)
        st.rerun()
    return picked_from_chart(event, chart_key)


def point_cloud_chart(table: FrameTable, filters: Sequence[Filter], *, color: Attribute, layout: str,
                      layer: int | None, selected_id: int | None, title: str, key: str, width: int,
                      figure: tuple[str, str] | None = None) -> int | None:
    """Draw the view's points with WebGL (a title, the chart, its legend, and with ``figure`` = (file name,
    caption) its export buttons: the same dots drawn by Vega on the server); the example id newly clicked."""
    cloud = point_cloud.point_cloud(table, filters, color=color, layout=layout,
                                    axis_titles=charts.axis_titles(layout, layer), selected_id=selected_id,
                                    width=width, height=CHART_HEIGHT)
    st.markdown(f"**{md(title)}**")
    event = st.pydeck_chart(cloud.deck, on_select="rerun", selection_mode="single-object", key=key,
                            height=CHART_HEIGHT, width="stretch")
    legend(cloud.legend_title, cloud.legend)
    if figure is not None:
        figure_buttons(lambda: cloud_figure(table, filters, color=color, layout=layout, layer=layer, title=title),
                       name=figure[0], caption=figure[1], key=f"figure.{key}")
    if cloud.binned:
        st.caption(f"{cloud.n_points:,} points, drawn with WebGL as one dot per occupied cell of a "
                   f"{point_cloud.GRID[0]}×{point_cloud.GRID[1]} grid ({cloud.n_marks:,} cells), coloured by the "
                   f"cell's {'mean' if color.kind == 'continuous' else 'most common value'}; hover for its count, "
                   f"click to select its first example. Filter down to {point_cloud.POINTS_LIMIT:,} points "
                   "(e.g. on x and y, to zoom into a region) to see every point.")
    return picked_from_cloud(event, key)


def cloud_figure(table: FrameTable, filters: Sequence[Filter], *, color: Attribute, layout: str, layer: int | None,
                 title: str):
    """The WebGL chart's dots as an Altair chart, for the figure export."""
    points = point_cloud.figure_points(table, filters, color=color, layout=layout)
    legend_title = color.label + ((" (mean of a cell)" if color.kind == "continuous" else " (most common in a cell)")
                                  if points.binned else "")
    if points.binned:
        title = f"{title} · {points.n_points:,} points in {len(points.dots):,} grid cells"
    return charts.point_cloud_figure_chart(points.dots, points.legend, legend_title=legend_title, layout=layout,
                                          layer=layer, title=title, binned=points.binned)


def legend(title: str, entries: Sequence[point_cloud.LegendEntry]) -> None:
    """The colour classes as swatches under the chart. Names come from the dataset: each value is HTML-escaped
    and kept on one line (:func:`_html_text`), so that the legend stays one HTML block, shown as text."""
    swatches = " ".join(
        f'<span style="white-space:nowrap;margin-right:0.9em"><span style="display:inline-block;width:0.8em;'
        f'height:0.8em;border-radius:50%;background:{_html_text(entry.colour)};margin-right:0.3em"></span>'
        f'{_html_text(entry.label)}</span>' for entry in entries)
    st.markdown(f'<div style="font-size:0.85em"><b>{_html_text(title)}</b>: {swatches}</div>',
                unsafe_allow_html=True)


def _html_text(value: object) -> str:
    """``value`` as text inside the legend's HTML: escaped, and its line breaks (any whitespace run) made one
    space. Markdown reads an HTML block up to the first blank line only: a label holding one would end the block,
    and the rest of the legend would be rendered as Markdown (an image fetched from a URL in the label)."""
    return html.escape(" ".join(str(value).split()), quote=True)


def data_table(rows: pd.DataFrame, selected_id: int | None, *, key: str = "table", empty: Sequence[str] = ()):
    """The Data Table of ``rows``, the selected example ticked, without the ``empty`` columns (no value in
    the whole view); returns (selection event, the rows shown).

    A paged table passes a key per page: a keyed table keeps its selected row *position* when its rows change,
    which would select another example on the next page."""
    table = rows.drop(columns=["x", "y", "label_id", "pred", *empty], errors="ignore")
    first = [c for c in ("example_id", "unit", "text", "label", "prediction", "correct", "rouge1", "loss",
                         "confidence", "gold_prob", "last_prediction", "last_correct", "region", "dm_confidence",
                         "variability", "correctness", "forgetting_events") if c in table.columns]
    table = table[first + [c for c in table.columns if c not in first]]
    table.insert(0, "selected", table.example_id == selected_id)
    event = st.dataframe(
        table, hide_index=True, on_select="rerun", selection_mode="single-row", key=key,
        height=min(400, 35 * (len(table) + 1) + 3),
        column_config={
            "selected": st.column_config.CheckboxColumn("●", width="small", help="the selected example"),
            "text": st.column_config.TextColumn("text", width="large"),
            "loss": st.column_config.NumberColumn("loss", format="%.3f"),
            "confidence": st.column_config.NumberColumn("confidence", format="%.3f"),
            "gold_prob": st.column_config.NumberColumn("gold prob.", format="%.3f"),
            "last_prediction": st.column_config.TextColumn("last-epoch prediction"),
            "last_correct": st.column_config.CheckboxColumn("last-epoch correct"),
            "dm_confidence": st.column_config.NumberColumn("Data Map confidence", format="%.3f"),
            "variability": st.column_config.NumberColumn("variability", format="%.3f"),
            "correctness": st.column_config.NumberColumn("correctness", format="%.2f"),
            **{name: st.column_config.NumberColumn(name, format="%.3f")
               for name in ("rouge1", "rouge2", "rougeL", "prob")},
        },
    )
    return event, table
