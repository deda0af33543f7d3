"""The WebGL point cloud in a real headless Chromium: drawn, a tooltip on hover, a click selects the example."""

from __future__ import annotations

import numpy as np
import pytest

from app_browser import CHROMIUM, DECK_CANVAS, PROJECT, chromium_page, serve_app, webgl_coloured_pixels
from t3vis.charts import point_cloud
from t3vis.fixtures.synthetic_store import SyntheticConfig, build_synthetic_store
from t3vis.queries import explore
from t3vis.queries.frame_table import FrameTable

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.is_file(), reason=f"{CHROMIUM} is absent: install Debian's chromium (.ci/run does)"),
]
ARTIFACTS = PROJECT / "test-artifacts"
N = 5_500
WEBGL_THRESHOLD = 1_000  # the server draws this test's 5,500 points with WebGL


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("cloud") / "cloud.duckdb"
    return build_synthetic_store(path, SyntheticConfig(n_examples=N, n_train=0, n_checkpoints=1, layers=(6,), seed=5))


def isolated_point(store, width: float, height: float) -> tuple[int, float, float]:
    """(example id, x, y on the canvas) of a point at least 12 px from every other, well inside the canvas."""
    view = explore.View(run_id="synthetic", split="validation", checkpoint="epoch-1", layout="tsne", layer=6)
    known = explore.attributes(store, view)
    table = FrameTable.of_view(store, view, known)
    cloud = point_cloud.point_cloud(table, (), color=next(a for a in known if a.name == "label"), layout="tsne",
                                    axis_titles=("a", "b"), width=900, height=460)
    frame = table.rows(columns=["example_id", "x", "y"])
    sx, sy = point_cloud.screen_position(cloud.initial_view, frame.x.to_numpy(), frame.y.to_numpy(),
                                         width=width, height=height)
    screen = np.c_[sx, sy]
    inside = (sx > 80) & (sx < width - 20) & (sy > 20) & (sy < height - 60)
    for index in np.flatnonzero(inside):
        distances = np.hypot(*(screen - screen[index]).T)
        distances[index] = np.inf
        if distances.min() > 12:
            return int(frame.example_id[index]), float(sx[index]), float(sy[index])
    raise AssertionError("no isolated point to click")


def test_the_point_cloud_draws_shows_a_tooltip_and_selects_on_click(store, monkeypatch):
    ARTIFACTS.mkdir(exist_ok=True)
    monkeypatch.setenv("T3VIS_WEBGL_THRESHOLD", str(WEBGL_THRESHOLD))
    with serve_app(store.path) as url, chromium_page() as page:
        page.goto(url)
        page.locator(DECK_CANVAS).first.wait_for(timeout=90_000)
        page.wait_for_function("() => !document.querySelector('[data-testid=stStatusWidget]')", timeout=90_000)
        deadline = 60
        while webgl_coloured_pixels(page) < 2_000 and deadline > 0:
            page.wait_for_timeout(500)
            deadline -= 0.5
        assert webgl_coloured_pixels(page) >= 2_000, "the WebGL canvas shows no points"
        page.screenshot(path=ARTIFACTS / "point-cloud.png", full_page=True)

        box = page.locator(DECK_CANVAS).first.bounding_box()
        example_id, x, y = isolated_point(store, box["width"], box["height"])
        page.mouse.move(box["x"] + x, box["y"] + y)
        tooltip = page.locator(".deck-tooltip")
        tooltip.wait_for(timeout=30_000)
        assert f"example: {example_id}" in tooltip.inner_text()

        page.mouse.click(box["x"] + x, box["y"] + y)
        page.locator("strong", has_text=f"#{example_id}").first.wait_for(timeout=60_000)
        page.screenshot(path=ARTIFACTS / "point-cloud-clicked.png", full_page=True)
