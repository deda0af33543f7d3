"""The Projection page at 100k and 1M points: server, browser and memory (the ``app`` part of bench/scale.py).

    python bench/scale_app.py [--sizes 100000,1000000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT / "tests"))
sys.path.insert(0, str(PROJECT / "bench"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from app import timed_filter_changes  # noqa: E402
from app_browser import (PeakMemory, chart_picture, chromium_page, serve_app, server_process,  # noqa: E402
                         wait_until_idle)
from t3vis.fixtures.synthetic_store import SyntheticConfig, build_synthetic_store  # noqa: E402

DRAWN_PIXELS = 2_000  # coloured pixels on the canvas: the points are drawn
TABLE = "[data-testid=stDataFrame] canvas"  # the Data table's grid, drawn


def size_name(n: int) -> str:
    return f"{n // 1_000_000}m" if n % 1_000_000 == 0 else f"{n // 1000}k"


def server_ms(store_path: Path, repeats: int) -> tuple[float, list[float]]:
    """The first run of the page (the view's frame read into memory), then reruns after a label filter change."""
    return timed_filter_changes(store_path, repeats, timeout=600)


def _wait_drawn(page, timeout: float, *, differs_from: tuple | None = None) -> float:
    """Seconds until the chart's canvas (the rasterised view's, or WebGL's) shows points (and, after a filter
    change, a different picture: its count of coloured pixels or their colour sums moved by 2%)."""
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        picture = chart_picture(page)
        if picture[0] >= DRAWN_PIXELS and (differs_from is None or any(
                abs(now - then) > 0.02 * max(then, 1) for now, then in zip(picture, differs_from))):
            return time.perf_counter() - started
        page.wait_for_timeout(100)
    raise TimeoutError(f"the point cloud was not drawn within {timeout} s")


def _wait_hover(page, started: float, timeout: float) -> float:
    """Seconds from ``started`` until the mouse over the chart shows a hover cell's tooltip (moved in turn over a
    few points near the middle of the plot, 100 ms apart)."""
    spots = ((0.5, 0.45), (0.45, 0.5), (0.55, 0.4), (0.4, 0.55))
    tooltip = page.locator("#vg-tooltip-element")
    for turn in range(int(timeout * 10)):
        box = page.locator("[data-testid=stVegaLiteChart] canvas").first.bounding_box()
        if box:
            fx, fy = spots[turn % len(spots)]
            page.mouse.move(box["x"] + box["width"] * fx, box["y"] + box["height"] * fy)
        page.wait_for_timeout(100)
        if tooltip.count() and tooltip.is_visible() and "points in this cell" in tooltip.inner_text():
            return time.perf_counter() - started
    raise TimeoutError(f"no hover cell's tooltip within {timeout} s")


def label_filter(page):
    """The label filter's multiselect (once added)."""
    return page.locator("[data-testid=stMultiSelect]").filter(
        has=page.locator("[data-testid=stWidgetLabel]", has_text=re.compile(r"^label$")))


def add_label_filter(page, tries: int = 6) -> None:
    """Open the Filters expander and add the label filter (retried: a rerun may redraw the widgets meanwhile)."""
    expander = page.get_by_test_id("stExpander")
    for _ in range(tries):
        if label_filter(page).locator("[aria-label^='Remove ']").count():
            return  # added by an earlier try, drawn since
        if not expander.locator("[data-testid=stMultiSelect]").first.is_visible():
            expander.get_by_text("Filters").first.click()
        page.locator("[data-testid=stMultiSelect]").first.click()
        page.keyboard.type("label")
        option = page.get_by_role("option", name="label", exact=True)
        try:
            option.wait_for(timeout=10_000)  # the options narrow (Enter would pick "Select all matches")
            option.click(timeout=10_000)
            page.keyboard.press("Escape")
            wait_until_idle(page)
            if label_filter(page).locator("[aria-label^='Remove ']").count():
                return  # the label filter is there, with its labels
        except Exception:  # noqa: BLE001 - a redrawn widget: close the menu and try again
            page.keyboard.press("Escape")
            wait_until_idle(page)
    raise TimeoutError("could not add the label filter")


def browser_ms(store_path: Path, repeats: int) -> dict[str, float | list[float]]:
    """First draw in a fresh browser (cold server, then warm), and the draw after a filter change; the server's
    peak memory throughout."""
    from browser_floor import APP as FLOOR_APP
    from browser_floor import time_page

    with serve_app(store_path, timeout=300) as url, tempfile.TemporaryDirectory() as floor_folder:
        memory = PeakMemory(server_process(url).pid)
        (Path(floor_folder) / "streamlit_app.py").write_text(FLOOR_APP)
        with serve_app(None, folder=Path(floor_folder)) as floor_url:
            time_page(floor_url, "widgets_first")  # its server's first run imports altair and pandas: not timed
            first, hover, table, filtered, floor = [], [], [], [], []
            for attempt in range(1 + repeats):
                if attempt:  # the floor in turn with the page, on the same machine at the same moment
                    floor.append(time_page(floor_url, "widgets_first") * 1000)
                first_ms, hover_ms, table_ms, filtered_ms = _page_times(page_url=url, store_path=store_path,
                                                                        attempt=attempt)
                first.append(first_ms)
                hover.append(hover_ms)
                table.append(table_ms)
                if filtered_ms is not None:
                    filtered.append(filtered_ms)
        return {"cold": first[0], "first": first[1:], "hover": hover[1:], "table": table[1:], "filtered": filtered,
                "floor": floor, "rss_mb": memory.stop()}


def _page_times(*, page_url: str, store_path: Path, attempt: int) -> tuple[float, float, float, float | None]:
    """(ms until the page's chart has drawn in a fresh browser, ms until hovering it shows a cell's tooltip, ms
    until its Data table shows, ms until a label filter change has drawn: None on the cold attempt 0, which reads
    the store)."""
    with chromium_page() as page:
        started = time.perf_counter()
        page.goto(page_url)
        _wait_drawn(page, 600)
        first_ms = (time.perf_counter() - started) * 1000
        hover_ms = _wait_hover(page, started, 600) * 1000  # the hover cells and the table come a moment later
        page.locator(TABLE).first.wait_for(timeout=600_000)  # (t3vis_app/deferred.py)
        table_ms = (time.perf_counter() - started) * 1000
        wait_until_idle(page)
        if attempt == 0:
            (PROJECT / "test-artifacts").mkdir(exist_ok=True)
            page.screenshot(path=PROJECT / "test-artifacts" / f"scale-{store_path.stem}.png", full_page=True)
            return first_ms, hover_ms, table_ms, None  # the cold load reads the store: filter changes on warm pages
        add_label_filter(page)
        labels = label_filter(page).locator("[aria-label^='Remove ']")
        name = labels.nth(attempt % labels.count()).get_attribute("aria-label")
        page.wait_for_timeout(500)
        before = chart_picture(page)
        started = time.perf_counter()
        page.locator(f"[aria-label='{name}']").click()
        _wait_drawn(page, 600, differs_from=before)
        return first_ms, hover_ms, table_ms, (time.perf_counter() - started) * 1000


def app_numbers(n: int, *, repeats: int = 3) -> dict[str, float]:
    tag = size_name(n)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"scale-{tag}.duckdb"
        started = time.perf_counter()
        build_synthetic_store(path, SyntheticConfig(n_examples=n, n_train=0, n_checkpoints=1, layers=(6,), seed=1))
        print(f"{n:,} examples: store written in {time.perf_counter() - started:.0f} s", flush=True)
        # the browser first: after AppTest has run the page in this process (its runtime, caches and the view's
        # table stay), fresh-browser times came out 0.5-1 s slower and twice as spread
        browser = browser_ms(path, repeats)
        print(f"  browser: cold first draw {browser['cold']:.0f} ms; first draw in a fresh browser "
              f"{_summary(browser['first'])} (a bare page of the same widgets without the table, in turn with it: "
              f"{_summary(browser['floor'])}); hover shows a cell's tooltip {_summary(browser['hover'])}; its Data "
              f"table shows {_summary(browser['table'])}; after a filter change {_summary(browser['filtered'])}; "
              f"server peak RSS {browser['rss_mb']:.0f} MB", flush=True)
        first_run, server = server_ms(path, repeats)
        print(f"  server: first run {first_run:.0f} ms; after a filter change {_summary(server)}", flush=True)
    return {
        f"server_ms_{tag}": statistics.median(server), f"server_first_ms_{tag}": first_run,
        f"browser_ms_{tag}": statistics.median(browser["first"]), f"browser_cold_ms_{tag}": browser["cold"],
        f"browser_filter_ms_{tag}": statistics.median(browser["filtered"]), f"rss_mb_{tag}": browser["rss_mb"],
        f"browser_floor_ms_{tag}": statistics.median(browser["floor"]),
        f"browser_hover_ms_{tag}": statistics.median(browser["hover"]),
        f"browser_table_ms_{tag}": statistics.median(browser["table"]),
    }


def _summary(times: list[float]) -> str:
    return f"median {statistics.median(times):.0f} ms (all: {', '.join(f'{t:.0f}' for t in times)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    numbers = {}
    for n in (int(size) for size in args.sizes.split(",")):
        numbers.update(app_numbers(n, repeats=args.repeats))
    print("BENCH scale_app " + " ".join(f"{key}={value:.0f}" for key, value in numbers.items()))


if __name__ == "__main__":
    main()
