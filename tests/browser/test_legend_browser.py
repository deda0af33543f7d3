"""A hostile label in the legend of a large (rasterised) Projection view makes no request in a real browser
(issue 27, item 12): a label holding a blank line and an image used to have Chromium fetch that image."""

from __future__ import annotations

import http.server
import threading
import urllib.parse
from contextlib import contextmanager

import pytest

from app_browser import CHROMIUM, chromium_page, free_port, serve_app, wait_until_idle
from t3vis.fixtures.synthetic_store import SyntheticConfig, build_synthetic_store

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.is_file(), reason=f"{CHROMIUM} is absent: install Debian's chromium (.ci/run does)"),
]
N = 5_100  # above RASTER_ABOVE (5,000): drawn as one image, with the legend under it
VEGA_CANVAS = "[data-testid=stVegaLiteChart] canvas"
STREAMLIT_ICONS = "https://fonts.gstatic.com/s/i/short-term/release/materialsymbolsrounded/"


@contextmanager
def canary():
    """A local HTTP server that records every request it gets: where a label's image or link would lead."""
    hits: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # the standard library names it so
            hits.append(self.path)
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", hits
    finally:
        server.shutdown()
        server.server_close()


def test_a_hostile_label_in_a_large_views_legend_makes_no_request(tmp_path):
    with canary() as (trap, hits):
        labels = (f"sports\n\n![x]({trap}/image.png)", f"business\n\n<img src={trap}/tag.png>",
                  "science", "health")
        store = build_synthetic_store(tmp_path / "legend.duckdb", SyntheticConfig(
            n_examples=N, n_train=0, n_checkpoints=1, layers=(1,), num_layers=2, num_heads=2, label_names=labels))
        with serve_app(store.path) as url, chromium_page() as page:
            origin = urllib.parse.urlsplit(url).netloc
            elsewhere = []
            page.on("request", lambda request: elsewhere.append(request.url)
                    if urllib.parse.urlsplit(request.url).scheme in ("http", "https", "ws", "wss")
                    and urllib.parse.urlsplit(request.url).netloc != origin else None)
            page.goto(url)
            page.locator(VEGA_CANVAS).first.wait_for(timeout=90_000)
            wait_until_idle(page)
            legend = page.locator("[data-testid=stMarkdownContainer]", has_text="health").first
            legend.wait_for(timeout=30_000)
            page.wait_for_timeout(1500)  # time for any image to load
            assert hits == [] and page.locator(f"img[src^='{trap}']").count() == 0
            shown = legend.inner_text()
            assert f"sports ![x]({trap}/image.png)" in shown and f"business <img src={trap}/tag.png>" in shown
        # nothing but the app itself, and the icons Streamlit's own navigation loads from Google Fonts
        assert [address for address in elsewhere if not address.startswith(STREAMLIT_ICONS)] == []
