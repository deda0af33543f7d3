"""The WebGL point cloud's data and the in-memory frame table: every point once, in its colour, filters in SQL."""

from __future__ import annotations

import base64
import csv
import io
import json
import math

import numpy as np
import pandas as pd
import pytest

from t3vis.charts import point_cloud
from t3vis.queries.explore import DATA_MAP, Attribute, RangeFilter, ValuesFilter, filter_frame
from t3vis.queries.explore import attribute_summary as explore_summary
from t3vis.queries.frame_table import FrameTable

LABEL = Attribute("label", "label", "categorical")
LOSS = Attribute("loss", "loss", "continuous")
KNOWN = [LABEL, LOSS]
NAMES = ["neg", 'say "hi", then go', "pos"]  # a quote and a comma must survive the CSV


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 3_000
    labels = rng.integers(0, len(NAMES), n)
    loss = rng.gamma(2.0, 0.5, n)
    loss[:5] = np.nan  # missing values get the grey class
    return pd.DataFrame({
        "example_id": rng.permutation(n),
        "x": rng.normal(size=n) * 10 + labels * 30,
        "y": rng.normal(size=n) * 10,
        "label": np.array(NAMES)[labels],
        "prediction": np.array(NAMES)[(labels + (rng.random(n) < 0.2)) % len(NAMES)],
        "loss": loss,
        "text": [f"text {i}, with\na line break and \"quotes\"" for i in range(n)],
    })


@pytest.fixture(scope="module")
def table(frame) -> FrameTable:
    return FrameTable(frame, KNOWN)


def layer_rows(cloud: point_cloud.PointCloud) -> dict[str, list[dict]]:
    """Each colour layer's rows, decoded from its CSV data URL."""
    spec = json.loads(cloud.deck.to_json())
    rows = {}
    for layer in spec["layers"]:
        if layer["id"].startswith(point_cloud.LAYER_PREFIX):
            prefix = "data:text/csv;base64,"
            assert layer["data"].startswith(prefix)
            text = base64.b64decode(layer["data"][len(prefix):]).decode("utf-8")
            rows[layer["id"]] = list(csv.DictReader(io.StringIO(text)))
    return rows


def colour_of_layer(cloud: point_cloud.PointCloud, layer_id: str) -> str:
    spec = json.loads(cloud.deck.to_json())
    [layer] = [layer for layer in spec["layers"] if layer["id"] == layer_id]
    return "#" + "".join(f"{channel:02x}" for channel in layer["getFillColor"][:3])


def test_frame_table_filters_count_and_pages_as_the_pandas_filter(frame, table):
    filters = (ValuesFilter("label", (NAMES[1], NAMES[2])), RangeFilter("loss", 0.2, 1.5))
    expected = filter_frame(frame, filters, KNOWN)
    assert table.count(filters) == len(expected) > 0
    page = table.rows(filters, offset=40, limit=25)
    assert page.example_id.tolist() == expected.example_id.tolist()[40:65]
    assert table.position(filters, int(expected.example_id.iloc[57])) == 57
    assert table.position(filters, int(frame.example_id[frame.label == NAMES[0]].iloc[0])) is None
    assert table.summary(LABEL) == tuple(sorted(NAMES))
    assert table.summary(LOSS) == pytest.approx((np.nanmin(frame.loss), np.nanmax(frame.loss)))


def test_layout_coordinates_are_filterable(frame, table):
    assert {"x", "y"} <= {attribute.name for attribute in table.known}
    region = (RangeFilter("x", 0.0, 20.0), RangeFilter("y", -5.0, 5.0))
    inside = frame[frame.x.between(0, 20) & frame.y.between(-5, 5)]
    assert table.count(region) == len(inside) > 0


def test_every_point_passing_the_filters_is_drawn_once_in_its_label_colour(frame, table):
    filters = (RangeFilter("loss", 0.0, 2.0),)
    expected = filter_frame(frame, filters, KNOWN)
    cloud = point_cloud.point_cloud(table, filters, color=LABEL, layout="tsne", axis_titles=("a", "b"))
    assert not cloud.binned and cloud.n_points == cloud.n_marks == len(expected)
    by_id = expected.set_index("example_id")
    legend = {entry.label: entry.colour for entry in cloud.legend}
    assert list(legend) == sorted(NAMES)  # the Altair chart's order: sorted categories
    seen = []
    for layer_id, rows in layer_rows(cloud).items():
        colour = colour_of_layer(cloud, layer_id)
        for row in rows:
            example = by_id.loc[int(row["i"])]
            assert legend[example.label] == colour
            assert row["v"] == example.label and row["r"] == example.prediction  # the tooltip's fields
            assert float(row["x"]) == pytest.approx(example.x, abs=1e-4)
            assert float(row["y"]) == pytest.approx(example.y, abs=1e-4)
            assert row["t"] == example.text[:point_cloud.TEXT_TOOLTIP_CHARS].replace("\n", " ")
            seen.append(int(row["i"]))
    assert sorted(seen) == sorted(expected.example_id)


def test_a_number_is_cut_into_equal_shades_and_missing_values_are_grey(frame, table):
    cloud = point_cloud.point_cloud(table, (), color=LOSS, layout="tsne", axis_titles=("a", "b"))
    low, high = np.nanmin(frame.loss), np.nanmax(frame.loss)
    width = (high - low) / point_cloud.SHADES
    loss_of = frame.set_index("example_id").loss
    for layer_id, rows in layer_rows(cloud).items():
        shade = int(layer_id.removeprefix(point_cloud.LAYER_PREFIX))
        for row in rows:
            loss = loss_of[int(row["i"])]
            if math.isnan(loss):
                assert shade == point_cloud.SHADES and colour_of_layer(cloud, layer_id) == point_cloud.MISSING_COLOUR
            else:
                assert shade == min(int((loss - low) // width), point_cloud.SHADES - 1)
                assert colour_of_layer(cloud, layer_id) == point_cloud.BLUES[shade]


def test_above_the_limit_points_are_binned_into_cells_with_their_count_and_most_common_label(frame, table):
    cloud = point_cloud.point_cloud(table, (), color=LABEL, layout="tsne", axis_titles=("a", "b"), points_limit=1000)
    assert cloud.binned and cloud.n_points == len(frame)
    x0, x1, y0, y1 = point_cloud.bounds(table, "tsne")
    gx = np.floor((frame.x - x0) / ((x1 - x0) / point_cloud.GRID[0])).astype(int)
    gy = np.floor((frame.y - y0) / ((y1 - y0) / point_cloud.GRID[1])).astype(int)
    cells = frame.assign(gx=gx, gy=gy).groupby(["gx", "gy"])
    rows = [row for layer in layer_rows(cloud).values() for row in layer]
    assert cloud.n_marks == len(rows) == cells.ngroups
    assert sum(int(row["n"]) for row in rows) == len(frame)
    first_of_cell = {int(group.example_id.min()): group for _, group in cells}
    for row in rows:
        group = first_of_cell[int(row["i"])]  # a click selects the cell's first example
        assert int(row["n"]) == len(group)
        counts = group.label.value_counts()
        assert counts[row["v"]] == counts.max()  # the cell's colour is its most common label


def test_the_selected_example_is_ringed_and_axes_follow_the_layout(frame, table):
    chosen = frame.iloc[10]
    cloud = point_cloud.point_cloud(table, (), color=LABEL, layout=DATA_MAP, axis_titles=("variability", "conf"),
                                    selected_id=int(chosen.example_id))
    spec = json.loads(cloud.deck.to_json())
    [ring] = [layer for layer in spec["layers"] if layer["id"] == "selected"]
    assert ring["data"] == [{"p": [chosen.x, chosen.y]}] and not ring["pickable"]
    [titles] = [layer for layer in spec["layers"] if layer["id"] == "axis-titles"]
    assert [row["s"] for row in titles["data"]] == ["variability", "conf"]
    [ticks] = [layer for layer in spec["layers"] if layer["id"] == "ticks"]
    assert [row["s"] for row in ticks["data"]][:3] == ["0", "0.1", "0.2"]  # the Data Map's fixed 0–0.5 axis
    # the initial view shows the Data Map's whole box inside a 900 x 460 canvas
    for x, y in ((0.0, 0.0), (0.5, 1.0)):
        sx, sy = point_cloud.screen_position(cloud.initial_view, x, y, width=900, height=460)
        assert 0 < sx < 900 and 0 < sy < 460
    assert spec["views"] == [{"@@type": "OrthographicView", "controller": True, "flipY": False}]


def test_nice_ticks_are_round_and_inside_the_range():
    assert point_cloud.nice_ticks(-47.3, 61.2) == [-40, -20, 0, 20, 40, 60]
    assert point_cloud.nice_ticks(0.0, 1.0) == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]


def test_a_dataset_column_named_like_a_computed_one_changes_nothing(frame):
    clashing = frame.assign(**{"class": "a string", "gx": "b", "gy": "c"})
    table = FrameTable(clashing, KNOWN)
    for limit in (None, 100):  # points, then binned cells
        cloud = point_cloud.point_cloud(table, (), color=LABEL, layout="tsne", axis_titles=("a", "b"),
                                        points_limit=limit)
        rows = [row for layer in layer_rows(cloud).values() for row in layer]
        assert sum(int(row.get("n", 1)) for row in rows) == len(frame)
        assert {entry.label for entry in cloud.legend} == set(NAMES)


def test_a_binned_cell_names_the_value_it_is_coloured_by_even_on_a_tie():
    tie = pd.DataFrame({"example_id": range(4), "x": [0.0, 0.0, 0.0, 0.0], "y": [0.0] * 4,
                        "label": ["b", "a", "a", "b"]})  # one cell, two labels twice each
    table = FrameTable(tie, [LABEL])
    cloud = point_cloud.point_cloud(table, (), color=LABEL, layout="tsne", axis_titles=("a", "b"), points_limit=1)
    [(layer_id, [row])] = layer_rows(cloud).items()
    legend = {entry.colour: entry.label for entry in cloud.legend}
    assert row["v"] == legend[colour_of_layer(cloud, layer_id)] and row["n"] == "4"


def test_true_and_false_filter_alike_in_small_and_large_views():
    frame = pd.DataFrame({"example_id": range(6), "x": range(6), "y": range(6),
                          "correct": [True, False, True, True, False, True]})
    correct = Attribute("correct", "correct", "categorical")
    summary = explore_summary(frame, correct)
    assert summary == FrameTable(frame, [correct]).summary(correct) == ("false", "true")
    kept = filter_frame(frame, (ValuesFilter("correct", ("true",)),), [correct])
    assert kept.example_id.tolist() == [0, 2, 3, 5]
    assert FrameTable(frame, [correct]).count((ValuesFilter("correct", ("true",)),)) == 4


def test_an_infinite_value_does_not_break_the_colour_scale(frame):
    infinite = frame.assign(loss=frame.loss.where(frame.index != 7, np.inf))
    table = FrameTable(infinite, KNOWN)
    assert math.isfinite(table.summary(LOSS)[1])
    cloud = point_cloud.point_cloud(table, (), color=LOSS, layout="tsne", axis_titles=("a", "b"))
    assert cloud.n_marks == len(frame)


def test_the_figure_of_a_cloud_draws_the_same_dots_in_the_same_colours(frame, table):
    """The export of a WebGL chart: every point (or every grid cell when binned), coloured as on screen."""
    filters = (ValuesFilter("label", ("neg", "pos")),)
    points = point_cloud.figure_points(table, filters, color=LABEL, layout="tsne")
    kept = frame[frame.label.isin(["neg", "pos"])]
    assert not points.binned and points.n_points == len(points.dots) == len(kept)
    merged = points.dots.merge(kept, on=["x", "y"])
    assert len(merged) == len(kept) and (merged.colour == merged.label).all()
    assert [entry.label for entry in points.legend] == ["neg", "pos"]
    cloud = point_cloud.point_cloud(table, filters, color=LABEL, layout="tsne", axis_titles=("a", "b"))
    on_screen = {entry.label: entry.colour for entry in cloud.legend}
    assert {entry.label: entry.colour for entry in points.legend} == on_screen

    binned = point_cloud.figure_points(table, (), color=LABEL, layout="tsne", points_limit=1000)
    screen = point_cloud.point_cloud(table, (), color=LABEL, layout="tsne", axis_titles=("a", "b"), points_limit=1000)
    cells = [row for layer in layer_rows(screen).values() for row in layer]
    assert binned.binned and len(binned.dots) == len(cells) and binned.dots.n.sum() == len(frame)
    assert sorted((round(float(r["x"]), 4), round(float(r["y"]), 4), r["v"]) for r in cells) == \
        sorted(zip(binned.dots.x.round(4), binned.dots.y.round(4), binned.dots.colour))


def test_a_zoomed_view_bins_the_zoomed_region_on_screen_and_in_its_figure(frame, table):
    """x and y range filters are a zoom: the grid cells cover the zoomed region, finer than the whole layout's."""
    x0, x1, y0, y1 = point_cloud.bounds(table, "tsne")
    zoom = (RangeFilter("x", x0 + (x1 - x0) * 0.2, x0 + (x1 - x0) * 0.6),
            RangeFilter("y", y0 + (y1 - y0) * 0.1, y0 + (y1 - y0) * 0.9))
    assert point_cloud.view_box(table, zoom, "tsne") == (zoom[0].low, zoom[0].high, zoom[1].low, zoom[1].high)
    assert point_cloud.view_box(table, (), "tsne") == (x0, x1, y0, y1)
    binned = point_cloud.figure_points(table, zoom, color=LABEL, layout="tsne", points_limit=100)
    inside = frame[frame.x.between(zoom[0].low, zoom[0].high) & frame.y.between(zoom[1].low, zoom[1].high)]
    assert binned.binned and binned.dots.n.sum() == len(inside)
    assert binned.dots.x.between(zoom[0].low, zoom[0].high).all()  # cells of the zoomed region's grid
    whole = point_cloud.figure_points(table, (), color=LABEL, layout="tsne", points_limit=100)
    assert len(binned.dots) > len(whole.dots[whole.dots.x.between(zoom[0].low, zoom[0].high)
                                             & whole.dots.y.between(zoom[1].low, zoom[1].high)])


def test_a_large_binned_view_gives_the_same_cells_and_colours_every_time():
    """DuckDB aggregates in parallel: cells come in any order and mode() breaks ties at random. The cells must be
    ordered and a tie must go to the first class, so that the screen and its figure agree, export after export."""
    rng = np.random.default_rng(1)
    n = 300_000
    frame = pd.DataFrame({"example_id": np.arange(n), "x": rng.random(n), "y": rng.random(n),
                          "label": np.array(NAMES)[rng.integers(0, len(NAMES), n)], "loss": rng.random(n)})
    table = FrameTable(frame, KNOWN)
    first = point_cloud.figure_points(table, (), color=LABEL, layout="tsne").dots
    for _ in range(3):
        pd.testing.assert_frame_equal(point_cloud.figure_points(table, (), color=LABEL, layout="tsne").dots, first)

    box = point_cloud.bounds(table, "tsne")
    classes, legend = point_cloud.colour_classes(table, LABEL)
    cells = point_cloud._binned_cells(table, classes, legend, LABEL, "", [], box)
    assert list(zip(cells.gx, cells.gy)) == sorted(zip(cells.gx, cells.gy))  # in order
    x0, x1, y0, y1 = box
    located = frame.assign(gx=np.floor((frame.x - x0) / ((x1 - x0) / point_cloud.GRID[0])).astype(int),
                           gy=np.floor((frame.y - y0) / ((y1 - y0) / point_cloud.GRID[1])).astype(int),
                           order=frame.label.map([entry.label for entry in legend].index))  # the class
    counts = located.groupby(["gx", "gy", "order"]).size().reset_index(name="k")
    expected = counts.sort_values(["gx", "gy", "k", "order"], ascending=[True, True, False, True]) \
        .drop_duplicates(["gx", "gy"])  # the most common label of each cell, a tie going to the first label
    assert (counts.groupby(["gx", "gy"]).k.transform("max") == counts.k).groupby(
        [counts.gx, counts.gy]).sum().gt(1).sum() > 100  # many cells have a tie
    assert cells["class"].tolist() == expected.order.tolist()
    assert cells.n.tolist() == counts.groupby(["gx", "gy"]).k.sum().tolist()
