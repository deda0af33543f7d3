"""WebGL scatter plots of large projections: deck.gl layers (drawn by ``st.pydeck_chart``) written by DuckDB.

Vega draws every point through its scenegraph, which takes seconds at 50,000 points; deck.gl draws them
on the GPU. What costs at a million points is then moving the data: pydeck's own serialiser takes a minute
for a million rows, and deck.gl's JSON converter walks every object in the browser. So each layer's rows
are a CSV file written by DuckDB straight from the view's :class:`~t3vis.queries.frame_table.FrameTable`
(filters applied in the same query) and handed to deck.gl as a ``data:`` URL, which loaders.gl parses.

- Up to :data:`POINTS_LIMIT` points passing the filters, each point is a dot: id, label, prediction and
  the colour's value in its tooltip (its text too, up to :data:`TEXT_TOOLTIP_LIMIT` points).
- Above that, the points are binned into a grid of cells a few pixels wide (:data:`GRID`): one
  dot per occupied cell, coloured by the cell's most common value (categories) or its mean (numbers);
  its tooltip gives the cell's count, and a click selects the cell's first example. Filters (the layout's
  coordinates are filterable too) narrow the set down until every point is drawn.

Colours follow the Altair charts: the ``tableau10`` hues over the sorted categories, and the ``blues``
scheme cut into :data:`SHADES` classes for a number. Each colour class is its own layer, so a row carries
only its position and tooltip. The view is orthographic, with no basemap, y up; axes, ticks and their
titles are drawn as layers too.
"""

from __future__ import annotations

import base64
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pydeck as pdk

from t3vis.queries.explore import DATA_MAP, Attribute, Filter, RangeFilter
from t3vis.queries.frame_table import FrameTable
from t3vis.queries.frames import quote_identifier

# Measured in headless Chromium (bench/browser_floor.py, bench/scale_app.py), whose WebGL is software
# (SwiftShader): there a bare st.pydeck_chart of 100 points takes longer to appear than the app's rasterised
# view (t3vis.charts.point_raster) of a million. So the Projection page draws large views as an image by default, and
# deck.gl only when T3VIS_WEBGL_THRESHOLD is set: views with more points than that are drawn with WebGL (with a
# GPU, deck.gl pans and zooms a million points smoothly in the browser).
WEBGL_THRESHOLD = int(os.environ.get("T3VIS_WEBGL_THRESHOLD", 0))  # more points pass the filters: WebGL (0: never)
POINTS_LIMIT = int(os.environ.get("T3VIS_WEBGL_POINTS", 50_000))  # more points: one dot per occupied grid cell
TEXT_TOOLTIP_LIMIT = 50_000  # up to this many points, the tooltip shows the text's start
TEXT_TOOLTIP_CHARS = 60
GRID = (320, 210)  # cells across and down when binning: at most 67,200 dots, each 2-3 pixels
SHADES = 7  # classes of a numeric colour
LAYER_PREFIX = "class-"  # id of each colour class's layer
# computed columns: names that no dataset column has (a dataset may well have a column "class")
CLASS, CELL_X, CELL_Y = "__t3vis_class", "__t3vis_cell_x", "__t3vis_cell_y"
# Vega's tableau10 and blues schemes (the Altair charts' colours)
TABLEAU10 = ["#4c78a8", "#f58518", "#e45756", "#72b7b2", "#54a24b", "#eeca3b", "#b279a2", "#ff9da6", "#9d755d",
             "#bab0ac"]
BLUES = ["#cfe1f2", "#a5cce3", "#77b1d8", "#4e94c8", "#2e77b6", "#18599c", "#0b3c78"]
MISSING_COLOUR = "#9e9e9e"
AXIS_COLOUR = [90, 90, 90]


@dataclass(frozen=True)
class LegendEntry:
    """One colour class: its name and its hex colour."""

    label: str
    colour: str


@dataclass(frozen=True)
class PointCloud:
    """A drawable WebGL scatter plot: the deck (for ``st.pydeck_chart``) and what to say about it."""

    deck: pdk.Deck
    legend: tuple[LegendEntry, ...]
    legend_title: str
    n_points: int  # points passing the filters
    n_marks: int  # dots drawn (fewer than n_points when binned)
    binned: bool
    initial_view: dict  # {"target": [x, y, 0], "zoom": [zx, zy]} (see screen_position)


class _PrebuiltDeck(pdk.Deck):
    """A pydeck Deck whose JSON was written beforehand (``st.pydeck_chart`` calls ``to_json``)."""

    def __init__(self, spec_json: str, tooltip: dict):
        super().__init__(layers=[], map_provider=None, tooltip=tooltip)
        self._spec_json = spec_json

    def to_json(self) -> str:
        return self._spec_json


def rgb(hex_colour: str) -> list[int]:
    return [int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)]


def colour_classes(table: FrameTable, attribute: Attribute) -> tuple[str, list[LegendEntry]]:
    """SQL giving each row's colour class (0 ..), and the classes' legend entries, in order.

    Categories are sorted as the Altair chart sorts them; a number's range (over the unfiltered rows, so
    colours do not move when filtering) is cut into :data:`SHADES` equal classes. Missing values get the
    last class, grey.
    """
    column = quote_identifier(attribute.name)
    summary = table.summary(attribute)
    if attribute.kind == "continuous":
        low, width = _shade_scale(table, attribute)
        expression = shade_sql(column, low, width)
        entries = [LegendEntry(f"{low + i * width:.3g} – {low + (i + 1) * width:.3g}", BLUES[i]) for i in range(SHADES)]
        return expression, entries + [LegendEntry("missing", MISSING_COLOUR)]
    values = list(summary)
    if values:
        mapping = " ".join(f"WHEN {_sql_string(value)} THEN {i}" for i, value in enumerate(values))
        expression = f"CASE CAST({column} AS VARCHAR) {mapping} ELSE {len(values)} END"
    else:
        expression = "0"
    entries = [LegendEntry(str(value), TABLEAU10[i % len(TABLEAU10)]) for i, value in enumerate(values)]
    return expression, entries + [LegendEntry("missing", MISSING_COLOUR)]


def _shade_scale(table: FrameTable, attribute: Attribute) -> tuple[float, float]:
    """(low, width) of a number's shades: its unfiltered range cut into :data:`SHADES` equal classes."""
    low, high = table.summary(attribute)
    return low, (high - low) / SHADES or 1.0


def shade_sql(value_sql: str, low: float, width: float) -> str:
    """SQL of the shade class (0 .. SHADES - 1) of a number, :data:`SHADES` (grey) when it is missing."""
    return (f"CASE WHEN {value_sql} IS NULL THEN {SHADES} "
            f"ELSE least(greatest(floor(({value_sql} - {low!r}) / {width!r}), 0), {SHADES - 1})::INTEGER END")


def _sql_string(value: str) -> str:
    """A SQL string literal (category names come from the store, so they are quoted, never trusted)."""
    return "'" + str(value).replace("'", "''") + "'"


def _value_expression(attribute: Attribute) -> str:
    column = quote_identifier(attribute.name)
    if attribute.kind == "continuous":
        return f"CAST(round({column}, 3) AS VARCHAR)"
    return f"CAST({column} AS VARCHAR)"


def _tooltip_fields(table: FrameTable, attribute: Attribute, with_text: bool) -> list[tuple[str, str, str]]:
    """(key in the row, SQL, title) of the fields a point's tooltip shows."""
    fields = [("i", "example_id", "example")]
    if "unit" in table.columns:
        fields.append(("u", "unit", "unit"))
    for key, name in (("l", "label"), ("r", "prediction")):
        if name in table.columns and name != attribute.name:
            fields.append((key, f"CAST({quote_identifier(name)} AS VARCHAR)", name))
    fields.append(("v", _value_expression(attribute), attribute.label))
    if with_text and "text" in table.columns:
        fields.append(("t", f"left(text, {TEXT_TOOLTIP_CHARS})", ""))
    return fields


def bounds(table: FrameTable, layout: str) -> tuple[float, float, float, float]:
    """(x0, x1, y0, y1) of the unfiltered layout (the Data Map's axes are fixed: variability 0–0.5,
    confidence 0–1), so filtering does not move the view."""
    if layout == DATA_MAP:
        return 0.0, 0.5, 0.0, 1.0
    x0, x1, y0, y1 = table.query("SELECT min(x) AS x0, max(x) AS x1, min(y) AS y0, max(y) AS y1 FROM frame").iloc[0]
    if any(v is None or (isinstance(v, float) and math.isnan(v)) for v in (x0, x1, y0, y1)):
        return 0.0, 1.0, 0.0, 1.0
    x_pad, y_pad = (x1 - x0) * 0.02 or 1.0, (y1 - y0) * 0.02 or 1.0
    return float(x0 - x_pad), float(x1 + x_pad), float(y0 - y_pad), float(y1 + y_pad)


def view_box(table: FrameTable, filters: Sequence[Filter], layout: str) -> tuple[float, float, float, float]:
    """The region a large view shows: the layout's unfiltered :func:`bounds`, narrowed to x and y range
    filters (a zoom)."""
    x0, x1, y0, y1 = bounds(table, layout)
    for kept in filters:
        if isinstance(kept, RangeFilter) and kept.column == "x" and kept.high > kept.low:
            x0, x1 = kept.low, kept.high
        elif isinstance(kept, RangeFilter) and kept.column == "y" and kept.high > kept.low:
            y0, y1 = kept.low, kept.high
    return float(x0), float(x1), float(y0), float(y1)


def point_cloud(
    table: FrameTable,
    filters: Sequence[Filter],
    *,
    color: Attribute,
    layout: str,
    axis_titles: tuple[str, str],
    selected_id: int | None = None,
    width: int = 900,
    height: int = 460,
    points_limit: int | None = None,
) -> PointCloud:
    """The WebGL scatter plot of the rows passing ``filters``, coloured by ``color``.

    ``width`` and ``height`` (pixels) only set the initial zoom, which fits the layout's bounds. Above
    ``points_limit`` points (default :data:`POINTS_LIMIT`) the points are binned.
    """
    points_limit = POINTS_LIMIT if points_limit is None else points_limit
    classes, legend = colour_classes(table, color)
    where, params = table.where(filters)
    n_points = table.count(filters)
    box = view_box(table, filters, layout)  # x and y filters zoom
    binned = n_points > points_limit
    if binned:
        rows_by_class, fields = _binned_rows(table, classes, legend, color, where, params, box)
    else:
        rows_by_class, fields = _point_rows(table, classes, color, where, params, n_points)
    radius = 3.0 if n_points <= 20_000 else 2.0 if n_points <= 100_000 else 1.5
    layers = [
        _scatter_layer(f"{LAYER_PREFIX}{index}", rows_by_class[index], rgb(entry.colour), radius)
        for index, entry in enumerate(legend) if index in rows_by_class
    ]
    if selected_id is not None:
        chosen = table.query(f"SELECT x, y FROM frame WHERE example_id = ? ORDER BY {', '.join(table.order)} LIMIT 1",
                             [int(selected_id)])
        if len(chosen):
            layers.append(_selected_layer(float(chosen.x[0]), float(chosen.y[0])))
    layers += _axis_layers(box, axis_titles)
    initial_view = _initial_view(box, width, height)
    spec = {
        "initialViewState": initial_view,
        "views": [{"@@type": "OrthographicView", "controller": True, "flipY": False}],
        "layers": layers,
    }
    data = {layer["id"]: layer.pop("data") for layer in layers if isinstance(layer.get("data"), _RawJson)}
    spec_json = json.dumps(spec, separators=(",", ":"))
    for layer_id, raw in data.items():  # the rows DuckDB wrote go in as they are
        spec_json = spec_json.replace(f'"id":"{layer_id}"', f'"id":"{layer_id}","data":{raw.text}', 1)
    tooltip = {"text": "\n".join((f"{title}: {{{key}}}" if title else f"{{{key}}}") for key, _, title in fields)}
    n_marks = sum(raw.count for raw in data.values())
    present = tuple(entry for index, entry in enumerate(legend) if index in rows_by_class)
    return PointCloud(deck=_PrebuiltDeck(spec_json, tooltip), legend=present, legend_title=color.label,
                      n_points=n_points, n_marks=n_marks, binned=binned, initial_view=initial_view)


@dataclass(frozen=True)
class _RawJson:
    """A layer's rows: a JSON string (a quoted ``data:`` URL of a CSV file), and how many rows it holds."""

    text: str
    count: int


def csv_data_url(csv_text: str) -> str:
    """A CSV file as a ``data:`` URL. deck.gl loads a layer's data from a URL with loaders.gl, whose CSV
    loader Streamlit registers: parsing CSV is several times faster in the browser than deck.gl's JSON
    converter walking one object per point."""
    return "data:text/csv;base64," + base64.b64encode(csv_text.encode("utf-8")).decode("ascii")


def _csv_field(sql: str) -> str:
    """SQL for one CSV field: quoted, quotes doubled, line breaks made spaces, NULL as empty."""
    return (f"'\"' || replace(replace(replace(coalesce(CAST({sql} AS VARCHAR), ''), '\"', '\"\"'), chr(10), ' '), "
            f"chr(13), ' ') || '\"'")


def _point_rows(table: FrameTable, classes: str, color: Attribute, where: str, params: list,
                n_points: int) -> tuple[dict[int, _RawJson], list]:
    fields = _tooltip_fields(table, color, with_text=n_points <= TEXT_TOOLTIP_LIMIT)
    header = ",".join(["x", "y"] + [key for key, _, _ in fields])
    row = " || ',' || ".join(["CAST(round(x, 4) AS VARCHAR)", "CAST(round(y, 4) AS VARCHAR)"]
                             + [_csv_field(sql) if key != "i" else "CAST(example_id AS VARCHAR)"
                                for key, sql, _ in fields])
    sql = (f"SELECT {CLASS} AS class, count(*) AS n, string_agg({row}, chr(10)) AS rows "
           f"FROM (SELECT *, {classes} AS {CLASS} FROM frame{where}) WHERE x IS NOT NULL AND y IS NOT NULL "
           f"GROUP BY {CLASS}")
    found = table.query(sql, params)
    return {int(klass): _RawJson(json.dumps(csv_data_url(header + "\n" + rows)), int(n))
            for klass, n, rows in zip(found["class"], found["n"], found["rows"])}, fields


def _binned_rows(table: FrameTable, classes: str, legend: list[LegendEntry], color: Attribute, where: str,
                 params: list, box: tuple[float, float, float, float]) -> tuple[dict[int, _RawJson], list]:
    """One row per occupied grid cell: its centre, count, first example and most common class (or mean)."""
    found = _binned_cells(table, classes, legend, color, where, params, box)
    mean_or_mode = f"mean {color.label}" if color.kind == "continuous" else f"most common {color.label}"
    fields = [("n", "", "examples in this cell"), ("v", "", mean_or_mode), ("i", "", "click selects example")]
    rows: dict[int, _RawJson] = {}
    for klass, group in found.groupby("class"):
        csv_text = group[["x", "y", "n", "v", "i"]].to_csv(index=False)
        rows[int(klass)] = _RawJson(json.dumps(csv_data_url(csv_text)), len(group))
    return rows, fields


def _binned_cells(table: FrameTable, classes: str, legend: list[LegendEntry], color: Attribute, where: str,
                  params: list, box: tuple[float, float, float, float]) -> pd.DataFrame:
    """The occupied grid cells: columns x, y (the cell's centre), n, i (first example), class, v (tooltip value)."""
    x0, x1, y0, y1 = box
    cell_x, cell_y = (x1 - x0) / GRID[0], (y1 - y0) / GRID[1]
    column = quote_identifier(color.name)
    located = (f"SELECT *, {classes} AS {CLASS}, floor((x - {x0!r}) / {cell_x!r})::INTEGER AS {CELL_X}, "
               f"floor((y - {y0!r}) / {cell_y!r})::INTEGER AS {CELL_Y} FROM frame{where}")
    # The same view must give the same cells and colours every time (on screen and in its figure): the cells in
    # order, and a cell's most common class with ties going to the first class (DuckDB's mode() picks any).
    if color.kind == "continuous":  # a cell's colour is the shade of its mean
        sql = (f"SELECT {CELL_X} AS gx, {CELL_Y} AS gy, count(*) AS n, min(example_id) AS i, avg({column}) AS "
               f"mean_value, {shade_sql(f'avg({column})', *_shade_scale(table, color))} AS mode_class "
               f"FROM ({located}) WHERE x IS NOT NULL AND y IS NOT NULL GROUP BY {CELL_X}, {CELL_Y} ORDER BY gx, gy")
    else:
        sql = (f"SELECT gx, gy, sum(k)::BIGINT AS n, min(first_id) AS i, NULL AS mean_value, "
               f"first(klass ORDER BY k DESC, klass) AS mode_class FROM ("
               f"SELECT {CELL_X} AS gx, {CELL_Y} AS gy, {CLASS} AS klass, count(*) AS k, min(example_id) AS first_id "
               f"FROM ({located}) WHERE x IS NOT NULL AND y IS NOT NULL GROUP BY {CELL_X}, {CELL_Y}, {CLASS}) "
               "GROUP BY gx, gy ORDER BY gx, gy")
    found = table.query(sql, params)
    found["class"] = found.mode_class.astype(int)
    if color.kind == "continuous":
        mean = found.mean_value.to_numpy(dtype=float)
        found["v"] = [("missing" if np.isnan(value) else f"{value:.3g}") for value in mean]
    else:  # the tooltip names the class the dot is coloured by (ties and missing values included)
        found["v"] = [legend[klass].label for klass in found["class"]]
    found["x"] = (x0 + (found.gx + 0.5) * cell_x).round(4)
    found["y"] = (y0 + (found.gy + 0.5) * cell_y).round(4)
    return found


@dataclass(frozen=True)
class FigurePoints:
    """What a publication figure of a large view draws: the dots (x, y, colour: a legend label; n: points in
    the dot), the legend in order, and whether the dots are grid cells."""

    dots: pd.DataFrame
    legend: tuple[LegendEntry, ...]
    binned: bool
    n_points: int


def figure_points(table: FrameTable, filters: Sequence[Filter], *, color: Attribute, layout: str,
                  points_limit: int | None = None) -> FigurePoints:
    """The dots of the WebGL chart of the same view (every point, or the same grid cells above
    ``points_limit``), for a figure drawn by Vega on the server."""
    points_limit = POINTS_LIMIT if points_limit is None else points_limit
    classes, legend = colour_classes(table, color)
    where, params = table.where(filters)
    n_points = table.count(filters)
    binned = n_points > points_limit
    if binned:
        dots = _binned_cells(table, classes, legend, color, where, params,
                             view_box(table, filters, layout))[["x", "y", "n", "class"]]
    else:  # in the table's fixed mixed order, as the image on screen draws them
        dots = table.query(f"SELECT x, y, 1 AS n, {classes} AS class FROM frame{where}", params)
        dots = dots[dots.x.notna() & dots.y.notna()]
    labels = [entry.label for entry in legend]
    dots = dots.assign(colour=[labels[int(klass)] for klass in dots["class"]]).drop(columns="class")
    present = tuple(entry for entry in legend if entry.label in set(dots.colour))
    return FigurePoints(dots=dots.reset_index(drop=True), legend=present, binned=binned, n_points=n_points)


def _scatter_layer(layer_id: str, rows: _RawJson, colour: list[int], radius: float) -> dict:
    return {
        "@@type": "ScatterplotLayer", "id": layer_id, "data": rows, "getPosition": "@@=[x, y]",
        "getFillColor": colour + [200], "getRadius": radius, "radiusUnits": "pixels", "stroked": False,
        "pickable": True, "autoHighlight": True, "highlightColor": [0, 0, 0, 200],
    }


def _selected_layer(x: float, y: float) -> dict:
    """A black ring around the selected example (not pickable: clicks go to the points)."""
    return {
        "@@type": "ScatterplotLayer", "id": "selected", "data": [{"p": [x, y]}], "getPosition": "@@=p",
        "getRadius": 9, "radiusUnits": "pixels", "filled": False, "stroked": True, "getLineColor": [0, 0, 0],
        "getLineWidth": 3, "lineWidthUnits": "pixels", "pickable": False,
    }


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values inside [low, high], about ``count`` of them."""
    if not high > low:
        return [low]
    raw = (high - low) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = min((m * magnitude for m in (1, 2, 5, 10)), key=lambda candidate: abs(candidate - raw))
    first = math.ceil(low / step) * step
    return [round(first + i * step, 10) for i in range(int((high - first) / step) + 1)]


def _axis_layers(box: tuple[float, float, float, float], titles: tuple[str, str]) -> list[dict]:
    """The frame of the layout's bounds, ticks with their values, and the two axis titles."""
    x0, x1, y0, y1 = box
    frame = [[[x0, y0], [x1, y0]], [[x0, y0], [x0, y1]]]
    x_ticks, y_ticks = nice_ticks(x0, x1), nice_ticks(y0, y1)
    lines = [{"s": start, "t": end} for start, end in frame]
    labels = ([{"p": [x, y0], "s": f"{x:g}", "a": "middle", "b": "top"} for x in x_ticks]
              + [{"p": [x0, y], "s": f"{y:g} ", "a": "end", "b": "center"} for y in y_ticks])
    titles_rows = [{"p": [(x0 + x1) / 2, y0], "s": titles[0], "o": [0, 24], "g": 0},
                   {"p": [x0, (y0 + y1) / 2], "s": titles[1], "o": [-44, 0], "g": 90}]
    # only the characters drawn go into the font atlas (building the default ASCII atlas costs a second)
    characters = "".join(sorted({c for row in labels + titles_rows for c in row["s"]}))
    text_style = {"getColor": AXIS_COLOUR, "sizeUnits": "pixels", "fontFamily": "sans-serif", "pickable": False,
                  "characterSet": characters}
    return [
        {"@@type": "LineLayer", "id": "axes", "data": lines, "getSourcePosition": "@@=s",
         "getTargetPosition": "@@=t", "getColor": AXIS_COLOUR, "getWidth": 1, "pickable": False},
        {"@@type": "TextLayer", "id": "ticks", "data": labels, "getPosition": "@@=p", "getText": "@@=s",
         "getSize": 11, "getTextAnchor": "@@=a", "getAlignmentBaseline": "@@=b", "getPixelOffset": [0, 3],
         **text_style},
        {"@@type": "TextLayer", "id": "axis-titles", "data": titles_rows, "getPosition": "@@=p", "getText": "@@=s",
         "getSize": 12, "getPixelOffset": "@@=o", "getAngle": "@@=g", "getTextAnchor": "middle",
         "getAlignmentBaseline": "center", **text_style},
    ]


def _initial_view(box: tuple[float, float, float, float], width: int, height: int) -> dict:
    """Fit the bounds into the canvas, each axis at its own zoom (as Vega stretches its axes), with room
    on the left and at the bottom for the ticks' values and the axis titles."""
    x0, x1, y0, y1 = box
    scale_x, scale_y = (width - 110) / (x1 - x0), (height - 80) / (y1 - y0)  # pixels per layout unit
    return {"target": [(x0 + x1) / 2 - 30 / scale_x, (y0 + y1) / 2 - 25 / scale_y, 0],
            "zoom": [math.log2(scale_x), math.log2(scale_y)]}


def screen_position(view: dict, x: float, y: float, *, width: float, height: float) -> tuple[float, float]:
    """Where a layout point is drawn on a ``width`` x ``height`` canvas at the initial view (y up)."""
    (tx, ty, _), (zx, zy) = view["target"], view["zoom"]
    return width / 2 + (x - tx) * 2 ** zx, height / 2 - (y - ty) * 2 ** zy
