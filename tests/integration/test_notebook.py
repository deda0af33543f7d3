"""``t3vis.show``: the app on a store, served in the background for a notebook, reused, and stopped with the kernel.

Run outside a browser: the server must answer, a second call must reuse it, and it must stop when asked, when the
kernel's process exits, and when the kernel's process is killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import urllib.request

import pytest

import t3vis
from t3vis.fixtures.synthetic_store import SyntheticConfig, build_synthetic_store


@pytest.fixture(scope="module")
def store_path(tmp_path_factory):
    return build_synthetic_store(tmp_path_factory.mktemp("notebook") / "runs.duckdb",
                                 SyntheticConfig(n_examples=30, n_train=0, num_layers=2, num_heads=2)).path


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=3) as response:
            return response.status == 200
    except OSError:
        return False


def _gone(pid: int, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        try:  # a child of this process that ended: reap it
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return True
        except ChildProcessError:
            pass
        time.sleep(0.2)
    return False


def test_show_serves_the_store_reuses_the_server_and_stops(store_path):
    handle = t3vis.show(store_path, height=600)
    try:
        assert handle.running and _answers(handle.url)
        with urllib.request.urlopen(handle.url, timeout=10) as page:  # the app's page, in any browser
            assert b"<title>" in page.read()
        assert f'src="{handle.url}"' in handle._repr_html_() and 'height="600"' in handle._repr_html_()
        again = t3vis.show(str(store_path))
        assert again is handle and again.process.pid == handle.process.pid  # one server per store
        assert handle.store == str(store_path.resolve())
    finally:
        t3vis.stop(store_path)
    assert not handle.running and not _answers(handle.url)
    assert t3vis.show(store_path).process.pid != handle.process.pid  # a stopped server is started anew
    t3vis.stop()


KERNEL = textwrap.dedent("""
    import sys, time, t3vis
    handle = t3vis.show(sys.argv[1])
    print(handle.url, handle.process.pid, flush=True)
    if sys.argv[2] == "wait":
        time.sleep(600)
""")


@pytest.mark.parametrize("ending", ["exits", "is killed"])
def test_the_server_stops_with_the_kernel(store_path, ending):
    kernel = subprocess.Popen([sys.executable, "-c", KERNEL, str(store_path), "exit" if ending == "exits" else "wait"],
                              stdout=subprocess.PIPE, text=True)
    url, pid = kernel.stdout.readline().split()
    assert _answers(url)
    if ending == "is killed":  # a crashed or restarted kernel runs no exit handler
        kernel.send_signal(signal.SIGKILL)
    kernel.wait(60)
    assert _gone(int(pid)), f"the app server {pid} outlived its kernel ({ending})"
    assert not _answers(url)
