"""Projection view and Data Table: one point per example, coloured and filtered, linked by selection."""

import streamlit as st

from t3vis import charts
from t3vis.charts import point_cloud

from t3vis.queries import explore
from t3vis_app import data, deferred, sidebar, state
from t3vis_app.figure_downloads import figure_buttons
from t3vis_app.filters import filter_widgets, zoom_to, zoomed
from t3vis_app.point_cloud_view import (LARGE_VIEW, RASTER_ABOVE, TABLE_PAGE_ROWS, data_table, point_cloud_chart,
                                        raster_chart)
from t3vis_app.selection import picked_from_chart, picked_from_table
from t3vis_app.tasks import app_task

ctx = sidebar.render()
run_id = ctx.run.run_id
st.title("Projection")

TASK = app_task(ctx.run.task)  # what an example, a unit and a Data Map point are (t3vis_app/tasks)
SPEC = TASK.spec
# What a point is, by view.points: an example (a text, a document, a sentence), a unit of one, an entity span
POINT_NAMES = {"examples": f"{SPEC.example}s", "units": f"{SPEC.unit}s", "spans": "entity spans"}
splits = data.splits(ctx.store, run_id)
# (layout, split, points): projections of the checkpoint first (examples, then units), then Data Maps
layout_options = []
for row in splits.itertuples():
    if row.has_projections and ctx.checkpoint is not None:
        methods = data.layouts(ctx.store, run_id, row.split, ctx.checkpoint).method.unique()
        layout_options += [(method, row.split, "examples") for method in methods]
    if SPEC.per_unit_tables and row.has_unit_projections and ctx.checkpoint is not None:
        methods = data.unit_layouts(ctx.store, run_id, row.split, ctx.checkpoint).method.unique()
        layout_options += [(method, row.split, "units") for method in methods]
for row in splits.itertuples():
    if row.has_dynamics:  # the Data Map is of the task's Data Map points (and, for entities, of their spans)
        layout_options += [(explore.DATA_MAP, row.split, points) for points in TASK.data_map_points]
if not layout_options:
    st.info("This run has no projections and no training dynamics yet: ingest a checkpoint with `t3vis ingest`, "
            "or record training with the T3visCallback.")
    st.stop()

METHOD_NAMES = {"tsne": "t-SNE", "pca": "PCA", explore.DATA_MAP: "Data Map"}


def layout_name(option: tuple[str, str, str]) -> str:
    method, split_name, points = option
    name = METHOD_NAMES.get(method, method)
    if SPEC.per_unit_tables:
        name += f" of {POINT_NAMES[points]}"
    return f"{name} · {split_name} split"


controls = st.columns([2, 1, 2, 1])
saved = (state.get("layout"), state.get("split"), state.get("points") or "examples")
if saved not in layout_options and saved[2] == "examples" and SPEC.per_unit_tables:
    saved = (saved[0], saved[1], "units")  # a link from before unit layouts: the Data Map of units
layout, split, points = state.choice(
    controls[0].selectbox, "Layout", layout_options, name="layout_choice",
    default=saved if saved in layout_options else layout_options[0], format_func=layout_name,
    help=(f"t-SNE/PCA of a layer's hidden states at the checkpoint, of each {SPEC.example} and of each "
          f"{SPEC.unit}, or the Data Map of training dynamics." if SPEC.per_unit_tables else
          "t-SNE/PCA of a layer's pooled hidden states at the checkpoint, or the Data Map of training dynamics."))
st.session_state["layout"], st.session_state["split"], st.session_state["points"] = layout, split, points
UNITS = SPEC.per_unit_tables and points == "units"  # points are units (sentences, words), not whole examples
THINGS = POINT_NAMES[points] if SPEC.per_unit_tables else "examples"


def layer_choice(column, checkpoint: str | None, name: str) -> int | None:
    if layout == explore.DATA_MAP or checkpoint is None:
        column.selectbox("Layer", ["—"], disabled=True, key=f"w.{name}.disabled")
        return None
    if UNITS:
        options = data.unit_layouts(ctx.store, run_id, split, checkpoint)
    else:
        options = data.layouts(ctx.store, run_id, split, checkpoint)
    layers = sorted(options[options.method == layout].layer.unique().tolist(), reverse=True)
    return state.choice(column.selectbox, "Layer", layers, name=name, default=layers[0] if layers else None,
                        format_func=lambda layer: "embeddings" if layer == 0 else f"layer {layer}")


layer = layer_choice(controls[1], ctx.checkpoint, "layer")
view = explore.View(run_id=run_id, split=split, checkpoint=ctx.checkpoint, layout=layout, layer=layer, points=points)
known = data.attributes(ctx.store, view)
by_name = {attribute.name: attribute for attribute in known}
default_color = "region" if layout == explore.DATA_MAP and "region" in by_name else "label"
color_name = state.choice(controls[2].selectbox, "Colour by", list(by_name), name="color", default=default_color,
                          format_func=lambda name: by_name[name].label,
                          help="Hue for categories (label, prediction, region ...), saturation for numbers.")
compare = controls[3].container()
with compare:
    st.write("")
    comparing = state.toggle("Compare", name="compare", help="Two projections side by side, sharing filters "
                                                                "and the selected example.")

LARGE = data.frame_size(ctx.store, view) > LARGE_VIEW  # filtered in memory by DuckDB, the table paged
if LARGE:
    table = data.frame_table(ctx.store, view)
    filters = filter_widgets(table.known, table.summary)
else:
    unfiltered = data.example_frame(ctx.store, view)
    filters = filter_widgets(known, lambda attribute: explore.attribute_summary(unfiltered, attribute))
filters = filters + TASK.projection_filters(ctx, split, points, by_name)  # e.g. a tag confusion matrix's cell
if LARGE:
    n_shown, n_total = table.count(filters), table.n_rows
else:
    frame = data.example_frame(ctx.store, view, filters)
    n_shown, n_total = len(frame), len(unfiltered)
selected_id = state.get("example_id") if state.get("split") == split else None

second_view = None
if comparing:
    row = st.columns([2, 1, 3])
    names = ctx.checkpoints.checkpoint.tolist()
    second_checkpoint = state.choice(row[0].selectbox, "Compare with checkpoint", names, name="compare_checkpoint",
                                     default=names[0] if names else None)
    second_layer = layer_choice(row[1], second_checkpoint, "compare_layer")
    second_view = explore.View(run_id=run_id, split=split, checkpoint=second_checkpoint, layout=layout,
                               layer=second_layer, points=points)

st.caption(f"{n_shown:,} of {n_total:,} {THINGS} pass the filters. Click a point to select "
           + (f"its {SPEC.example}" if SPEC.per_unit_tables and points != "examples" else "it")
           + ("; scroll to zoom, drag to pan, double-click to reset." if n_shown <= RASTER_ABOVE else
              "" if point_cloud.WEBGL_THRESHOLD and n_shown > point_cloud.WEBGL_THRESHOLD else
              f"; drag a box on the {'left ' if comparing else ''}chart to zoom into a region."))
views = [(view, "left")] + ([(second_view, "right")] if second_view else [])


def figure_caption(title: str) -> str:
    """The caption line of a projection figure: run, split, what the chart shows, colour, filters."""
    return (f"run {run_id} · {split} split · {title} · colour: {by_name[color_name].label}"
            + (f" · {n_shown:,} of {n_total:,} {THINGS} (filtered)" if n_shown < n_total else ""))


# a fresh browser session's first run of a large view draws its charts without their hover cells and no table:
# both come with the rerun a moment later (t3vis_app/deferred.py), so that the points draw first
FIRST_DRAW = LARGE and deferred.pending("projection.table")
cells_waiting = False  # a chart of this run waits for its hover cells
columns = st.columns(len(views))
svg = n_shown <= 3_000  # crisp and inspectable for small sets; canvas for large ones
for (shown_view, side), column in zip(views, columns):
    # x and y filters are coordinates of the left layout: the compared layout keeps only the other filters
    view_filters = filters if shown_view is view else tuple(f for f in filters if f.column not in ("x", "y"))
    title = (f"{shown_view.checkpoint}" if layout != explore.DATA_MAP else f"Data Map · {split}") + (
        "" if shown_view.layer is None else f" · layer {shown_view.layer}") + (
        f" · {THINGS}" if SPEC.per_unit_tables else "")
    shown_table = (table if shown_view is view else data.frame_table(ctx.store, shown_view)) if LARGE else None
    n_view = shown_table.count(view_filters) if shown_table is not None else 0
    figure = (f"t3vis-{run_id}-{split}-{title}", figure_caption(title))
    if point_cloud.WEBGL_THRESHOLD and n_view > point_cloud.WEBGL_THRESHOLD:
        with column:
            clicked = point_cloud_chart(shown_table, view_filters, color=by_name[color_name], layout=layout,
                                        layer=shown_view.layer, selected_id=selected_id, title=title,
                                        key=f"cloud.{side}", width=900 // len(views), figure=figure)
    elif n_view > RASTER_ABOVE:
        cells_waiting = FIRST_DRAW
        with column:  # a box dragged on the left chart zooms (x and y are the left layout's coordinates)
            clicked = raster_chart(ctx.store, shown_view, shown_table, view_filters, color=by_name[color_name],
                                   selected_id=selected_id, title=title, key=f"raster.{side}",
                                   width=720 if len(views) == 1 else 420, zoomable=shown_view is view,
                                   figure=figure, interactive=not FIRST_DRAW)
    else:
        if shown_table is not None:
            shown = shown_table.rows(view_filters)
        else:
            shown = frame if shown_view is view else data.example_frame(ctx.store, shown_view, filters)
        chart = charts.projection_chart(shown, color=by_name[color_name], layout=layout, layer=shown_view.layer,
                                        selected_id=selected_id, title=title, svg=svg)
        with column:
            event = st.altair_chart(chart, on_select="rerun", selection_mode=[charts.PICK], key=f"chart.{side}",
                                    width="stretch")
            figure_buttons(chart, name=figure[0], caption=figure[1], key=f"figure.{side}")
        clicked = picked_from_chart(event, f"chart.{side}")
    if clicked is not None:
        state.select_example(split, clicked)
        position = table.position(filters, clicked) if LARGE else None
        if position is not None:  # the paged table turns to the clicked example's page
            st.session_state["w.table_page"] = position // TABLE_PAGE_ROWS + 1
        st.rerun()

if zoomed(filters) and st.button("Reset zoom", key="reset_zoom", icon=":material/zoom_out_map:",
                                 help="Remove the x and y filters: the whole layout again."):
    zoom_to(None)
    st.rerun()


def table_section() -> None:
    """The Data Table of the filtered rows (of a large view, one page of them: only that page goes to the
    browser), linked to the selection, and the download of the filtered rows."""
    if LARGE:  # one page of the filtered rows goes to the browser, not all of them
        pages = max(1, -(-n_shown // TABLE_PAGE_ROWS))
        if st.session_state.get("w.table_page", 1) > pages:
            st.session_state["w.table_page"] = pages
        pager = st.columns([1, 4])
        page = pager[0].number_input("Page", min_value=1, max_value=pages, step=1, key="w.table_page",
                                     help=f"{TABLE_PAGE_ROWS} rows per page; clicking a point turns to its page.")
        pager[1].caption(f"Rows {(page - 1) * TABLE_PAGE_ROWS + 1:,}–{min(page * TABLE_PAGE_ROWS, n_shown):,} "
                         f"of {n_shown:,}, by id.")
        table_rows = table.rows(filters, offset=(page - 1) * TABLE_PAGE_ROWS, limit=TABLE_PAGE_ROWS)
        table_key, empty_columns = f"table.{page}", table.empty_columns
        rows_for_download = lambda: table.rows(filters)  # noqa: E731 (built only when the button is clicked)
    else:
        table_rows, table_key = frame, "table"
        empty_columns = tuple(unfiltered.columns[unfiltered.isna().all()]) if len(unfiltered) else ()
        rows_for_download = lambda: frame  # noqa: E731
    table_event, shown_table_rows = data_table(table_rows, selected_id, key=table_key, empty=empty_columns)
    row_id = picked_from_table(table_event, shown_table_rows, table_key)
    if row_id is not None:
        state.select_example(split, row_id)
        st.rerun()

    def csv() -> str:  # built only when the button is clicked
        return rows_for_download().drop(columns=["label_id", "pred"], errors="ignore").to_csv(index=False)

    st.download_button("Download the filtered rows (CSV)", csv, file_name=f"t3vis-{run_id}-{split}.csv",
                       mime="text/csv")


st.subheader("Data table")
WAITING = "The table, and the chart's hover and click, follow in a moment…" if cells_waiting else (
    "The table is drawn in a moment…")
if not LARGE or deferred.ready("projection.table", placeholder=WAITING):
    table_section()

TASK.selection_panel(ctx, split)
state.write_url()
