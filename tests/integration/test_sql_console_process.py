"""Console queries run in worker processes: other reads of the store never wait for them, and their spill files
never go beside the store and never outlive them (issue 27, items 6 and 9)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from t3vis.fixtures.synthetic_store import SyntheticConfig, build_synthetic_store
from t3vis.queries import console_process
from t3vis.queries.sql_console import QueryRefused, run_query
from t3vis.store.database import Store

ENDLESS = "SELECT sum(hash(a.range * b.range)) FROM range(1000000) a, range(1000000) b"  # runs until stopped
# Sorts larger than their memory limit: DuckDB spills them to disk; the second one runs for many seconds.
SPILLING = "SELECT * FROM range(5000000) ORDER BY hash(range)"
SPILLING_LONG = "SELECT * FROM range(300000000) ORDER BY hash(range)"
SPILL_LIMITS = {"memory_limit": "30MB", "temp_limit": "2GB", "threads": 1}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return build_synthetic_store(tmp_path_factory.mktemp("console") / "s.duckdb",
                                 SyntheticConfig(n_examples=120, n_train=80))


@pytest.fixture()
def spill_root(tmp_path, monkeypatch):
    """The folder this test's queries make their spill folders in (the process's temporary folder)."""
    root = tmp_path / "tmp"
    root.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(root))
    return root


class FolderWatch:
    """Every name seen in ``folders`` (recursively) while it runs: for files that come and go within a query."""

    def __init__(self, *folders: Path):
        self.folders, self.seen, self._stop = folders, set(), threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while not self._stop.is_set():
            for folder in self.folders:
                self.seen.update(str(path.relative_to(folder)) for path in folder.rglob("*"))
            time.sleep(0.005)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def _beside(store: Store) -> set[str]:
    return {path.name for path in store.path.parent.iterdir()}


# -- item 9: a console query delays nobody -------------------------------------------------------------------

def test_a_long_console_query_does_not_delay_another_visitors_reads(store):
    run_query(store, "SELECT 1")  # a worker is ready, as after the page's warm-up
    outcome = []

    def visitor_one():
        try:
            run_query(store, ENDLESS, timeout=4, threads=1)
            outcome.append("finished")
        except QueryRefused as refused:
            outcome.append(str(refused))

    console = threading.Thread(target=visitor_one)
    console.start()
    time.sleep(0.5)  # the query is running
    latencies = []
    while console.is_alive() and len(latencies) < 20:
        started = time.perf_counter()
        other = Store(store.path)  # another visitor's page opens the store and reads, in the same server process
        assert other.query("SELECT count(*) AS n FROM predictions").n[0] == 360
        latencies.append(time.perf_counter() - started)
        time.sleep(0.1)
    console.join()
    print(f"\nanother reader during a 4 s console query: {len(latencies)} reads, the slowest in "
          f"{max(latencies) * 1000:.0f} ms")
    assert outcome and "longer than 4 s" in outcome[0]  # the console query ran all along
    assert len(latencies) >= 10 and max(latencies) < 1.0, latencies


def test_a_warm_worker_is_reused_and_a_dead_one_replaced(store):
    run_query(store, "SELECT 1")
    [worker] = [w for w in console_process._POOL._idle if w.alive()][-1:]
    run_query(store, "SELECT 2")
    assert worker in console_process._POOL._idle  # the same process served the next query
    timings = []
    for _ in range(5):
        started = time.perf_counter()
        run_query(store, "SELECT count(*) FROM runs")
        timings.append(time.perf_counter() - started)
    print(f"\nwarm console query: median {sorted(timings)[2] * 1000:.0f} ms")
    worker.process.kill()
    worker.process.wait()
    assert run_query(store, "SELECT 3 AS x").frame.x.tolist() == [3]  # a fresh worker took over


# -- item 6: spill files ---------------------------------------------------------------------------------

def test_a_spilling_query_spills_into_a_folder_of_its_own_never_beside_the_store(store, spill_root):
    before = _beside(store)
    with FolderWatch(store.path.parent) as beside, FolderWatch(spill_root) as spilled:
        result = run_query(store, SPILLING, max_rows=5, timeout=60, **SPILL_LIMITS)
    assert len(result.frame) == 5
    assert beside.seen == before  # never a <store>.tmp beside the store, not even while the query ran
    spill_files = {name for name in spilled.seen if "/" in name}
    assert spill_files, "the query did not spill: make it larger"
    assert all(name.startswith("t3vis-sql-") for name in spilled.seen)
    assert list(spill_root.iterdir()) == []  # and its spill folder is gone


def test_an_interrupted_spilling_query_leaves_no_files(store, spill_root):
    before = _beside(store)
    with FolderWatch(spill_root) as watch, pytest.raises(QueryRefused, match="longer than 1 s"):
        run_query(store, SPILLING_LONG, max_rows=5, timeout=1, **SPILL_LIMITS)
    assert any("/" in name for name in watch.seen)  # it had spilled
    assert _beside(store) == before and list(spill_root.iterdir()) == []


def test_a_killed_worker_leaves_no_files_and_its_query_gets_a_message(store, spill_root, monkeypatch):
    taken = []
    take = console_process._POOL.take
    monkeypatch.setattr(console_process._POOL, "take", lambda: taken.append(take()) or taken[-1])

    def kill_when_spilling():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(len(path.parts) > len(spill_root.parts) + 1
                                                      for path in spill_root.rglob("*")):
            time.sleep(0.01)
        taken[0].process.send_signal(signal.SIGKILL)

    killer = threading.Thread(target=kill_when_spilling)
    killer.start()
    before = _beside(store)
    with pytest.raises(QueryRefused, match="could not run: the query's process ended unexpectedly"):
        run_query(store, SPILLING_LONG, max_rows=5, timeout=60, **SPILL_LIMITS)
    killer.join()
    assert _beside(store) == before and list(spill_root.iterdir()) == []
    assert run_query(store, "SELECT 1 AS x").frame.x.tolist() == [1]


KILLED_SERVER = textwrap.dedent("""
    import sys
    from t3vis.queries.sql_console import run_query
    from t3vis.store.database import Store

    print("running", flush=True)
    run_query(Store(sys.argv[1]), sys.argv[2], max_rows=5, timeout=3, memory_limit="30MB", temp_limit="2GB",
              threads=1)
""")


def test_a_killed_server_leaves_no_files_beside_the_store_nor_in_its_temporary_folder(store, tmp_path):
    """The process that ran the query is killed mid-spill (a server or `t3vis sql` stopped with SIGKILL): the
    worker ends the query at its timeout and removes its spill folder; nothing was ever beside the store."""
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    before = _beside(store)
    with FolderWatch(store.path.parent) as watch:
        server = subprocess.Popen([sys.executable, "-c", KILLED_SERVER, str(store.path),
                                   SPILLING_LONG],
                                  env={**os.environ, "TMPDIR": str(temporary)}, stdout=subprocess.PIPE)
        assert server.stdout.readline() == b"running\n"
        deadline = time.monotonic() + 60
        while not any(path.is_file() for path in temporary.rglob("*")) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert time.monotonic() < deadline, "the query never spilled"
        server.kill()
        server.wait()
        deadline = time.monotonic() + 3 + console_process.KILL_GRACE + 10
        while list(temporary.iterdir()) and time.monotonic() < deadline:
            time.sleep(0.1)
    assert list(temporary.iterdir()) == []
    assert not [name for name in watch.seen if name not in before] and _beside(store) == before


def test_a_query_that_does_not_stop_by_itself_is_killed_at_its_timeout(store, spill_root, monkeypatch):
    """The worker's own timer interrupts DuckDB at the timeout; should that not stop it, the server kills the
    worker KILL_GRACE seconds later. Here the server's watchdog comes first (a grace below zero)."""
    monkeypatch.setattr(console_process, "KILL_GRACE", -29.0)  # killed 1 s after it started, its own timer at 30 s
    started = time.monotonic()
    with pytest.raises(QueryRefused, match="longer than 30 s"):
        run_query(store, SPILLING_LONG, max_rows=5, timeout=30, **SPILL_LIMITS)
    assert time.monotonic() - started < 10
    assert list(spill_root.iterdir()) == []
    assert run_query(store, "SELECT 1 AS x").frame.x.tolist() == [1]
