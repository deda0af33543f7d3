"""Several visitors at once, each going through every page of the app in its own browser session.

For tests/browser/test_hosting_browser.py and bench/hosting.py. Each session opens the Projection page with an
example selected in the URL (so that the Attention heads and Instance pages load the checkpoint's model and work on
that example), then follows the app's own navigation links, as a visitor does, keeping its session. On every page it
waits until Streamlit has finished the run, checks that the page's main element is there and that no exception or
error box is, and takes a full-page screenshot.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path

from app_browser import CHROMIUM, CHROMIUM_FLAGS

CHART = "[data-testid=stVegaLiteChart]"
TABLE = "[data-testid=stDataFrame]"
# (title in the navigation and the page's h1, file name part, a button to click once the page is drawn (or None),
# the element that shows the page's data)
PAGES = (
    ("Projection", "projection", None, CHART),
    ("Attention heads", "heads", None, CHART),
    ("Instance", "instance", None, CHART),  # the tokens, coloured by saliency
    ("Training", "training", None, CHART),
    ("SQL", "sql", "Run", TABLE),  # the editor's query (the Data Map's regions), its result table
    ("Runs & checkpoints", "overview", None, TABLE),
)
PROBLEMS = "[data-testid=stException], [data-testid=stAlertContentError]"


@dataclass
class Visit:
    """One page as one session saw it."""

    session: int
    page: str
    seconds: float  # from the click (or the first navigation) until the run had finished
    screenshot: Path
    problems: list[str] = field(default_factory=list)


async def _idle(page, timeout_ms: int) -> None:
    """Streamlit's running indicator is gone, twice a second apart (a rerun may follow the first run)."""
    for _ in range(2):
        await page.wait_for_timeout(1000)
        await page.wait_for_selector("[data-testid=stStatusWidget]", state="detached", timeout=timeout_ms)


async def _session(browser, url: str, index: int, query: str, shots: Path, timeout_ms: int) -> list[Visit]:
    context = await browser.new_context(viewport={"width": 1400, "height": 1200})
    page = await context.new_page()
    visits = []
    try:
        for number, (title, slug, button, main) in enumerate(PAGES):
            started = time.perf_counter()
            if number == 0:
                await page.goto(f"{url}/?{query}")
            else:
                await page.locator("[data-testid=stSidebarNav] a", has_text=title).first.click()
            problems = []
            try:
                await page.locator("h1", has_text=title).first.wait_for(timeout=timeout_ms)
                await _idle(page, timeout_ms)
                if button:
                    await page.get_by_role("button", name=button, exact=True).click()
                    await _idle(page, timeout_ms)
                await page.locator(f"{main} >> visible=true").first.wait_for(timeout=timeout_ms)
            except Exception as error:  # noqa: BLE001 - reported with the screenshot of what the page showed
                problems.append(f"{type(error).__name__}: {str(error).splitlines()[0]}")
            seconds = time.perf_counter() - started
            for box in await page.locator(PROBLEMS).all():
                problems.append((await box.inner_text()).strip()[:500])
            shot = shots / f"hosting-session{index + 1}-{slug}.png"
            await page.screenshot(path=shot, full_page=True)
            visits.append(Visit(session=index + 1, page=slug, seconds=seconds, screenshot=shot, problems=problems))
    finally:
        await context.close()
    return visits


async def _all_sessions(url: str, sessions: int, query: str, shots: Path, timeout_ms: int) -> list[Visit]:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        try:
            done = await asyncio.gather(*(_session(browser, url, index, query, shots, timeout_ms)
                                          for index in range(sessions)))
        finally:
            await browser.close()
    return [visit for visits in done for visit in visits]


def visit_every_page(url: str, *, sessions: int = 3, query: str = "split=validation&example=3",
                     shots: Path, timeout_ms: int = 120_000) -> list[Visit]:
    """``sessions`` browser sessions at once, each through every page in :data:`PAGES`; screenshots in ``shots``."""
    shots.mkdir(parents=True, exist_ok=True)
    return asyncio.run(_all_sessions(url, sessions, query, shots, timeout_ms))
