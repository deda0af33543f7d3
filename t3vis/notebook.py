"""The app inside a notebook (Jupyter, VS Code, Colab): ``t3vis.show("runs/x.duckdb")``.

``show`` starts the app on a store in a background server (one per store, reused by later calls), waits until it
answers, and returns a handle that a notebook displays inline as the app itself (in an iframe; in Colab through
Colab's own proxy). The servers stop with the kernel: at its exit, and, on Linux, when the kernel process dies
(the server asks the kernel to signal it). ``stop()`` stops them earlier.
"""

from __future__ import annotations

import atexit
import html
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

from t3vis.app_server import app_command, app_environment, free_port, wait_until_serving


@dataclass
class AppHandle:
    """A running app: its URL and server process. A notebook shows it inline."""

    store: str
    url: str
    port: int
    process: subprocess.Popen = field(repr=False)
    height: int = 800

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def _repr_html_(self) -> str:
        if "google.colab" in sys.modules:  # Colab's browser reaches the kernel's ports through its proxy only
            from google.colab import output  # type: ignore[import-not-found]

            output.serve_kernel_port_as_iframe(self.port, height=self.height)
            return ""
        return (f'<iframe src="{html.escape(self.url)}" width="100%" height="{int(self.height)}" '
                'style="border: 1px solid #ddd; border-radius: 4px;"></iframe>')

    def stop(self) -> None:
        _stop(self)


_servers: dict[str, AppHandle] = {}
_lock = threading.Lock()


def show(store: str | Path, *, height: int = 800, port: int | None = None, timeout: float = 120.0) -> AppHandle:
    """Serve the app on ``store`` in the background (reused for the same store) and return its handle, which a
    notebook displays inline; outside a notebook its ``url`` opens the app in a browser."""
    key = str(Path(store).expanduser().resolve())
    with _lock:
        running = _servers.get(key)
        if running is not None and running.running:
            running.height = height
            return running
        port = port or free_port()
        process = subprocess.Popen(app_command(port=port, address="127.0.0.1"), env=app_environment(key),
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                                   preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None)
        handle = AppHandle(store=key, url=f"http://127.0.0.1:{port}", port=port, process=process, height=height)
        _servers[key] = handle
    try:
        wait_until_serving(handle.url, process=process, timeout=timeout)
    except BaseException:
        _stop(handle)
        raise
    return handle


def stop(store: str | Path | None = None) -> None:
    """Stop the app of ``store`` (default: every app ``show`` started)."""
    with _lock:
        handles = list(_servers.values()) if store is None else [
            _servers.get(str(Path(store).expanduser().resolve()))]
    for handle in handles:
        if handle is not None:
            _stop(handle)


def _stop(handle: AppHandle) -> None:
    with _lock:
        if _servers.get(handle.store) is handle:
            del _servers[handle.store]
    if handle.process.poll() is None:
        handle.process.terminate()
        try:
            handle.process.wait(10)
        except subprocess.TimeoutExpired:
            handle.process.kill()
            handle.process.wait()


def _die_with_parent() -> None:
    """In the server process before it starts (Linux): the kernel sends it SIGTERM when the notebook's kernel
    process ends, however it ends (a restarted or crashed kernel runs no atexit handler)."""
    import ctypes

    PR_SET_PDEATHSIG = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


atexit.register(stop)
