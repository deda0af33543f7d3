"""Large projections drawn as one image: every point rasterised on the server, hover and click by grid cell.

A browser spends seconds on a scatter plot of 50,000 points: Vega builds a scene-graph item per point
(``bench/browser_floor.py``: 4.3 s for a bare 50,000-point Altair chart here, 1.6 s for 100 points), and
deck.gl needs a GPU the browser may not have. Here DuckDB reads the points passing the filters, numpy
stamps each one as a small disc into an image (:func:`draw_points`, a palette PNG), and Vega shows that one image,
whatever the number of points. What stays interactive is a grid of transparent cells over it
(:data:`CELL_PX` screen pixels wide): a cell's tooltip tells how many points it holds, its colour
(most common value with its share, or the mean) and the example nearest its centre, and a click selects
that example. Dragging a box zooms: the page turns the box into x and y filters, so the image is
redrawn at the box's scale (and, once few points are left, Vega draws them one by one).

Colours are those of :mod:`t3vis.charts.point_cloud` (the Altair charts' schemes, a number cut into classes);
points are drawn in the frame table's fixed pseudo-random order, so no class is always on top.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from t3vis.charts.point_cloud import LegendEntry, colour_classes, view_box
from t3vis.queries.explore import Attribute, Filter
from t3vis.queries.frame_table import FrameTable
from t3vis.queries.frames import quote_identifier

IMAGE_SCALE = 2  # image pixels per screen pixel: sharp on high-density screens
CELL_PX = 10  # screen pixels per side of a hover cell: at most 72 x 46 cells on a 720 x 460 chart
DRAW_CHUNK = 1 << 18  # points stamped at once: bounds the scratch memory (about 20 MB)
TEXT_CHARS = 80  # of the nearest example's text in a cell's tooltip
# computed columns: names that no dataset column has
CLASS, CELL_X, CELL_Y, ROW = "__t3vis_class", "__t3vis_cell_x", "__t3vis_cell_y", "__t3vis_row"


@dataclass(frozen=True)
class Raster:
    """A large view ready to draw: the image, the hover cells and the legend."""

    image_url: str  # PNG data URL, IMAGE_SCALE x the chart's plot size, transparent where no point is
    box: tuple[float, float, float, float]  # (x0, x1, y0, y1): the layout region the image covers
    cells: pd.DataFrame  # x0, x1, y0, y1, n, colour, share, example_id, label, prediction, text (by cell)
    legend: tuple[LegendEntry, ...]  # the colour classes present, in order
    legend_title: str
    n_points: int  # points drawn (passing the filters, inside the box)
    width: int  # the plot's size in screen pixels
    height: int


def disc_offsets(radius: float) -> np.ndarray:
    """(k, 2) integer (dx, dy) offsets of the pixels of a disc of ``radius`` pixels around its centre."""
    reach = int(np.floor(radius))
    dx, dy = np.meshgrid(np.arange(-reach, reach + 1), np.arange(-reach, reach + 1))
    inside = dx ** 2 + dy ** 2 <= radius ** 2 + 1e-9
    return np.stack([dx[inside], dy[inside]], axis=1)


def draw_points(columns: np.ndarray, rows: np.ndarray, inks: np.ndarray, *, width: int, height: int,
                radius: float) -> np.ndarray:
    """(height, width) uint8 image: a disc of ``radius`` pixels per point painted with its ink, in the given
    order (later points on top), 0 where no point is. ``columns``/``rows``: (n,) pixel centres inside the image
    (row 0 at the top); ``inks``: (n,) uint8, 1 and up (a colour class + 1)."""
    offsets = disc_offsets(radius)  # (k, 2)
    pad = int(np.abs(offsets).max(initial=0))  # drawn on a padded canvas: a disc at the edge needs no checks
    padded_width = width + 2 * pad
    canvas = np.zeros((height + 2 * pad) * padded_width, dtype=np.uint8)
    centres = (rows.astype(np.int64) + pad) * padded_width + columns.astype(np.int64) + pad  # (n,) flat indices
    steps = offsets[:, 1] * padded_width + offsets[:, 0]  # (k,) flat offsets of a disc's pixels
    for start in range(0, len(centres), DRAW_CHUNK):  # chunks in order, each point's disc whole: later on top
        chunk = slice(start, start + DRAW_CHUNK)
        pixels = (centres[chunk, None] + steps[None, :]).ravel()  # (chunk * k,) point by point
        canvas[pixels] = np.repeat(inks[chunk], len(steps))  # one assignment, in order: the last point wins
    return canvas.reshape(height + 2 * pad, padded_width)[pad:pad + height, pad:pad + width]


def png_data_url(image: np.ndarray, colours: Sequence[str]) -> str:
    """A (height, width) image of inks as a PNG data URL: ink 0 transparent, ink i the hex colour
    ``colours[i - 1]``. A palette PNG is a byte per pixel, a third of RGBA's size (fast compression: the
    browser decodes it either way)."""
    from PIL import Image

    palette = [0, 0, 0] + [int(colour[i:i + 2], 16) for colour in colours for i in (1, 3, 5)]
    picture = Image.fromarray(np.ascontiguousarray(image), mode="P")
    picture.putpalette(palette)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG", compress_level=1, transparency=0)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def dot_radius(n_points: int) -> float:
    """Disc radius in image pixels: smaller dots for more points, so dense regions keep their structure."""
    return 3.2 if n_points <= 20_000 else 2.3 if n_points <= 200_000 else 1.6


def point_raster(table: FrameTable, filters: Sequence[Filter], *, color: Attribute, layout: str,
                 width: int = 720, height: int = 460) -> Raster:
    """Rasterise the rows of ``table`` passing ``filters`` for a plot of ``width`` x ``height`` screen pixels."""
    classes, legend = colour_classes(table, color)
    box = view_box(table, filters, layout)
    x0, x1, y0, y1 = box
    located, params = _located(table, filters, box, classes)
    with table.cursor() as cursor:
        points = cursor.execute(f"SELECT x, y, {CLASS} FROM ({located})", params).fetchnumpy()
    # (n,) each, in the table's fixed pseudo-random order (FrameTable): a dataset sorted by label does not
    # paint one label over all the others
    xs, ys = np.asarray(points["x"], dtype=float), np.asarray(points["y"], dtype=float)
    klass = np.asarray(points[CLASS], dtype=np.int64)
    image_width, image_height = width * IMAGE_SCALE, height * IMAGE_SCALE
    columns = np.floor((xs - x0) / (x1 - x0) * image_width).astype(np.int64).clip(0, image_width - 1)
    rows = np.floor((y1 - ys) / (y1 - y0) * image_height).astype(np.int64).clip(0, image_height - 1)  # y up
    # a class's ink is its colour's place among the distinct colours (+ 1): the hues repeat after ten categories,
    # so a column with thousands of values still needs a dozen inks, well inside a byte and a PNG palette
    colours = sorted({entry.colour for entry in legend})
    inks = np.array([colours.index(entry.colour) + 1 for entry in legend], dtype=np.uint8)  # (classes,)
    image = draw_points(columns, rows, inks[klass], width=image_width, height=image_height,
                        radius=dot_radius(len(xs)))
    cells = hover_cells(table, located, params, color=color, legend=legend, box=box, width=width, height=height)
    counts = np.bincount(klass, minlength=len(legend))  # (classes,)
    present = tuple(entry for entry, count in zip(legend, counts) if count)
    return Raster(image_url=png_data_url(image, colours), box=box, cells=cells, legend=present,
                  legend_title=color.label, n_points=len(xs), width=width, height=height)


def zoom_box(selection, raster: Raster) -> tuple[float, float, float, float] | None:
    """The box dragged on a raster's chart, as (x0, x1, y0, y1) in layout units, from the chart's interval
    selection (``{"x0": [a, b], "y0": [c, d]}``: the cells' fields, :func:`t3vis.charts.raster_projection_spec`);
    None when there is no box, when it is narrower than two cells either way (a click that moved a little
    while the button was down) or when no point lies in it (a box in the margin)."""
    if not isinstance(selection, dict) or not {"x0", "y0"} <= set(selection):
        return None
    try:
        x0, x1 = sorted(float(value) for value in selection["x0"])
        y0, y1 = sorted(float(value) for value in selection["y0"])
    except (TypeError, ValueError):
        return None
    bx0, bx1, by0, by1 = raster.box
    if x1 - x0 < 2 * CELL_PX * (bx1 - bx0) / raster.width or y1 - y0 < 2 * CELL_PX * (by1 - by0) / raster.height:
        return None
    cells = raster.cells
    if not ((cells.x1 > x0) & (cells.x0 < x1) & (cells.y1 > y0) & (cells.y0 < y1)).any():
        return None
    return x0, x1, y0, y1


def selected_point(table: FrameTable, filters: Sequence[Filter], box: tuple[float, float, float, float],
                   example_id: int | None) -> pd.DataFrame:
    """x, y of the selected example (one row), or no row when none is selected or it is not drawn (filtered
    out, or outside ``box``, the raster's region)."""
    if example_id is None:
        return pd.DataFrame({"x": [], "y": []})
    located, params = _located(table, filters, box, "0")
    first = ", ".join(quote_identifier(column) for column in table.order)  # a document's first sentence, say
    return table.query(f"SELECT x, y FROM ({located}) WHERE example_id = ? ORDER BY {first} LIMIT 1",
                       [*params, int(example_id)])


def _located(table: FrameTable, filters: Sequence[Filter], box: tuple[float, float, float, float],
             classes: str) -> tuple[str, list]:
    """SQL of the rows passing the filters inside ``box``, with their row id and colour class, and its
    parameters."""
    where, params = table.where(filters)
    x0, x1, y0, y1 = box
    return (f"SELECT *, {classes} AS {CLASS} FROM (SELECT *, rowid AS {ROW} FROM frame{where}) "
            f"WHERE x BETWEEN {x0!r} AND {x1!r} AND y BETWEEN {y0!r} AND {y1!r}"), params


def hover_cells(table: FrameTable, located: str, params: list, *, color: Attribute, legend: list[LegendEntry],
                box: tuple[float, float, float, float], width: int, height: int) -> pd.DataFrame:
    """One row per occupied :data:`CELL_PX` cell: its rectangle in layout units, its count, its colour summary
    (``colour``: the most common class, ties to the first, or the mean; ``share`` of that class) and the
    example nearest its centre, with that example's id, label, prediction and text start."""
    x0, x1, y0, y1 = box
    across, down = max(1, width // CELL_PX), max(1, height // CELL_PX)
    cell_x, cell_y = (x1 - x0) / across, (y1 - y0) / down
    gx = f"least(floor((x - {x0!r}) / {cell_x!r}), {across - 1})::INTEGER"
    gy = f"least(floor((y - {y0!r}) / {cell_y!r}), {down - 1})::INTEGER"
    # squared distance to the cell's centre, in cell units (a cell's nearest example: what a click selects)
    distance = (f"pow((x - {x0!r}) / {cell_x!r} - ({CELL_X} + 0.5), 2) + "
                f"pow((y - {y0!r}) / {cell_y!r} - ({CELL_Y} + 0.5), 2)")
    binned = f"SELECT *, {gx} AS {CELL_X}, {gy} AS {CELL_Y} FROM ({located})"
    nearest = (f"SELECT {CELL_X} AS gx, {CELL_Y} AS gy, count(*) AS n, "
               f"arg_min({ROW}, ({distance}, {ROW})) AS {ROW} FROM binned GROUP BY ALL")
    if color.kind == "continuous":
        column = quote_identifier(color.name)
        summary = (f"SELECT {CELL_X} AS gx, {CELL_Y} AS gy, avg({column}) AS mean_value, NULL AS share "
                   f"FROM binned GROUP BY ALL")
    else:
        summary = (f"SELECT gx, gy, NULL AS mean_value, first(klass ORDER BY k DESC, klass) AS klass, "
                   f"max(k) / sum(k) AS share FROM (SELECT {CELL_X} AS gx, {CELL_Y} AS gy, {CLASS} AS klass, "
                   f"count(*) AS k FROM binned GROUP BY ALL) GROUP BY ALL")
    described = [f"CAST({quote_identifier(name)} AS VARCHAR) AS {name}" if name in table.columns else
                 f"NULL AS {name}" for name in ("label", "prediction")]
    text = (f"replace(left(text, {TEXT_CHARS}), chr(10), ' ')" if "text" in table.columns else "NULL")
    sql = (f"WITH binned AS ({binned}), nearest AS ({nearest}), summary AS ({summary}), "
           f"described AS (SELECT rowid AS {ROW}, example_id, {', '.join(described)}, {text} AS text "
           f"FROM frame WHERE rowid IN (SELECT {ROW} FROM nearest)) "
           f"SELECT nearest.*, summary.* EXCLUDE (gx, gy), described.* EXCLUDE ({ROW}) FROM nearest "
           f"JOIN summary USING (gx, gy) JOIN described USING ({ROW}) ORDER BY gx, gy")
    found = table.query(sql, params)
    cells = pd.DataFrame({
        "x0": x0 + found.gx * cell_x, "x1": x0 + (found.gx + 1) * cell_x,
        "y0": y0 + found.gy * cell_y, "y1": y0 + (found.gy + 1) * cell_y,
        "n": found.n.astype(int), "example_id": found.example_id.astype(int),
    })
    if color.kind == "continuous":
        cells["colour"] = [("missing" if pd.isna(value) else f"{value:.3g}") for value in found.mean_value]
        cells["share"] = np.nan
    else:
        cells["colour"] = [legend[int(k)].label for k in found.klass]
        cells["share"] = found.share.astype(float)
    for name in ("label", "prediction", "text"):
        cells[name] = found[name].astype("string").fillna("")
    return cells
