"""The Projection page at scale: server time after a filter change, browser time until the chart is drawn.

    python bench/app.py [--sizes 10000,50000] [--repeats 5]

For each size, a synthetic store (t3vis.synthetic_store: the shapes of a real recording, 3
checkpoints, 2 layers, training dynamics) is written, then:

- server: the Projection page is run with Streamlit's AppTest; a filter is changed (the label
  multiselect, a new value each time so that no cached result is reused) and the time of that
  rerun is measured: the DuckDB query, the chart and the table built, everything the script does;
- browser: `streamlit run` serves the app, headless Chromium (/usr/bin/chromium) opens it, and
  the time from navigation until the chart's canvas has points on it is measured.

Last line: ``BENCH app server_ms_10k=... server_ms_50k=... browser_ms_10k=... browser_ms_50k=...``.
Goal: server under 500 ms and browser under 2 s at 50k.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT / "tests"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from streamlit.testing.v1 import AppTest  # noqa: E402

from app_browser import chromium_page, serve_app  # noqa: E402
from t3vis.synthetic_store import SyntheticConfig, build_synthetic_store  # noqa: E402

PAGE = str(PROJECT / "pages" / "projection.py")
CHART_DRAWN = """() => {
    const canvas = document.querySelector('[data-testid=stVegaLiteChart] canvas');
    if (!canvas || canvas.width < 100) return false;
    const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    let coloured = 0;  // non-grey pixels: points, not axes or grid lines
    for (let i = 0; i < data.length; i += 16) {
        const r = data[i], g = data[i + 1], b = data[i + 2];
        if (data[i + 3] > 0 && (Math.abs(r - g) > 40 || Math.abs(g - b) > 40)) coloured++;
    }
    return coloured > 200;
}"""


def server_ms(store_path: Path, repeats: int) -> list[float]:
    app = AppTest.from_file(PAGE, default_timeout=120)
    app.session_state["store_path"] = str(store_path)
    app.run()
    assert not app.exception, app.exception
    next(w for w in app.multiselect if w.key == "w.filter_on").set_value(["label"]).run()
    labels = next(w for w in app.multiselect if w.key == "w.filter.label").options
    subsets = [labels[: 1 + i % (len(labels) - 1)] if i % 2 else labels[i % len(labels):] for i in range(repeats)]
    times = []
    for subset in subsets:
        widget = next(w for w in app.multiselect if w.key == "w.filter.label")
        start = time.perf_counter()
        widget.set_value(list(subset)).run()
        times.append((time.perf_counter() - start) * 1000)
        assert not app.exception, app.exception
        app.session_state["filters"] = {}  # a fresh filter next time
        next(w for w in app.multiselect if w.key == "w.filter_on").set_value(["label"]).run()
    return times


def browser_ms(store_path: Path, repeats: int) -> list[float]:
    times = []
    with serve_app(store_path) as url, chromium_page() as page:
        page.goto(url)
        page.wait_for_function(CHART_DRAWN, timeout=180_000, polling=50)  # warms the server's caches
        for _ in range(repeats):
            start = time.perf_counter()
            page.goto(url)
            page.wait_for_function(CHART_DRAWN, timeout=180_000, polling=50)
            times.append((time.perf_counter() - start) * 1000)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,50000")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    headline = {}
    with tempfile.TemporaryDirectory() as folder:
        for size in (int(s) for s in args.sizes.split(",")):
            path = Path(folder) / f"bench-{size}.duckdb"
            start = time.perf_counter()
            build_synthetic_store(path, SyntheticConfig(n_examples=size, n_train=size, seed=1))
            print(f"{size:>6} examples: store written in {time.perf_counter() - start:.1f} s")
            server = server_ms(path, args.repeats)
            browser = browser_ms(path, args.repeats)
            print(f"        server after a filter change: median {statistics.median(server):.0f} ms "
                  f"(all: {', '.join(f'{t:.0f}' for t in server)})")
            print(f"        browser until the chart is drawn: median {statistics.median(browser):.0f} ms "
                  f"(all: {', '.join(f'{t:.0f}' for t in browser)})")
            tag = f"{size // 1000}k"
            headline[f"server_ms_{tag}"] = statistics.median(server)
            headline[f"browser_ms_{tag}"] = statistics.median(browser)
    print("BENCH app " + " ".join(f"{key}={value:.0f}" for key, value in sorted(headline.items())))


if __name__ == "__main__":
    main()
