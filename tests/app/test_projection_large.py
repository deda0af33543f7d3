"""The Projection page's large views, driven with AppTest: the rasterised view (the default), the WebGL point
cloud (when switched on), the zoom and the paged table."""

from __future__ import annotations

import pytest

from helpers import PROJECT
from page_helpers import chart_with, deck_charts, deck_points, open_page, raster_charts
from t3vis import charts
from t3vis.charts import point_cloud
from t3vis.fixtures.synthetic_store import SyntheticConfig, build_synthetic_store
from t3vis_app import point_cloud_view
from t3vis_app.point_cloud_view import LARGE_VIEW, RASTER_ABOVE, TABLE_PAGE_ROWS

PAGE = str(PROJECT / "pages" / "projection.py")
N = LARGE_VIEW + 1_000


@pytest.fixture(scope="module")
def large(tmp_path_factory):
    path = tmp_path_factory.mktemp("large") / "large.duckdb"
    return build_synthetic_store(path, SyntheticConfig(n_examples=N, n_train=N, n_checkpoints=2, layers=(6,)))


@pytest.fixture()
def webgl(monkeypatch):
    """Draw this test's views with WebGL, every point (by default WebGL is off)."""
    monkeypatch.setattr(point_cloud, "WEBGL_THRESHOLD", 100)


def open_large(store_path, **state):
    """The page as the browser shows it a moment after its first draw, with its Data table: the rerun that the
    deferred table's timer asks for (:mod:`t3vis_app.deferred`; AppTest runs no timers)."""
    return open_page(PAGE, store_path, **state).run()


def _widget(app, kind: str, key: str):
    return next(widget for widget in getattr(app, kind) if widget.key == key)


def test_a_large_view_is_drawn_as_one_image_with_hover_cells_and_a_paged_table(large):
    app = open_large(large.path)
    assert not app.exception and not deck_charts(app)
    assert not chart_with(app, "pick")  # no scatter plot of every point (its selection is at the top)
    [(spec, datasets)] = raster_charts(app)
    assert datasets["image"].url[0].startswith("data:image/png;base64,")
    cells = datasets["cells"]
    assert cells.n.sum() == N and len(cells) < N  # every point counted once, in far fewer marks
    assert set(cells.example_id) <= set(range(N))
    assert {param["name"] for param in spec["layer"][1]["params"]} >= {charts.PICK, charts.BOX}
    labels = [button.label for button in app.get("download_button")]
    assert labels.count("SVG") == labels.count("PNG") == 1
    assert any("drawn as one image" in caption.value for caption in app.caption)
    assert app.dataframe[0].value.example_id.tolist() == list(range(TABLE_PAGE_ROWS))
    _widget(app, "number_input", "w.table_page").set_value(2).run()
    assert app.dataframe[0].value.example_id.tolist() == list(range(TABLE_PAGE_ROWS, 2 * TABLE_PAGE_ROWS))


def test_a_fresh_page_draws_the_image_first_and_the_cells_and_table_on_the_rerun_a_moment_later(large):
    app = open_page(PAGE, large.path)  # the first run of a browser session
    assert not app.exception
    [(spec, datasets)] = raster_charts(app)  # the image of every point, with no hover cells yet
    assert datasets["cells"].empty and datasets["image"].url[0].startswith("data:image/png;base64,")
    assert not app.dataframe and not app.number_input  # neither the table nor its pager yet
    assert any("hover and click, follow in a moment" in caption.value for caption in app.caption)
    assert "Download the filtered rows (CSV)" not in [button.label for button in app.get("download_button")]
    app.run()  # what the fragment's timer asks for: the whole app again
    [(later_spec, later)] = raster_charts(app)
    assert later_spec == spec, "the same chart: only its data changes, the browser does not draw it anew"
    assert {param["name"] for param in spec["layer"][1]["params"]} >= {charts.PICK, charts.BOX}
    assert later["image"].url[0] == datasets["image"].url[0] and later["cells"].n.sum() == N
    assert not app.exception and app.dataframe[0].value.example_id.tolist() == list(range(TABLE_PAGE_ROWS))
    assert not any("in a moment" in caption.value for caption in app.caption)
    assert "Download the filtered rows (CSV)" in [button.label for button in app.get("download_button")]
    _widget(app, "selectbox", "w.color").set_value("prediction").run()  # any later run draws it at once
    assert app.dataframe[0].value.example_id.tolist() == list(range(TABLE_PAGE_ROWS))


def test_a_zoom_sets_the_x_and_y_filters_and_reset_removes_them(large, monkeypatch):
    monkeypatch.setattr(point_cloud_view, "RASTER_ABOVE", 1_000)  # the zoomed region is drawn as an image too
    app = open_large(large.path)
    [(_, datasets)] = raster_charts(app)
    cells = datasets["cells"]
    x0, x1 = float(cells.x0.min()), float(cells.x1.max())
    y0, y1 = float(cells.y0.min()), float(cells.y1.max())
    box = (x0 + (x1 - x0) * 0.1, x0 + (x1 - x0) * 0.6, y0 + (y1 - y0) * 0.1, y0 + (y1 - y0) * 0.9)  # as dragged
    app.session_state["pending_zoom"] = box
    app.run()
    assert not app.exception
    assert _widget(app, "slider", "w.filter.x").value == pytest.approx(box[:2])
    assert _widget(app, "slider", "w.filter.y").value == pytest.approx(box[2:])
    [(spec, datasets)] = raster_charts(app)
    assert spec["layer"][0]["encoding"]["x"]["scale"]["domain"] == pytest.approx(list(box[:2]))  # the zoom's scale
    shown = next(caption.value for caption in app.caption if "pass the filters" in caption.value)
    assert int(shown.split(" of ")[0].replace(",", "")) == datasets["cells"].n.sum() < N
    next(button for button in app.button if button.key == "reset_zoom").click().run()
    assert not app.exception
    assert "x" not in _widget(app, "multiselect", "w.filter_on").value
    [(_, datasets)] = raster_charts(app)
    assert datasets["cells"].n.sum() == N


def test_zoomed_in_to_a_few_points_vega_draws_each_one(large):
    app = open_large(large.path)
    [(_, datasets)] = raster_charts(app)
    cells = datasets["cells"]
    x0, x1 = float(cells.x0.min()), float(cells.x1.max())
    y0, y1 = float(cells.y0.min()), float(cells.y1.max())
    app.session_state["pending_zoom"] = (x0, x0 + (x1 - x0) * 0.3, y0, y1)
    app.run()
    assert not app.exception and not raster_charts(app)
    [(_, data)] = chart_with(app, "pick")
    assert 0 < len(data) <= RASTER_ABOVE and (data.x <= x0 + (x1 - x0) * 0.3 + 1e-9).all()


def test_the_rasterised_view_rings_the_selected_example_and_compares_side_by_side(large):
    app = open_large(large.path, split="validation", example_id=42, compare=True)
    assert not app.exception
    (left, left_data), (right, right_data) = raster_charts(app)
    assert len(left_data["selected"]) == len(right_data["selected"]) == 1
    assert left_data["cells"].n.sum() == right_data["cells"].n.sum() == N
    assert charts.BOX in {param["name"] for param in left["layer"][1]["params"]}
    assert charts.BOX not in {param["name"] for param in right["layer"][1]["params"]}  # x, y are the left's
    assert app.dataframe[0].value.selected.sum() == 1


def test_a_large_view_is_drawn_with_webgl_and_its_table_is_paged(large, webgl):
    app = open_large(large.path)
    assert not app.exception
    assert not chart_with(app, "pick")  # no Vega scatter plot
    [spec] = deck_charts(app)
    points = deck_points(spec)
    assert len(points) == N and sorted(points.i) == list(range(N))
    labels = [button.label for button in app.get("download_button")]
    assert labels.count("SVG") == labels.count("PNG") == 1  # the WebGL chart exports as a figure too
    table = app.dataframe[0].value
    assert table.example_id.tolist() == list(range(TABLE_PAGE_ROWS))  # one page, not N rows
    _widget(app, "number_input", "w.table_page").set_value(3).run()
    assert app.dataframe[0].value.example_id.tolist() == list(range(2 * TABLE_PAGE_ROWS, 3 * TABLE_PAGE_ROWS))


def test_a_filter_narrows_the_point_cloud_and_the_table_in_sql(large, webgl):
    app = open_large(large.path)
    _widget(app, "multiselect", "w.filter_on").set_value(["label", "x"]).run()
    _widget(app, "multiselect", "w.filter.label").set_value(["sports"]).run()
    [spec] = deck_charts(app)
    points = deck_points(spec)
    assert len(points) > 0 and set(points.v) == {"sports"}  # coloured by label: the tooltip's value
    shown = next(caption.value for caption in app.caption if "pass the filters" in caption.value)
    assert shown.startswith(f"{len(points):,} of {N:,}")
    _, high = _widget(app, "slider", "w.filter.x").value
    middle = float(points.x.median())  # keep the right half of the sports points
    _widget(app, "slider", "w.filter.x").set_value((middle, high)).run()
    narrowed = deck_points(deck_charts(app)[0])
    assert 0 < len(narrowed) < len(points) and (narrowed.x >= middle - 1e-3).all()
    assert set(app.dataframe[0].value.label) == {"sports"}


def test_the_selected_example_is_ringed_and_the_data_map_is_webgl_too(large, webgl):
    app = open_large(large.path, split="validation", example_id=42)
    [spec] = deck_charts(app)
    [ring] = [layer for layer in spec["layers"] if layer["id"] == "selected"]
    points = deck_points(spec).set_index("i")
    assert ring["data"][0]["p"] == pytest.approx([points.x[42], points.y[42]], abs=1e-3)
    assert app.dataframe[0].value.selected.sum() == 1  # ticked in the table's first page
    options = _widget(app, "selectbox", "w.layout_choice").options
    data_map = next(option for option in options if option.startswith("Data Map"))
    _widget(app, "selectbox", "w.layout_choice").set_value(data_map).run()
    assert not app.exception
    [spec] = deck_charts(app)
    assert len(deck_points(spec)) == N
    [titles] = [layer for layer in spec["layers"] if layer["id"] == "axis-titles"]
    assert "variability" in titles["data"][0]["s"] and "confidence" in titles["data"][1]["s"]


def test_above_the_points_limit_the_cloud_is_binned_and_says_so(large, webgl, monkeypatch):
    monkeypatch.setattr(point_cloud, "POINTS_LIMIT", 2_000)
    app = open_page(PAGE, large.path)
    cells = deck_points(deck_charts(app)[0])
    assert 0 < len(cells) < N and cells.n.sum() == N  # every point counted in one cell
    assert any("one dot per occupied cell" in caption.value for caption in app.caption)


def test_comparison_draws_two_point_clouds(large, webgl):
    app = open_page(PAGE, large.path, compare=True)
    assert not app.exception
    left, right = deck_charts(app)
    assert len(deck_points(left)) == len(deck_points(right)) == N


def test_the_data_map_of_a_large_split_is_an_image_on_its_fixed_axes(large):
    app = open_page(PAGE, large.path)
    options = _widget(app, "selectbox", "w.layout_choice").options
    data_map = next(option for option in options if option.startswith("Data Map"))
    _widget(app, "selectbox", "w.layout_choice").set_value(data_map).run()
    assert not app.exception
    [(spec, datasets)] = raster_charts(app)
    image = spec["layer"][0]["encoding"]
    assert image["x"]["scale"]["domain"] == [0.0, 0.5] and image["x"]["title"].startswith("variability")
    assert image["y"]["scale"]["domain"] == [0.0, 1.0] and image["y"]["title"].startswith("confidence")
    assert datasets["cells"].n.sum() == N
    _widget(app, "selectbox", "w.color").set_value("region").run()
    [(_, datasets)] = raster_charts(app)
    regions = {"easy-to-learn", "ambiguous", "hard-to-learn", "other"}
    assert set(datasets["cells"].colour.str.replace(r" \(\d+%\)$", "", regex=True)) <= regions
