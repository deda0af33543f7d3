"""The rasterised projection in a real headless Chromium: drawn, a cell's tooltip on hover, a click selects the
example the tooltip names, a dragged box zooms in and "Reset zoom" zooms out."""

from __future__ import annotations

import re

import pytest

from app_browser import (CHROMIUM, PROJECT, chart_coloured_pixels, chromium_page, serve_app, settled,
                         wait_until_idle)
from t3vis.fixtures.synthetic_store import SyntheticConfig, build_synthetic_store

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.is_file(), reason=f"{CHROMIUM} is absent: install Debian's chromium (.ci/run does)"),
]
ARTIFACTS = PROJECT / "test-artifacts"
N = 5_500  # above RASTER_ABOVE (5,000): drawn as one image
TOOLTIP = "#vg-tooltip-element"
VEGA_CANVAS = "[data-testid=stVegaLiteChart] canvas"


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("raster") / "raster.duckdb"
    return build_synthetic_store(path, SyntheticConfig(n_examples=N, n_train=0, n_checkpoints=1, layers=(6,), seed=5))


def shown_count(page) -> int:
    caption = page.get_by_text(re.compile(r"of 5,500 examples pass the filters")).first.inner_text()
    return int(caption.split(" of ")[0].replace(",", ""))


def hover_a_cell(page, box) -> tuple[float, float, str]:
    """Move over the chart until a cell's tooltip shows; (x, y, tooltip text)."""
    for fx, fy in ((0.5, 0.45), (0.45, 0.5), (0.55, 0.4), (0.4, 0.55), (0.6, 0.5), (0.5, 0.6)):
        x, y = box["x"] + box["width"] * fx, box["y"] + box["height"] * fy
        page.mouse.move(x, y)
        page.wait_for_timeout(600)
        tooltip = page.locator(TOOLTIP)
        if tooltip.count() and tooltip.is_visible() and "points in this cell" in tooltip.inner_text():
            return x, y, tooltip.inner_text()
    raise AssertionError("no cell's tooltip showed over the middle of the chart")


def test_the_raster_draws_hovers_selects_and_zooms(store):
    ARTIFACTS.mkdir(exist_ok=True)
    with serve_app(store.path) as url, chromium_page() as page:
        page.goto(url)
        page.locator(VEGA_CANVAS).first.wait_for(timeout=90_000)
        wait_until_idle(page)
        pixels = settled(lambda: chart_coloured_pixels(page), lambda value: value > 2_000, timeout=60)
        assert pixels > 2_000, "the image of the points is not drawn"
        assert page.get_by_text("5,500 points drawn as one image").count() == 1
        page.locator(VEGA_CANVAS).first.evaluate("canvas => { canvas.dataset.firstDraw = 'yes'; }")
        # the hover cells and the Data table follow by themselves, with the rerun that the deferred table's timer
        # asks for: the cells only change the chart's data, so the chart is not drawn anew (the same canvas)
        page.locator("[data-testid=stDataFrame]").first.wait_for(timeout=60_000)
        wait_until_idle(page)
        assert page.get_by_text("follow in a moment").count() == 0
        assert page.locator(VEGA_CANVAS).first.evaluate("canvas => canvas.dataset.firstDraw") == "yes"
        assert page.get_by_text(re.compile(r"^Rows 1–100 of 5,500")).count() == 1  # its pager
        page.screenshot(path=ARTIFACTS / "raster.png", full_page=True)

        box = page.locator(VEGA_CANVAS).first.bounding_box()
        x, y, text = hover_a_cell(page, box)
        nearest = re.search(r"nearest \(click selects\)\s*(\d+) ·", text)
        assert nearest, text
        example_id = int(nearest.group(1))
        page.screenshot(path=ARTIFACTS / "raster-hover.png")

        page.mouse.click(x, y)
        page.locator("strong", has_text=f"#{example_id}").first.wait_for(timeout=60_000)  # the example panel
        wait_until_idle(page)

        # drag a box over the upper left of the plot: the x and y filters zoom into it
        page.mouse.move(box["x"] + box["width"] * 0.25, box["y"] + box["height"] * 0.2)
        page.mouse.down()
        page.mouse.move(box["x"] + box["width"] * 0.6, box["y"] + box["height"] * 0.6, steps=10)
        page.mouse.up()
        zoomed = settled(lambda: shown_count(page), lambda count: count < N, timeout=60)
        assert 0 < zoomed < N
        wait_until_idle(page)
        assert page.get_by_text("x (layout)").count() >= 1  # the zoom is a filter the user can see and edit
        page.screenshot(path=ARTIFACTS / "raster-zoomed.png", full_page=True)

        page.get_by_role("button", name="Reset zoom").click()
        assert settled(lambda: shown_count(page), lambda count: count == N, timeout=60) == N
