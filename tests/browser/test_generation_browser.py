"""A generation store in a real browser: click a token of the reference completion and the tokens before it are
coloured by its saliency."""

from __future__ import annotations

import pytest

from app_browser import CHROMIUM, chromium_page, serve_app, settled, wait_until_idle
from helpers import PROJECT

ARTIFACTS = PROJECT / "test-artifacts"
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is absent: install Debian's chromium "
                                                              "(.ci/run does)")


@pytest.fixture(scope="module")
def generation_app(tmp_path_factory):
    from t3vis.fixtures.generation_store import build_generation_store

    store = build_generation_store(tmp_path_factory.mktemp("browser-generation") / "g.duckdb")
    with serve_app(store.path) as url:
        yield url, store


def _charts(page):
    return page.locator("[data-testid=stVegaLiteChart]")


def _saliency_fills(page) -> list[str]:
    """The fills of the saliency view's token blocks (charts: the reference, the generation, the next tokens'
    probabilities, the saliency)."""
    return [path.get_attribute("fill") for path in _charts(page).nth(3).locator("g.mark-rect.role-mark path").all()]


def test_clicking_a_reference_token_colours_the_tokens_before_it_by_its_saliency(generation_app):
    url, store = generation_app
    ARTIFACTS.mkdir(exist_ok=True)
    with chromium_page() as page:
        page.set_viewport_size({"width": 1400, "height": 1800})
        page.goto(f"{url}/instance?split=validation&example=1")
        page.get_by_text("Why this").first.wait_for(timeout=90_000)
        wait_until_idle(page)
        first = settled(lambda: _saliency_fills(page), lambda fills: len(fills) > 5)
        explained = page.get_by_text("Reference completion token").first.text_content()
        target = 6 if "token 6:" not in explained else 7
        reference = _charts(page).first.locator("g.mark-rect.role-mark").first.locator("path")
        reference.nth(target).click()
        page.get_by_text(f"Reference completion token {target}:").wait_for(timeout=30_000)
        second = settled(lambda: _saliency_fills(page), lambda fills: fills != first and len(fills) > 5)
        prompt = int(store.scalar("SELECT n_tokens FROM examples WHERE split = 'validation' AND example_id = 1")
                     - store.scalar("SELECT count(*) FROM units WHERE split = 'validation' AND example_id = 1"))
        assert len(second) == prompt + target + 1  # the tokens read before it, and the token itself
        assert second != first
        page.screenshot(path=ARTIFACTS / "generation-token.png", full_page=True)
