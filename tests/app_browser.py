"""A real `streamlit run` of the app and a real headless Chromium, for end-to-end tests and bench/app.py.

Chromium is Debian's (`/usr/bin/chromium`, installed by `.ci/run`); Playwright's own browser
download does not work offline. The flags keep Chromium from calling home on a closed network.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
CHROMIUM = Path(os.environ.get("T3VIS_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def serve_app(store_path: str | Path | None, *, timeout: float = 120.0, folder: Path = PROJECT) -> Iterator[str]:
    """Run `streamlit run streamlit_app.py` on the store; yields the app's URL; stops it afterwards.

    ``store_path`` None: no T3VIS_STORE, the app's default store (``store/demo.duckdb`` in ``folder``, the working
    folder of the server and the folder of its ``streamlit_app.py``)."""
    port = free_port()
    env = {**os.environ, "T3VIS_STORE": str(store_path), "HF_HUB_OFFLINE": "1"}
    if store_path is None:
        del env["T3VIS_STORE"]
    command = [sys.executable, "-m", "streamlit", "run", str(folder / "streamlit_app.py"),
               "--server.headless", "true", "--server.port", str(port), "--server.address", "127.0.0.1",
               "--server.fileWatcherType", "none", "--browser.gatherUsageStats", "false"]
    log = tempfile.TemporaryFile()  # not a pipe: a server that writes a lot would block on a full pipe
    process = subprocess.Popen(command, cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                log.seek(0)
                output = log.read().decode(errors="replace")
                raise RuntimeError(f"streamlit did not start on {url}: {output[-2000:]}")
            time.sleep(0.3)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def server_process(url: str):
    """The psutil process of the `streamlit run` serving ``url`` (started by :func:`serve_app`)."""
    import psutil

    port = url.rsplit(":", 1)[1]
    return next(child for child in psutil.Process().children(recursive=True)
                if "streamlit" in " ".join(child.cmdline()) and port in child.cmdline())


class PeakMemory:
    """Peak resident set (MB) of a process and its children from :meth:`__init__` to :meth:`stop`.

    On Linux it is the kernel's own high-water mark (``VmHWM`` in ``/proc/PID/status``, reset at
    :meth:`__init__` through ``/proc/PID/clear_refs``): exact, and nothing runs meanwhile. Sampling every 50 ms
    from a thread of the measuring process, as elsewhere, took CPU from the browser being timed on 2 cores
    (fresh-browser times 0.3-0.6 s slower). Children's peaks are added (an upper bound of their sum's peak).

    A child that exits before :meth:`stop` takes its high-water mark with it, and its parent (not this process)
    collects its resource usage. ``reports``: a file where such children add their own peak as they end, one line
    ``pid megabytes`` each (the demo build's child does, when ``T3VIS_DEMO_PEAK_FILE`` names the file:
    :func:`t3vis.demo.background.main`); their peaks are added too, and a reporting child still alive at
    :meth:`stop` is counted once."""

    def __init__(self, pid: int, *, reports: Path | None = None):
        import psutil

        self.process = psutil.Process(pid)
        self.reports = reports
        self.peak_mb = 0.0
        self._thread = None
        self._stop = threading.Event()
        if self._reset_high_water_marks():
            return
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _processes(self) -> list:
        return [self.process, *self.process.children(recursive=True)]

    def _reset_high_water_marks(self) -> bool:
        try:
            for process in self._processes():
                Path(f"/proc/{process.pid}/clear_refs").write_text("5")  # 5: reset the peak RSS
            return True
        except OSError:
            return False

    def _high_water_mb(self, skip: set[int]) -> float:
        total_kb = 0
        for process in self._processes():
            if process.pid in skip:
                continue
            status = Path(f"/proc/{process.pid}/status").read_text()
            total_kb += sum(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:"))
        return total_kb / 1024  # (a process that has exited has no VmHWM any more: alive ones only)

    def _reported_mb(self) -> dict[int, float]:
        """The peaks (MB) that children wrote into ``reports`` as they ended, by process id."""
        if self.reports is None or not self.reports.is_file():
            return {}
        lines = (line.split() for line in self.reports.read_text().splitlines())
        return {int(pid): float(mb) for pid, mb in lines}

    def _sample(self) -> None:
        import psutil

        while not self._stop.is_set():
            try:
                rss = sum(p.memory_info().rss for p in self._processes())
                self.peak_mb = max(self.peak_mb, rss / 2**20)
            except psutil.Error:
                pass
            self._stop.wait(0.05)

    def stop(self) -> float:
        reported = self._reported_mb()
        if self._thread is None:
            self.peak_mb = self._high_water_mb(skip=set(reported)) + sum(reported.values())
        else:
            self._stop.set()
            self._thread.join()
            self.peak_mb += sum(reported.values())  # (sampling: an upper bound, a reporting child may be in both)
        return self.peak_mb


@contextmanager
def chromium_page(*, width: int = 1400, height: int = 1600):
    """A Playwright page in headless Debian Chromium."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            yield page
        finally:
            browser.close()


def settled(read, done, timeout: float = 30.0):
    """``read()`` until ``done(value)`` or the timeout; returns the last value (the caller asserts on it)."""
    deadline = time.monotonic() + timeout
    while True:
        value = read()
        if done(value) or time.monotonic() > deadline:
            return value
        time.sleep(0.3)


def wait_until_idle(page, *, timeout_ms: int = 90_000) -> None:
    """Wait until the app has finished its run: Streamlit's running indicator is gone, twice in a row."""
    for _ in range(2):
        page.wait_for_timeout(1000)
        page.wait_for_selector("[data-testid=stStatusWidget]", state="detached", timeout=timeout_ms)


DECK_CANVAS = "[data-testid=stDeckGlJsonChart] canvas"


def webgl_coloured_pixels(page, index: int = 0) -> int:
    """Pixels with a hue on the ``index``-th WebGL chart's canvas (points; axes and background are grey).

    WebGL canvases cannot be read back from the page once composited, so this takes a screenshot of the
    canvas's box. -1 while the chart has no canvas yet."""
    import io

    import numpy as np
    from PIL import Image

    canvas = page.locator(DECK_CANVAS)
    if canvas.count() <= index:
        return -1
    box = canvas.nth(index).bounding_box()
    if not box or box["width"] < 10:
        return -1
    image = np.asarray(Image.open(io.BytesIO(page.screenshot(clip=box))).convert("RGB")).astype(int)
    return int(((abs(image[..., 0] - image[..., 1]) > 40) | (abs(image[..., 1] - image[..., 2]) > 40)).sum())


VEGA_COLOURED_PIXELS = """(index) => {
    const canvas = document.querySelectorAll('[data-testid=stVegaLiteChart] canvas')[index];
    if (!canvas || canvas.width < 100) return [-1, 0, 0, 0];
    const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    let coloured = 0, red = 0, green = 0, blue = 0;  // pixels with a hue: points, not axes, grid or background
    for (let i = 0; i < data.length; i += 4) {
        const r = data[i], g = data[i + 1], b = data[i + 2];
        if (data[i + 3] > 0 && (Math.abs(r - g) > 40 || Math.abs(g - b) > 40)) {
            coloured++; red += r; green += g; blue += b;
        }
    }
    return [coloured, red, green, blue];
}"""


def chart_picture(page, index: int = 0) -> tuple[int, int, int, int]:
    """(pixels with a hue, and their red, green and blue sums) on the ``index``-th projection chart: a WebGL
    point cloud's canvas if the page has one (its count only), else a Vega canvas (a scatter plot, or a
    rasterised view's image). The count is -1 while there is no canvas yet. A filter that removes a label
    changes the sums even where the other labels' points fill the same pixels."""
    if page.locator(DECK_CANVAS).count():
        return webgl_coloured_pixels(page, index), 0, 0, 0
    return tuple(int(value) for value in page.evaluate(VEGA_COLOURED_PIXELS, index))


def chart_coloured_pixels(page, index: int = 0) -> int:
    """Pixels with a hue on the ``index``-th projection chart (see :func:`chart_picture`); -1 without a canvas."""
    return chart_picture(page, index)[0]
