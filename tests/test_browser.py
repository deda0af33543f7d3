"""End to end in a real headless Chromium: `streamlit run` on a small store, clicks on the chart and the table.

Screenshots go to test-artifacts/ (git-ignored) so that a person can look at what the test saw.
"""

from __future__ import annotations

import re

import pytest

from app_browser import CHROMIUM, PROJECT, chromium_page, serve_app
from t3vis.synthetic_store import SyntheticConfig, build_synthetic_store

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.is_file(), reason=f"{CHROMIUM} is absent: install Debian's chromium (.ci/run does)"),
]
ARTIFACTS = PROJECT / "test-artifacts"
N_EXAMPLES = 12  # every row of the table is on screen


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    path = tmp_path_factory.mktemp("browser") / "small.duckdb"
    build_synthetic_store(path, SyntheticConfig(n_examples=N_EXAMPLES, n_train=40, seed=3))
    with serve_app(path) as url:
        yield url


def _translate(element) -> tuple[float, float]:
    """A Vega SVG symbol's position, from its transform attribute 'translate(x,y)'."""
    match = re.search(r"translate\(([-\d.e]+),\s*([-\d.e]+)\)", element.get_attribute("transform") or "")
    assert match, "a Vega symbol without a translate transform"
    return float(match.group(1)), float(match.group(2))


def _table_rows(page) -> dict[int, bool]:
    """example_id -> the 'selected' cell, read from the data grid's accessible table."""
    rows = {}
    for row in page.locator("[data-testid=stDataFrame] [role=row]").all():
        selected = row.locator("[role=gridcell][aria-colindex='1']")
        example = row.locator("[role=gridcell][aria-colindex='2']")
        if selected.count() and example.count():
            rows[int(example.inner_text())] = selected.inner_text().strip() == "true"
    return rows


def _wait_for_selected(page, example_id: int) -> None:
    page.locator("strong", has_text=f"#{example_id}").first.wait_for(timeout=30_000)
    page.wait_for_function(  # the rerun has finished drawing when the table marks the row
        """id => [...document.querySelectorAll('[data-testid=stDataFrame] [role=row]')].some(row => {
               const cells = row.querySelectorAll('[role=gridcell]');
               return cells.length > 1 && cells[0].innerText.trim() === 'true' && cells[1].innerText.trim() === String(id);
           })""", arg=example_id, timeout=30_000)


def test_clicking_a_point_then_a_table_row_selects_the_example_everywhere(app_url):
    ARTIFACTS.mkdir(exist_ok=True)
    with chromium_page() as page:
        page.goto(app_url)
        points = page.locator("[data-testid=stVegaLiteChart] g.mark-symbol").first.locator("path")
        points.first.wait_for(timeout=90_000)
        assert points.count() == N_EXAMPLES
        page.screenshot(path=ARTIFACTS / "projection-initial.png", full_page=True)

        # Click the last point drawn (the one on top): the frame is ordered by example_id.
        clicked = N_EXAMPLES - 1
        position = _translate(points.nth(clicked))
        points.nth(clicked).click()
        _wait_for_selected(page, clicked)
        rows = _table_rows(page)
        assert rows[clicked] is True and sum(rows.values()) == 1
        ring = page.locator("[data-testid=stVegaLiteChart] g.mark-symbol").nth(1).locator("path")
        assert ring.count() == 1 and _translate(ring.first) == pytest.approx(position, abs=0.5)
        page.screenshot(path=ARTIFACTS / "projection-point-clicked.png", full_page=True)

        # Click the row marker of the table's third row (example 2).
        grid = page.locator("[data-testid=stDataFrame]").first
        box = grid.bounding_box()
        header, row_height, target = 35, 35, 2
        page.mouse.click(box["x"] + 14, box["y"] + header + row_height * target + row_height / 2)
        _wait_for_selected(page, target)
        points = page.locator("[data-testid=stVegaLiteChart] g.mark-symbol").first.locator("path")
        ring = page.locator("[data-testid=stVegaLiteChart] g.mark-symbol").nth(1).locator("path")
        assert ring.count() == 1
        assert _translate(ring.first) == pytest.approx(_translate(points.nth(target)), abs=0.5)
        assert "example=2" in page.url
        page.screenshot(path=ARTIFACTS / "projection-row-clicked.png", full_page=True)
