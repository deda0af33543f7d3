"""The Projection page at scale: server time after a filter change, browser time until the chart is drawn.

    python bench/app.py [--sizes 10000,50000] [--repeats 5]

For each size, a synthetic store (t3vis.fixtures.synthetic_store: the shapes of a real recording, 3
checkpoints, 2 layers, training dynamics) is written, then:

- server: the Projection page is run with Streamlit's AppTest; a filter is changed (the label
  multiselect) and the time of that rerun is measured: the DuckDB query, the chart and the table
  built, everything the script does. Every repeat picks a different proper subset of the labels:
  a real filter (all labels would be no filter at all) that no earlier repeat has cached;
- browser: `streamlit run` serves the app, headless Chromium (/usr/bin/chromium) opens it, and
  the time from navigation until the chart's canvas has points on it is measured (above 5,000 points the
  points are one image on that canvas, t3vis.charts.point_raster; a WebGL canvas, when T3VIS_WEBGL_THRESHOLD
  switches it on, is read by screenshots of its box every 50 ms or so): once cold (a
  fresh server and browser, nothing cached), then ``--repeats`` times warm (reloads of the page,
  the server's caches filled).

Medians and maxima are reported. Last line: ``BENCH app server_ms_10k=... server_max_ms_10k=...
browser_ms_10k=... browser_max_ms_10k=... browser_cold_ms_10k=...`` and the same for 50k
(``server_ms`` and ``browser_ms`` are medians; ``browser_ms`` is warm).
Goal: server under 500 ms and browser under 2 s at 50k.
"""

from __future__ import annotations

import argparse
import itertools
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT / "tests"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from streamlit.testing.v1 import AppTest  # noqa: E402

from app_browser import DECK_CANVAS, chart_coloured_pixels, chromium_page, serve_app  # noqa: E402
from t3vis.fixtures.synthetic_store import SyntheticConfig, build_synthetic_store  # noqa: E402

PAGE = str(PROJECT / "pages" / "projection.py")


def real_filters(labels: list, repeats: int) -> list[list]:
    """``repeats`` different proper, non-empty subsets of the labels, small and large in turn: each one filters
    (all labels would be no filter), and none repeats an earlier one (whose result would be cached)."""
    by_size = [list(itertools.combinations(labels, size)) for size in range(1, len(labels))]
    subsets = [list(subset) for turn in itertools.zip_longest(*by_size) for subset in turn if subset]
    if len(subsets) < repeats:
        raise SystemExit(f"{len(labels)} labels give only {len(subsets)} different real filters; "
                         f"use --repeats {len(subsets)} or fewer.")
    return subsets[:repeats]


def shown_of_total(app: AppTest) -> tuple[int, int]:
    """From the caption "N of M examples pass the filters"."""
    for caption in app.caption:
        found = re.match(r"([\d,]+) of ([\d,]+) examples pass the filters", caption.value)
        if found:
            return tuple(int(group.replace(",", "")) for group in found.groups())
    raise AssertionError("the Projection page shows no 'examples pass the filters' caption")


def server_ms(store_path: Path, repeats: int) -> list[float]:
    return timed_filter_changes(store_path, repeats)[1]


def timed_filter_changes(store_path: Path, repeats: int, *, timeout: float = 120) -> tuple[float, list[float]]:
    """(ms of the page's first run, ms of each rerun after a new label filter) in AppTest."""
    app = AppTest.from_file(PAGE, default_timeout=timeout)
    app.session_state["store_path"] = str(store_path)
    start = time.perf_counter()
    app.run()
    first = (time.perf_counter() - start) * 1000
    assert not app.exception, app.exception
    next(w for w in app.multiselect if w.key == "w.filter_on").set_value(["label"]).run()
    labels = next(w for w in app.multiselect if w.key == "w.filter.label").options
    times = []
    for subset in real_filters(labels, repeats):
        widget = next(w for w in app.multiselect if w.key == "w.filter.label")
        start = time.perf_counter()
        widget.set_value(subset).run()
        times.append((time.perf_counter() - start) * 1000)
        assert not app.exception, app.exception
        shown, total = shown_of_total(app)
        assert 0 < shown < total, f"labels {subset}: {shown} of {total} examples shown, not a real filter"
        app.session_state["filters"] = {}  # a fresh filter next time
        next(w for w in app.multiselect if w.key == "w.filter_on").set_value(["label"]).run()
    return first, times


def chart_drawn(page) -> bool:
    """The projection is on screen: a Vega canvas with points (drawn one by one, or as one image), or a WebGL
    point cloud with points."""
    return chart_coloured_pixels(page) > (2_000 if page.locator(DECK_CANVAS).count() else 800)


def browser_ms(store_path: Path, repeats: int) -> tuple[float, list[float]]:
    """The cold first load (fresh server and browser), then ``repeats`` warm reloads."""
    times = []
    with serve_app(store_path) as url, chromium_page() as page:
        for _ in range(1 + repeats):
            start = time.perf_counter()
            page.goto(url)
            while not chart_drawn(page):
                if time.perf_counter() - start > 180:
                    raise TimeoutError("the projection was not drawn within 180 s")
                page.wait_for_timeout(50)
            times.append((time.perf_counter() - start) * 1000)
    return times[0], times[1:]


def _summary(times: list[float]) -> str:
    return (f"median {statistics.median(times):.0f} ms, max {max(times):.0f} ms "
            f"(all: {', '.join(f'{t:.0f}' for t in times)})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,50000")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    if min(sizes) <= 3_000:  # the page draws SVG, not a canvas, up to 3,000 points: CHART_DRAWN would wait forever
        raise SystemExit("--sizes must be above 3000: smaller charts are SVG, which the browser timing cannot see.")
    headline = {}
    with tempfile.TemporaryDirectory() as folder:
        for size in sizes:
            path = Path(folder) / f"bench-{size}.duckdb"
            start = time.perf_counter()
            build_synthetic_store(path, SyntheticConfig(n_examples=size, n_train=size, seed=1))
            print(f"{size:>6} examples: store written in {time.perf_counter() - start:.1f} s")
            server = server_ms(path, args.repeats)
            cold, browser = browser_ms(path, args.repeats)
            print(f"        server after a filter change: {_summary(server)}")
            print(f"        browser until the chart is drawn: cold {cold:.0f} ms; warm {_summary(browser)}")
            tag = f"{size // 1000}k"
            headline[f"server_ms_{tag}"] = statistics.median(server)
            headline[f"server_max_ms_{tag}"] = max(server)
            headline[f"browser_ms_{tag}"] = statistics.median(browser)
            headline[f"browser_max_ms_{tag}"] = max(browser)
            headline[f"browser_cold_ms_{tag}"] = cold
    print("BENCH app " + " ".join(f"{key}={value:.0f}" for key, value in headline.items()))


if __name__ == "__main__":
    main()
