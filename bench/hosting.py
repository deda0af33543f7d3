"""The app as a hosted deployment meets it: a fresh start with no store, a cold start, 3 visitors at once.

    python bench/hosting.py

The app's files (streamlit_app.py, pages/, .streamlit/) are copied into a fresh folder, and `streamlit run` is
started there with no T3VIS_STORE, as Streamlit Community Cloud starts it in a fresh copy of the repository:

1. fresh start, no store: headless Chromium opens the app, which builds the built-in demo (a child process of the
   server) with a progress bar and then draws the Projection page. ``build_peak_mb``: the peak resident memory of
   the server meanwhile plus the build child's own peak (the kernel's high-water marks: the server's read at the
   end, the child's reported by the child as it exits, since only the server, its parent, could collect it);
   ``fresh_start_s``: from the server's start until the projection was drawn.
2. cold start: a new server on the store just built. ``cold_start_s``: from the server's start (the browser already
   running) until the Projection page has drawn the points.
3. serving: 3 browser sessions at once on that server, each through every page with an example selected
   (tests/hosting_load.py: the Attention heads and Instance pages load the checkpoint's MiniLM; the SQL page runs
   its query). ``serve_peak_mb``: the server's peak memory from its start to the end of the 3 sessions. Screenshots
   of every page go to test-artifacts/hosting-bench/.
4. ``follow_delay_s``: bench/follow_training.py's measure_follow_delay (a training's new checkpoint until the page
   following it shows it); nan when that module is absent.

Goals (Community Cloud gives an app about 2.7 GB): under 2.5 GB while building, under 1 GB while serving.
Last line: ``BENCH hosting cold_start_s=... build_peak_mb=... serve_peak_mb=... follow_delay_s=...``.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT / "tests"))
sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from streamlit.runtime.caching import cache_data_api  # noqa: E402

# Outside a Streamlit server the app's cached functions warn once each on import (follow_training imports them).
logging.getLogger(cache_data_api.__name__).setLevel(logging.ERROR)

from app import chart_drawn  # noqa: E402
from app_browser import PeakMemory, chromium_page, serve_app, server_process  # noqa: E402
from t3vis.demo.background import PEAK_FILE  # noqa: E402
from hosting_load import visit_every_page  # noqa: E402

try:
    from follow_training import measure_follow_delay  # noqa: E402
except ImportError:  # written alongside this benchmark; until it is there, its number is nan
    measure_follow_delay = None

ARTIFACTS = PROJECT / "test-artifacts" / "hosting-bench"
APP_FILES = ("streamlit_app.py", "pages", ".streamlit")
SESSIONS = 3


def copy_app(folder: Path) -> Path:
    """The app's own files in ``folder``, as a fresh checkout has them (the library comes from the installed t3vis)."""
    folder.mkdir()
    for name in APP_FILES:
        source = PROJECT / name
        if source.is_dir():
            shutil.copytree(source, folder / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, folder / name)
    (folder / "store").mkdir()
    return folder


def projection_drawn(page) -> bool:
    """The Projection page shows its points: SVG symbols (up to 3,000 points, the demo's case) or a canvas."""
    if page.locator("[data-testid=stVegaLiteChart] g.mark-symbol path").count() > 0:
        return True
    return page.locator("[data-testid=stVegaLiteChart] canvas").count() > 0 and chart_drawn(page)


def wait_for_projection(page, timeout: float, *, while_waiting=None) -> None:
    deadline = time.monotonic() + timeout
    while not projection_drawn(page):
        if time.monotonic() > deadline:
            page.screenshot(path=ARTIFACTS / "timed-out.png", full_page=True)
            raise TimeoutError(f"the Projection page was not drawn within {timeout:.0f} s")
        if while_waiting:
            while_waiting()
        page.wait_for_timeout(100)


def fresh_start(folder: Path) -> dict[str, float]:
    """A server with no store: the first visit builds the demo, then shows it."""
    reports = folder.parent / "build-peak.txt"  # the build child adds its own peak here as it exits
    os.environ[PEAK_FILE] = str(reports)  # passed on by the server to the child
    with chromium_page() as page:
        started = time.perf_counter()
        with serve_app(None, folder=folder, timeout=300) as url:
            os.environ.pop(PEAK_FILE)  # the server has it; nothing else started here needs it
            memory = PeakMemory(server_process(url).pid, reports=reports)
            page.goto(url)
            shot = {"taken": False}

            def screenshot_the_progress_bar() -> None:  # once fine-tuning has begun
                if not shot["taken"] and page.get_by_text("fine-tuning:").count():
                    page.screenshot(path=ARTIFACTS / "building.png", full_page=True)
                    shot["taken"] = True

            wait_for_projection(page, 1200, while_waiting=screenshot_the_progress_bar)
            seconds = time.perf_counter() - started
            deadline = time.monotonic() + 60
            while not reports.is_file() and time.monotonic() < deadline:  # the child reports as it exits
                time.sleep(0.1)
            peak = memory.stop()
    if not (folder / "store" / "demo.duckdb").is_file():
        raise SystemExit("the app drew a projection but built no store/demo.duckdb")
    if not reports.is_file():
        raise SystemExit(f"the demo build's child reported no peak memory into {reports}")
    print(f"  the build child's own peak: {reports.read_text().split()[1]} MB", flush=True)
    return {"fresh_start_s": seconds, "build_peak_mb": peak}


def cold_start_and_serving(folder: Path) -> dict[str, float]:
    """A new server on the demo store: the first page, then 3 visitors through every page."""
    with chromium_page() as page:
        started = time.perf_counter()
        with serve_app(None, folder=folder, timeout=300) as url:
            memory = PeakMemory(server_process(url).pid)
            page.goto(url)
            wait_for_projection(page, 600)
            cold = time.perf_counter() - started
            with ThreadPoolExecutor(1) as thread:  # Playwright's async API, outside this thread's event loop
                visits = thread.submit(visit_every_page, url, sessions=SESSIONS, shots=ARTIFACTS).result()
            peak = memory.stop()
    problems = [f"session {v.session} {v.page}: {v.problems}" for v in visits if v.problems]
    if problems:
        raise SystemExit("pages with problems (screenshots in test-artifacts/hosting-bench/):\n" + "\n".join(problems))
    for visit in visits:
        print(f"  session {visit.session} {visit.page:<11} {visit.seconds:5.1f} s", flush=True)
    return {"cold_start_s": cold, "serve_peak_mb": peak}


def follow_delay(folder: Path) -> float:
    if measure_follow_delay is None:
        print("bench/follow_training.py is absent: follow_delay_s=nan", flush=True)
        return math.nan
    return float(measure_follow_delay(folder))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--demo-store", type=Path, help="a demo store built before (with its -checkpoints folder): "
                        "copied, instead of the fresh start that builds one (build_peak_mb is then nan)")
    args = parser.parse_args()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    numbers = {}
    with tempfile.TemporaryDirectory(prefix="t3vis-hosting-") as scratch:
        folder = copy_app(Path(scratch) / "app")
        if args.demo_store:
            shutil.copy2(args.demo_store, folder / "store" / "demo.duckdb")
            weights = args.demo_store.with_name(f"{args.demo_store.stem}-checkpoints")
            shutil.copytree(weights, folder / "store" / "demo-checkpoints")
            numbers.update(fresh_start_s=math.nan, build_peak_mb=math.nan)
        else:
            numbers.update(fresh_start(folder))
        print(f"fresh start, no store: the demo built and the Projection page drawn in "
              f"{numbers['fresh_start_s']:.0f} s; peak memory (server and build) {numbers['build_peak_mb']:.0f} MB",
              flush=True)
        numbers.update(cold_start_and_serving(folder))
        print(f"cold start on the demo store: the Projection page drawn in {numbers['cold_start_s']:.1f} s; "
              f"{SESSIONS} sessions through every page: server peak memory {numbers['serve_peak_mb']:.0f} MB",
              flush=True)
        follow_folder = Path(scratch) / "follow"
        follow_folder.mkdir()
        numbers["follow_delay_s"] = follow_delay(follow_folder)
    print(f"follow training: {numbers['follow_delay_s']:.1f} s from a new checkpoint until the page shows it")
    print(f"BENCH hosting cold_start_s={numbers['cold_start_s']:.1f} build_peak_mb={numbers['build_peak_mb']:.0f} "
          f"serve_peak_mb={numbers['serve_peak_mb']:.0f} follow_delay_s={numbers['follow_delay_s']:.1f}")


if __name__ == "__main__":
    main()
