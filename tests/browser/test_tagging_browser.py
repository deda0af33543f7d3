"""A token-classification store in a real browser: click a confusion cell to filter the words; click a word to
explain its tag."""

from __future__ import annotations

import re

import pytest

from app_browser import CHROMIUM, chromium_page, serve_app, settled, wait_until_idle
from helpers import PROJECT

ARTIFACTS = PROJECT / "test-artifacts"
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is absent: install Debian's chromium "
                                                              "(.ci/run does)")


@pytest.fixture(scope="module")
def tagging_app(tmp_path_factory):
    from t3vis.fixtures.tagging_store import build_tagging_store

    store = build_tagging_store(tmp_path_factory.mktemp("browser-tagging") / "ner.duckdb")
    with serve_app(store.path) as url:
        yield url, store


def _passing(page) -> tuple[int, int]:
    text = page.get_by_text(re.compile(r"of [\d,]+ words pass the filters")).first.text_content()
    shown, total = re.search(r"([\d,]+) of ([\d,]+) words", text).groups()
    return int(shown.replace(",", "")), int(total.replace(",", ""))


def test_a_confusion_cell_filters_the_words(tagging_app):
    url, store = tagging_app
    ARTIFACTS.mkdir(exist_ok=True)
    with chromium_page() as page:
        page.set_viewport_size({"width": 1400, "height": 1600})  # the matrix in view, clear of the sticky header
        page.goto(f"{url}/projection?split=validation&layout=pca&points=units")
        page.get_by_text("Gold × predicted tags").first.wait_for(timeout=90_000)
        wait_until_idle(page)
        assert _passing(page)[0] == _passing(page)[1]
        matrix = page.locator("[data-testid=stVegaLiteChart]").first
        cells = matrix.locator("g.mark-rect.role-mark").last.locator("path")  # the click targets, on top
        cells.first.click()  # the first cell in data order: gold O, predicted O
        page.get_by_text("Showing the words tagged").wait_for(timeout=30_000)
        shown, total = settled(lambda: _passing(page), lambda counts: counts[0] < counts[1])
        expected = store.scalar("""SELECT count(*) FROM unit_predictions p JOIN units u USING (run_id, split,
                                   example_id, unit) WHERE p.split = 'validation' AND p.checkpoint = 'epoch-2'
                                   AND u.label = 0 AND p.pred = 0""")
        assert shown == expected and total == store.scalar("SELECT count(*) FROM units WHERE split = 'validation'")
        page.screenshot(path=ARTIFACTS / "tagging-confusion.png", full_page=True)


def _token_fills(page) -> list[str]:
    chart = page.locator("[data-testid=stVegaLiteChart]").nth(2)  # the words, the tag probabilities, the pieces
    return [path.get_attribute("fill") for path in chart.locator("g.mark-rect.role-mark path").all()]


def test_clicking_a_word_explains_its_tag(tagging_app):
    url, _ = tagging_app
    with chromium_page() as page:
        page.set_viewport_size({"width": 1400, "height": 1600})
        page.goto(f"{url}/instance?split=validation&example=1003")
        page.get_by_text("Explaining word").first.wait_for(timeout=90_000)
        wait_until_idle(page)
        first = settled(lambda: _token_fills(page), lambda fills: len(fills) > 5)
        before = page.get_by_text("Explaining word").first.text_content()
        words = page.locator("[data-testid=stVegaLiteChart]").first.locator("g.mark-rect.role-mark").last
        target = 4 if "Explaining word 4" not in before else 5
        words.locator("path").nth(target).click()
        page.get_by_text(f"Explaining word {target}").wait_for(timeout=30_000)
        second = settled(lambda: _token_fills(page), lambda fills: fills != first and len(fills) == len(first))
        assert second != first
        page.screenshot(path=ARTIFACTS / "tagging-word.png", full_page=True)
