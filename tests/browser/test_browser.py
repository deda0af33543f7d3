"""End to end in a real headless Chromium: `streamlit run` on a small store, clicks on the chart and the table.

Screenshots go to test-artifacts/ (git-ignored) so that a person can look at what the test saw.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from app_browser import CHROMIUM, PROJECT, chromium_page, serve_app, settled, wait_until_idle
from t3vis.fixtures.synthetic_store import SyntheticConfig, build_synthetic_store

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
        # the query string is updated at the end of the rerun, after the table is drawn: wait for it, then check
        page.wait_for_url(re.compile(r"[?&]example=2(&|$)"), timeout=30_000)
        assert "example=2" in page.url
        page.screenshot(path=ARTIFACTS / "projection-row-clicked.png", full_page=True)


@pytest.fixture(scope="module")
def tiny_app_url(tmp_path_factory):
    from helpers import write_topic_csv
    from t3vis.data.loading import load_examples
    from t3vis.record.ingest import IngestConfig, ingest_checkpoint
    from t3vis.model.access import load_model
    from t3vis.store.database import Store
    from t3vis.fixtures.tiny_models import save_tiny_model

    folder = tmp_path_factory.mktemp("browser-tiny")
    # Larger random weights than the default: peaked probabilities, so one pruned head shows in 3 decimals.
    model_dir = save_tiny_model(folder / "model", num_labels=3, seed=1, initializer_range=0.5)
    bundle = load_model(model_dir, label_names=("business", "science", "sports"), device="cpu")
    write_topic_csv(folder / "topics.csv")
    store = Store(folder / "tiny.duckdb", create=True)
    ingest_checkpoint(store, bundle, load_examples(folder / "topics.csv"), run_id="tiny", checkpoint="c1",
                      step=1, path=str(model_dir), config=IngestConfig(projection="pca", batch_size=4))
    with serve_app(store.path) as url:
        yield url


def _bar_values(chart) -> list[str]:
    return [text.text_content() for text in chart.locator("g.mark-text.role-mark text").all()]


def _bars(page) -> list[list[str]]:
    """Values printed on the two probability charts (all heads, pruned)."""
    charts = page.locator("[data-testid=stVegaLiteChart]")
    return [_bar_values(charts.nth(1)), _bar_values(charts.nth(2))]


def test_pruning_a_head_changes_the_selected_examples_probabilities(tiny_app_url):
    ARTIFACTS.mkdir(exist_ok=True)
    with chromium_page() as page:
        page.goto(f"{tiny_app_url}/?split=validation&example=2&scale=instance")
        page.locator("[data-testid=stVegaLiteChart]").first.wait_for(timeout=90_000)
        page.get_by_role("link", name="Attention heads").click()
        cells = page.locator("[data-testid=stVegaLiteChart]").first.locator("g.mark-rect").first.locator("path")
        cells.first.wait_for(timeout=90_000)
        assert cells.count() == 2 * 4  # layers x heads of the tiny model
        page.get_by_text("0 heads pruned").first.wait_for(timeout=30_000)
        before_all, before_pruned = settled(lambda: _bars(page), lambda values: all(len(v) == 3 for v in values))
        assert before_all == before_pruned and len(before_all) == 3
        page.screenshot(path=ARTIFACTS / "heads-instance.png", full_page=True)

        page.get_by_text("Prune mode").click()
        wait_until_idle(page)  # the toggle's rerun is over: a click during it can be lost on a busy machine
        cells.nth(1 * 4 + 2).click()  # layer 1, head 2
        page.get_by_text("Pruned: L1·H2").wait_for(timeout=30_000)
        page.get_by_text("1 head pruned").first.wait_for(timeout=30_000)
        after_all, after_pruned = settled(
            lambda: _bars(page), lambda values: values[1] != before_all and len(values[1]) == 3 == len(values[0]))
        assert after_all == before_all and after_pruned != before_all
        page.screenshot(path=ARTIFACTS / "heads-pruned.png", full_page=True)

        page.get_by_role("button", name="Reset pruning").click()
        page.get_by_text("Pruned: none").wait_for(timeout=30_000)
        page.wait_for_function("() => !document.querySelector('[data-testid=stStatusWidget]')", timeout=30_000)
        assert settled(lambda: _bars(page), lambda values: values == [before_all, before_all]) == [before_all,
                                                                                                  before_all]


def _token_fills(page) -> list[str]:
    chart = page.locator("[data-testid=stVegaLiteChart]").nth(1)
    return [path.get_attribute("fill") for path in chart.locator("g.mark-rect.role-mark path").all()]


def test_instance_view_methods_and_attention_from_a_clicked_token(tiny_app_url):
    ARTIFACTS.mkdir(exist_ok=True)
    with chromium_page() as page:
        page.goto(f"{tiny_app_url}/?split=validation&example=2")
        page.locator("[data-testid=stVegaLiteChart]").first.wait_for(timeout=90_000)
        page.get_by_role("link", name="Attention heads").click()  # select a head there
        cells = page.locator("[data-testid=stVegaLiteChart]").first.locator("g.mark-rect").first.locator("path")
        cells.first.wait_for(timeout=90_000)
        cells.nth(1 * 4 + 1).click()
        page.get_by_text("Head L1·H1").wait_for(timeout=30_000)

        page.get_by_role("link", name="Instance").click()
        page.get_by_text("LRP (conservative) for class").wait_for(timeout=60_000)
        lrp = settled(lambda: _token_fills(page), lambda fills: len(fills) > 3)
        page.screenshot(path=ARTIFACTS / "instance-lrp.png", full_page=True)

        page.locator(".st-key-w-instance_method [data-testid=stSelectbox] input").click()  # the method menu
        page.get_by_role("option", name="Input×Gradient").click()
        page.get_by_text("Input×Gradient for class").wait_for(timeout=30_000)
        ixg = settled(lambda: _token_fills(page), lambda fills: fills != lrp)
        assert len(ixg) == len(lrp) and ixg != lrp

        chart = page.locator("[data-testid=stVegaLiteChart]").nth(1)
        chart.locator("g.mark-rect.role-mark path").nth(2).click()
        page.get_by_text("Attention of token 2").wait_for(timeout=30_000)
        attention = settled(lambda: _token_fills(page), lambda fills: fills != ixg)
        assert attention != ixg
        assert page.get_by_text("Head: L1·H1").count() >= 1
        page.screenshot(path=ARTIFACTS / "instance-attention.png", full_page=True)


@pytest.mark.parametrize(("path", "name"), [("/heads?split=validation&example=2&scale=instance", "heads"),
                                            ("/instance?split=validation&example=2", "instance")])
def test_the_main_controls_stay_in_view_when_a_long_page_scrolls(tiny_app_url, path, name):
    ARTIFACTS.mkdir(exist_ok=True)
    with chromium_page(height=420) as page:
        page.goto(tiny_app_url + path)
        controls = page.locator(".st-key-controls")
        controls.wait_for(timeout=90_000)
        page.locator("[data-testid=stVegaLiteChart]").nth(1).wait_for(timeout=90_000)
        wait_until_idle(page)
        before = controls.bounding_box()
        scrolled = page.evaluate("() => { const main = document.querySelector('[data-testid=stMain]'); "
                                 "main.scrollTop = main.scrollHeight; return main.scrollTop; }")
        assert scrolled > before["y"] + before["height"]  # far enough that the controls would have left the window
        box = settled(lambda: controls.bounding_box(), lambda box: box is not None and 0 <= box["y"] < 100)
        assert 0 <= box["y"] < 100 and box["y"] + box["height"] < 420  # under the header bar, in view
        assert page.get_by_text("Saliency method" if name == "instance" else "Prune mode").first.is_visible()
        page.screenshot(path=ARTIFACTS / f"sticky-controls-{name}.png")


def test_the_token_figure_downloads_as_svg_png_and_latex_in_the_colours_on_screen(tiny_app_url):
    import io
    import xml.etree.ElementTree as ElementTree

    from PIL import Image

    with chromium_page() as page:
        page.goto(f"{tiny_app_url}/instance?split=validation&example=2")
        page.get_by_text("LRP (conservative) for class").wait_for(timeout=90_000)
        fills = settled(lambda: _token_fills(page), lambda fills: len(fills) > 3)
        downloads = {}
        for label in ("SVG", "PNG", "LaTeX"):
            with page.expect_download(timeout=60_000) as download:
                page.locator(".st-key-figure-tokens-" + label.lower().replace("latex", "tex")).locator(
                    "button", has_text=label).first.click()  # (Streamlit draws it twice: one is its tooltip's)
            downloads[label] = Path(download.value.path()).read_bytes()
            assert download.value.suggested_filename.startswith("t3vis-tiny-validation-2-saliency")
    svg = downloads["SVG"].decode()
    assert ElementTree.fromstring(svg).tag.endswith("svg") and "run tiny · c1 · validation split · example #2" in svg
    assert Image.open(io.BytesIO(downloads["PNG"])).format == "PNG"
    boxes = re.findall(r"\\colorbox\[RGB\]\{(\d+),(\d+),(\d+)\}", downloads["LaTeX"].decode())
    on_screen = [tuple(int(c) for c in re.findall(r"\d+", fill)) if fill.startswith("rgb") else
                 tuple(int(fill[i:i + 2], 16) for i in (1, 3, 5)) for fill in fills]
    assert [tuple(map(int, box)) for box in boxes] == on_screen  # the paper's colours are the screen's


NAVIGATION = ["Projection & data", "Attention heads", "Instance", "Training", "SQL", "Runs & checkpoints"]


@pytest.mark.parametrize(("link", "title"), [
    ("/", "Projection"), ("/heads?split=validation&example=3", "Attention heads"),
    ("/instance?split=validation&example=3", "Instance"), ("/training", "Training"), ("/sql", "SQL"),
    ("/overview", "Runs & checkpoints"),
])
def test_every_pages_link_opens_with_the_apps_navigation_and_layout_in_a_fresh_browser(app_url, link, title):
    with chromium_page() as page:  # a new browser: a visitor who was sent the link and never opened the app
        page.goto(app_url + link)
        page.locator("h1", has_text=title).first.wait_for(timeout=90_000)
        # each link: its icon (named in text where the icon font is not loaded), then its title
        links = [text.strip().splitlines()[-1] for text in page.locator("[data-testid=stSidebarNav] a").all_inner_texts()]
        assert links == NAVIGATION  # the app's own navigation, not file names ("heads", "streamlit app")
        main = page.locator("[data-testid=stMainBlockContainer]").first.bounding_box()
        assert main["width"] > 1000  # the wide layout of the 1400-pixel window, not the narrow one
        if "example=3" in link:  # the linked example is the selected one: the page keeps it in its own URL
            wait_until_idle(page)
            assert "example=3" in page.url and "split=validation" in page.url
