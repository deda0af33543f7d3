"""A summarization store in a real browser: select a sentence to explain, select a head, click a token."""

from __future__ import annotations


import pytest

from app_browser import CHROMIUM, chromium_page, serve_app, settled, wait_until_idle
from helpers import PROJECT

ARTIFACTS = PROJECT / "test-artifacts"
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is absent: install Debian's chromium "
                                                              "(.ci/run does)")


@pytest.fixture(scope="module")
def summary_app_url(tmp_path_factory):
    from t3vis.fixtures.summarization_store import build_summarization_store

    store = build_summarization_store(tmp_path_factory.mktemp("browser-summaries") / "bertsum.duckdb")
    with serve_app(store.path) as url:
        yield url


def _token_fills(page) -> list[str]:
    chart = page.locator("[data-testid=stVegaLiteChart]").first
    return [path.get_attribute("fill") for path in chart.locator("g.mark-rect.role-mark path").all()]


def test_selecting_a_sentence_and_clicking_a_token_recolour_the_document(summary_app_url):
    ARTIFACTS.mkdir(exist_ok=True)
    with chromium_page() as page:
        # select a head in the head view first, so that a token click shows its attention
        page.goto(f"{summary_app_url}/heads?split=validation&example=1003")
        cells = page.locator("[data-testid=stVegaLiteChart]").first.locator("g.mark-rect").first.locator("path")
        cells.first.wait_for(timeout=90_000)
        # a page's own link as the fresh server's first request: the app's navigation and layout, not the
        # pages/ folder's file names (Streamlit's old multipage mode)
        links = [link.text_content() for link in page.locator("[data-testid=stSidebarNav] a").all()]
        assert any("Attention heads" in link for link in links) and not any(link == "heads" for link in links)
        assert page.locator("h1").first.text_content() == "Attention heads"
        cells.nth(1 * 4 + 2).click()
        page.get_by_text("Head L1·H2").wait_for(timeout=30_000)

        page.get_by_role("link", name="Instance").click()
        page.get_by_text("of sentence").first.wait_for(timeout=90_000)
        wait_until_idle(page)
        first = settled(lambda: _token_fills(page), lambda fills: len(fills) > 10)
        explained = page.get_by_text("Explaining sentence").first.text_content()

        # select another sentence's row (the grid's row marker): its score is explained instead
        grid = page.locator("[data-testid=stDataFrame]").first
        box = grid.bounding_box()
        header, row_height, row = 35, 35, 4
        page.mouse.click(box["x"] + 14, box["y"] + header + row_height * row + row_height / 2)
        page.get_by_text("Explaining sentence 4").wait_for(timeout=30_000)
        second = settled(lambda: _token_fills(page), lambda fills: fills != first and len(fills) == len(first))
        assert "Explaining sentence 4" not in explained and second != first
        page.screenshot(path=ARTIFACTS / "summarization-sentence.png", full_page=True)

        # click a token: the document is coloured by that token's attention in the selected head
        chart = page.locator("[data-testid=stVegaLiteChart]").first
        chart.locator("g.mark-rect.role-mark path").nth(3).click()
        page.get_by_text("Attention of token 3").wait_for(timeout=30_000)
        attention = settled(lambda: _token_fills(page), lambda fills: fills != second)
        assert attention != second
        page.screenshot(path=ARTIFACTS / "summarization-attention.png", full_page=True)
