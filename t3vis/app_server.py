"""Serving the app from an installed t3vis: the command that runs it (``t3vis app``, ``t3vis.show``).

The app's entry file is ``t3vis_app/entry.py`` inside the installed package (found without importing the app,
so the library stays free of Streamlit); the checkout's ``streamlit run streamlit_app.py`` runs the same pages.
The settings the checkout keeps in ``.streamlit/config.toml`` are given as flags, so that the app behaves the
same from any folder.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import sys
import time
import urllib.request
from pathlib import Path

from t3vis.errors import T3visError

# .streamlit/config.toml's settings: no file watcher (a virtual environment in the folder overflows inotify)
SERVER_FLAGS = ("--server.fileWatcherType", "none", "--browser.gatherUsageStats", "false")


def entry_file() -> Path:
    """The app's entry file in the installed ``t3vis_app`` package."""
    spec = importlib.util.find_spec("t3vis_app")
    if spec is None or not spec.submodule_search_locations:
        raise T3visError("The t3vis app is not installed beside the library (no t3vis_app package): reinstall t3vis.")
    entry = Path(next(iter(spec.submodule_search_locations))) / "entry.py"
    if not entry.is_file():
        raise T3visError(f"The t3vis app's entry file {entry} is missing: reinstall t3vis.")
    return entry


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def app_command(*, port: int, address: str | None = None, headless: bool = True) -> list[str]:
    """``streamlit run`` of the app's entry file on ``port``."""
    command = [sys.executable, "-m", "streamlit", "run", str(entry_file()), "--server.port", str(port),
               "--server.headless", "true" if headless else "false", *SERVER_FLAGS]
    if address:
        command += ["--server.address", address]
    return command


def app_environment(store: str | Path | None) -> dict[str, str]:
    """The server's environment: ``T3VIS_STORE`` names the store the app opens first."""
    env = dict(os.environ)
    if store is not None:
        env["T3VIS_STORE"] = str(Path(store).expanduser().resolve())
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    return env


def wait_until_serving(url: str, *, process=None, timeout: float = 120.0) -> None:
    """Wait for Streamlit's health endpoint to answer; T3visError when the server ended or did not answer."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        if process is not None and process.poll() is not None:
            raise T3visError(f"The t3vis app stopped as it started (exit code {process.returncode}).")
        if time.monotonic() > deadline:
            raise T3visError(f"The t3vis app did not answer at {url} within {timeout:.0f} s.")
        time.sleep(0.3)
