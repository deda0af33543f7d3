"""The rasterised projection: every point painted in its colour, hover cells that count and pick the right example."""

from __future__ import annotations

import base64
import io

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from t3vis import charts
from t3vis.charts import point_raster
from t3vis.charts.point_cloud import BLUES, MISSING_COLOUR, SHADES, TABLEAU10, view_box
from t3vis.queries.explore import Attribute, RangeFilter, ValuesFilter
from t3vis.queries.frame_table import FrameTable

LABEL = Attribute("label", "label", "categorical")
LOSS = Attribute("loss", "loss", "continuous")
NAMES = ["neg", "neu", "pos"]
WIDTH, HEIGHT = 200, 120  # screen pixels of the test's plot


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    n = 6_000
    labels = np.sort(rng.integers(0, len(NAMES), n))  # sorted by label, as some datasets are
    loss = rng.gamma(2.0, 0.5, n)
    loss[:4] = np.nan
    return pd.DataFrame({
        "example_id": np.arange(n), "x": rng.normal(size=n) * 10 + labels * 15, "y": rng.normal(size=n) * 10,
        "label": np.array(NAMES)[labels], "prediction": np.array(NAMES)[(labels + (rng.random(n) < 0.2)) % 3],
        "loss": loss, "text": [f"text {i}\nsecond line" for i in range(n)],
    })


@pytest.fixture(scope="module")
def table(frame) -> FrameTable:
    return FrameTable(frame, [LABEL, LOSS])


def decode(url: str) -> np.ndarray:
    assert url.startswith("data:image/png;base64,")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGBA"))


def rgba(hex_colour: str) -> tuple[int, int, int, int]:
    return tuple(int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)) + (255,)


def pixel_of(raster, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(column, row) in the image of layout points, as the raster places them."""
    x0, x1, y0, y1 = raster.box
    width, height = raster.width * point_raster.IMAGE_SCALE, raster.height * point_raster.IMAGE_SCALE
    column = np.floor((x - x0) / (x1 - x0) * width).astype(int).clip(0, width - 1)
    row = np.floor((y1 - y) / (y1 - y0) * height).astype(int).clip(0, height - 1)
    return column, row


def test_draw_points_paints_discs_in_order_without_wrapping_at_the_edges():
    image = point_raster.draw_points(np.array([5, 6, 0]), np.array([5, 5, 9]), np.array([1, 2, 3], np.uint8),
                                     width=20, height=10, radius=2.0)
    assert image.shape == (10, 20) and image.dtype == np.uint8
    assert image[5, 6] == 2  # the later point is on top where both discs overlap
    assert image[5, 3] == 1  # the first disc shows where the second does not reach
    assert image[3, 5] == 1 and image[2, 5] == 0  # radius 2, not 3
    assert image[9, 0] == 3 and image[9, 2] == 3
    assert image[:, 18:].max() == 0  # the disc at column 0 does not spill into the other side of the image
    painted = image > 0  # exactly the discs' pixels inside the image, nothing else
    expected = set()
    for cx, cy in ((5, 5), (6, 5), (0, 9)):
        expected |= {(cy + dy, cx + dx) for dx, dy in point_raster.disc_offsets(2.0)
                     if 0 <= cx + dx < 20 and 0 <= cy + dy < 10}
    assert set(zip(*np.nonzero(painted))) == expected


def test_the_png_has_the_inks_colours_and_is_transparent_elsewhere():
    inks = np.array([[0, 1], [2, 1]], np.uint8)
    decoded = decode(point_raster.png_data_url(inks, ["#4c78a8", "#f58518"]))
    assert decoded[0, 0, 3] == 0
    assert tuple(decoded[0, 1]) == rgba("#4c78a8") == tuple(decoded[1, 1])
    assert tuple(decoded[1, 0]) == rgba("#f58518")


def test_every_point_is_painted_in_a_colour_of_the_legend(table, frame):
    raster = point_raster.point_raster(table, (), color=LABEL, layout="tsne", width=WIDTH, height=HEIGHT)
    image = decode(raster.image_url)
    assert image.shape == (HEIGHT * point_raster.IMAGE_SCALE, WIDTH * point_raster.IMAGE_SCALE, 4)
    assert raster.n_points == len(frame)
    column, row = pixel_of(raster, frame.x.to_numpy(), frame.y.to_numpy())
    assert (image[row, column, 3] == 255).all()  # no point is left out
    palette = {rgba(TABLEAU10[i]) for i in range(len(NAMES))}
    colours = {tuple(pixel) for pixel in image[image[..., 3] > 0]}
    assert colours == palette  # every class shows, and nothing but the classes' colours
    assert [entry.label for entry in raster.legend] == NAMES


def test_the_draw_order_is_mixed_so_a_sorted_dataset_does_not_paint_one_label_on_top(table, frame):
    # the frame is sorted by label: drawn in id order, "pos" would cover every overlap
    scanned = table.query("SELECT example_id FROM frame").example_id.to_numpy()
    assert sorted(scanned) == list(range(len(frame))) and (scanned != np.arange(len(frame))).any()
    assert table.rows(columns=["example_id"]).example_id.tolist() == list(range(len(frame)))  # pages stay by id
    raster = point_raster.point_raster(table, (), color=LABEL, layout="tsne", width=WIDTH, height=HEIGHT)
    image = decode(raster.image_url)
    neu = frame[frame.label == "neu"]
    column, row = pixel_of(raster, neu.x.to_numpy(), neu.y.to_numpy())
    shown = [tuple(pixel) for pixel in image[row, column]]
    assert shown.count(rgba(TABLEAU10[1])) > 0.5 * len(neu)  # "neu" (drawn before "pos" in id order) stays visible


def test_filters_and_a_zoom_decide_what_is_drawn(table, frame):
    kept = (ValuesFilter("label", ("neg", "pos")), RangeFilter("x", -5.0, 20.0), RangeFilter("y", -8.0, 8.0))
    raster = point_raster.point_raster(table, kept, color=LABEL, layout="tsne", width=WIDTH, height=HEIGHT)
    assert raster.box == (-5.0, 20.0, -8.0, 8.0)  # the zoom is the x and y ranges
    inside = frame[frame.label.isin(["neg", "pos"]) & frame.x.between(-5, 20) & frame.y.between(-8, 8)]
    assert raster.n_points == len(inside) == raster.cells.n.sum()
    image = decode(raster.image_url)
    colours = {tuple(pixel) for pixel in image[image[..., 3] > 0]}
    assert rgba(TABLEAU10[1]) not in colours  # "neu" is filtered out
    assert [entry.label for entry in raster.legend] == ["neg", "pos"]


def test_a_cell_counts_its_points_and_picks_the_example_nearest_its_centre(table, frame):
    raster = point_raster.point_raster(table, (), color=LABEL, layout="tsne", width=WIDTH, height=HEIGHT)
    cells = raster.cells
    assert cells.n.sum() == len(frame)
    x0, x1, y0, y1 = raster.box
    across, down = WIDTH // point_raster.CELL_PX, HEIGHT // point_raster.CELL_PX
    gx = np.minimum(np.floor((frame.x - x0) / ((x1 - x0) / across)), across - 1).astype(int)
    gy = np.minimum(np.floor((frame.y - y0) / ((y1 - y0) / down)), down - 1).astype(int)
    by_cell = frame.assign(gx=gx, gy=gy)
    for cell in cells.sample(40, random_state=0).itertuples():
        cx, cy = int(round((cell.x0 - x0) / ((x1 - x0) / across))), int(round((cell.y0 - y0) / ((y1 - y0) / down)))
        members = by_cell[(by_cell.gx == cx) & (by_cell.gy == cy)]
        assert cell.n == len(members)
        distance = (((members.x - x0) / ((x1 - x0) / across) - (cx + 0.5)) ** 2
                    + ((members.y - y0) / ((y1 - y0) / down) - (cy + 0.5)) ** 2)
        nearest = members.loc[distance.idxmin()]
        assert cell.example_id == nearest.example_id
        assert cell.label == nearest.label and cell.prediction == nearest.prediction
        assert cell.text == nearest.text.replace("\n", " ")[:point_raster.TEXT_CHARS]
        counts = members.label.value_counts()
        top = sorted(counts[counts == counts.max()].index)[0]  # ties go to the first class
        assert cell.colour == top and cell.share == pytest.approx(counts.max() / len(members))


def test_a_number_is_shaded_and_a_cell_shows_its_mean(table, frame):
    raster = point_raster.point_raster(table, (), color=LOSS, layout="tsne", width=WIDTH, height=HEIGHT)
    image = decode(raster.image_url)
    colours = {tuple(pixel) for pixel in image[image[..., 3] > 0]}
    assert colours <= {rgba(colour) for colour in BLUES} | {rgba(MISSING_COLOUR)}
    assert len(colours) >= SHADES - 2
    assert raster.cells.share.isna().all()
    x0, x1, y0, y1 = raster.box
    biggest = raster.cells.loc[raster.cells.n.idxmax()]
    members = frame[frame.x.between(biggest.x0, biggest.x1, inclusive="left")
                    & frame.y.between(biggest.y0, biggest.y1, inclusive="left")]
    assert float(biggest.colour) == pytest.approx(members.loss.mean(), rel=1e-2)


def test_the_selected_example_is_ringed_only_when_it_is_drawn(table, frame):
    whole = view_box(table, (), "tsne")
    chosen = point_raster.selected_point(table, (), whole, 17)
    assert chosen.x.tolist() == [frame.x[17]] and chosen.y.tolist() == [frame.y[17]]
    other = frame.label[17]
    assert point_raster.selected_point(table, (ValuesFilter("label", tuple(set(NAMES) - {other})),), whole,
                                       17).empty
    assert point_raster.selected_point(table, (), whole, None).empty


def test_the_spec_offers_hover_click_and_a_zoom_box(table):
    raster = point_raster.point_raster(table, (), color=LABEL, layout="tsne", width=WIDTH, height=HEIGHT)
    selected = point_raster.selected_point(table, (), raster.box, 3)
    spec = charts.raster_projection_spec(raster, layout="tsne", layer=6, selected=selected, title="t")
    image, cells, ring = spec["layer"]
    assert spec["width"] == WIDTH and spec["height"] == HEIGHT
    assert spec["datasets"]["image"].url[0] == raster.image_url
    assert {param["name"] for param in cells["params"]} == {charts.HOVER, charts.PICK, charts.BOX}
    assert len(spec["datasets"]["cells"]) == len(raster.cells)
    assert spec["datasets"]["selected"].x0.tolist() == selected.x.tolist()
    assert image["encoding"]["x"]["scale"]["domain"] == list(raster.box[:2])
    fixed = charts.raster_projection_spec(raster, layout="tsne", layer=6, zoomable=False)
    assert charts.BOX not in {param["name"] for param in fixed["layer"][1]["params"]}
    assert fixed["datasets"]["selected"].empty


def test_the_first_draw_spec_is_the_same_chart_with_no_cells_yet(table):
    """A fresh browser's first draw (t3vis_app/deferred.py): the same spec with an empty cells dataset, so that
    the next run only changes the chart's data; rendered by Vega (vl-convert) it is the same picture."""
    import json

    import vl_convert

    raster = point_raster.point_raster(table, (), color=LABEL, layout="tsne", width=WIDTH, height=HEIGHT)
    selected = point_raster.selected_point(table, (), raster.box, 3)
    full = charts.raster_projection_spec(raster, layout="tsne", layer=6, selected=selected, title="t")
    first = charts.raster_projection_spec(raster, layout="tsne", layer=6, selected=selected, title="t",
                                          interactive=False)
    assert {key: value for key, value in first.items() if key != "datasets"} == {
        key: value for key, value in full.items() if key != "datasets"}
    assert first["datasets"]["cells"].empty and len(full["datasets"]["cells"]) == len(raster.cells) > 0
    assert list(first["datasets"]["cells"].columns) == list(full["datasets"]["cells"].columns)
    for name in ("image", "selected"):
        pd.testing.assert_frame_equal(first["datasets"][name], full["datasets"][name])

    def picture(spec: dict) -> np.ndarray:
        spec = {**spec, "datasets": {name: rows.to_dict(orient="records") for name, rows in spec["datasets"].items()}}
        return np.asarray(Image.open(io.BytesIO(vl_convert.vegalite_to_png(json.dumps(spec), scale=1)))
                          .convert("RGB")).astype(int)

    shown, interactive = picture(first), picture(full)
    assert shown.shape == interactive.shape
    assert np.abs(shown - interactive).max() <= 3  # the cells are transparent until hovered


def test_vega_places_the_image_the_right_way_up():
    """Rendered by vl-convert (Vega itself): the point at the top left of the layout is drawn top left."""
    import json

    import vl_convert

    two = pd.DataFrame({"example_id": [0, 1], "x": [0.0, 10.0], "y": [10.0, 0.0], "label": ["neg", "pos"],
                        "prediction": ["neg", "pos"], "text": ["a", "b"]})
    raster = point_raster.point_raster(FrameTable(two, [LABEL]), (), color=LABEL, layout="tsne", width=100, height=80)
    spec = charts.raster_projection_spec(raster, layout="tsne", layer=1)
    spec["datasets"] = {name: rows.to_dict(orient="records") for name, rows in spec["datasets"].items()}
    image = np.asarray(Image.open(io.BytesIO(vl_convert.vegalite_to_png(json.dumps(spec), scale=1))).convert("RGB"))
    centres = {}
    for name, colour in (("neg", TABLEAU10[0]), ("pos", TABLEAU10[1])):
        rows, columns = np.nonzero(np.abs(image.astype(int) - rgba(colour)[:3]).sum(-1) < 60)
        assert len(rows) > 0, f"{name} is not drawn"
        centres[name] = (columns.mean(), rows.mean())
    assert centres["neg"][0] < centres["pos"][0] and centres["neg"][1] < centres["pos"][1]  # (0, 10) above (10, 0)


def test_a_column_with_hundreds_of_values_colours_with_the_repeating_hues(frame):
    many = frame.assign(topic=[f"topic {i % 300}" for i in range(len(frame))])
    topic = Attribute("topic", "topic", "categorical")
    raster = point_raster.point_raster(FrameTable(many, [topic]), (), color=topic, layout="tsne", width=WIDTH,
                                       height=HEIGHT)
    image = decode(raster.image_url)
    column, row = pixel_of(raster, many.x.to_numpy(), many.y.to_numpy())
    assert (image[row, column, 3] == 255).all()  # no class wraps round to transparent
    assert {tuple(pixel) for pixel in image[image[..., 3] > 0]} <= {rgba(colour) for colour in TABLEAU10}
    assert len(raster.legend) == 300


def test_a_dragged_box_zooms_only_when_it_is_a_box_over_points(table):
    raster = point_raster.point_raster(table, (), color=LABEL, layout="tsne", width=WIDTH, height=HEIGHT)
    x0, x1, y0, y1 = raster.box
    middle = raster.cells.loc[raster.cells.n.idxmax()]
    wide, tall = (x1 - x0) / 4, (y1 - y0) / 4
    box = {"x0": [float(middle.x0) + wide, float(middle.x0) - wide], "y0": [float(middle.y0) - tall,
                                                                          float(middle.y0) + tall]}
    assert point_raster.zoom_box(box, raster) == pytest.approx(
        (middle.x0 - wide, middle.x0 + wide, middle.y0 - tall, middle.y0 + tall))  # corners in order
    cell_width = (x1 - x0) * point_raster.CELL_PX / WIDTH
    nudge = {"x0": [float(middle.x0), float(middle.x0) + cell_width], "y0": box["y0"]}
    assert point_raster.zoom_box(nudge, raster) is None  # a click that moved a little
    margin = {"x0": [x0 - 3 * wide, x0 - wide], "y0": box["y0"]}
    assert point_raster.zoom_box(margin, raster) is None  # no point in it
    assert point_raster.zoom_box({}, raster) is None and point_raster.zoom_box([], raster) is None
    assert point_raster.zoom_box({"x0": ["a", None], "y0": [1, 2]}, raster) is None
