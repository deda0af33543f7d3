"""Follow training in a real headless Chromium: the fragment's own timer (``st.fragment(run_every=...)``) notices a
checkpoint written while the page is open, and its ``st.rerun(scope="app")`` redraws the page with it."""

from __future__ import annotations

import time

import pytest

from app_browser import CHROMIUM, chromium_page, serve_app, settled
from follow_helpers import CONFIG, grow_checkpoint
from t3vis.fixtures.synthetic_store import build_synthetic_store

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.is_file(), reason=f"{CHROMIUM} is absent: install Debian's chromium (.ci/run does)"),
]


def test_a_checkpoint_committed_while_the_page_is_open_appears_within_seconds(tmp_path):
    store = build_synthetic_store(tmp_path / "growing.duckdb", CONFIG)
    with serve_app(store.path) as url, chromium_page() as page:
        page.goto(f"{url}/overview")
        sidebar = page.locator("[data-testid=stSidebar]")
        sidebar.get_by_text("Follow training").wait_for(timeout=90_000)
        sidebar.get_by_text("Follow training").click()
        sidebar.get_by_text("no new data yet").wait_for(timeout=30_000)
        checkpoint = sidebar.get_by_role("combobox", name="Checkpoint")
        assert checkpoint.input_value() == "epoch-2"

        grow_checkpoint(store, "epoch-3", seed=1)
        committed = time.monotonic()
        sidebar.get_by_text("Following: new data at").wait_for(timeout=15_000)
        # the sidebar's checkpoint (it was on the latest) and the overview's table show the new checkpoint
        assert settled(checkpoint.input_value, lambda value: value == "epoch-3", timeout=15) == "epoch-3"
        delay = time.monotonic() - committed
        assert delay <= 10, f"the new checkpoint appeared {delay:.1f} s after its commit"
        table = page.locator("[data-testid=stDataFrame]").last  # its cells are read from the grid's accessible table
        assert "epoch-3" in settled(table.text_content, lambda text: "epoch-3" in text, timeout=10)
