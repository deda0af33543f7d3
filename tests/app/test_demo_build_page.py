"""The no-store screen: the demo is built at once at the default demo path (a fresh hosted app's first visit), one
build for the whole server, and nowhere else.

The build's child process is replaced by a small script that reports progress and writes a synthetic store (the
real child is tested in tests/integration/test_demo_background.py); it notes each start in a log file.
"""

from __future__ import annotations

import sys
import threading

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from helpers import PROJECT
from t3vis.demo import background

OVERVIEW = str(PROJECT / "pages" / "overview.py")
FAKE_CHILD = """
import sys, time
from pathlib import Path
from t3vis.demo.background import PROGRESS
from t3vis.fixtures.synthetic_store import SyntheticConfig, build_synthetic_store

path, log = Path(sys.argv[1]), Path(sys.argv[2])
with log.open("a") as notes:
    notes.write("build\\n")
for step in range(1, 5):
    print(f"{PROGRESS}\\tfine-tuning\\t{step}\\t4", flush=True)
    time.sleep(0.3)
if (log.parent / "fail").exists():
    print("RuntimeError: power cut", flush=True)
    sys.exit(1)
scratch = path.with_name(".scratch.duckdb")
build_synthetic_store(scratch, SyntheticConfig(n_examples=12, n_train=20, seed=3))
scratch.replace(path)
"""


@pytest.fixture()
def builds(tmp_path, monkeypatch):
    """Work in tmp_path (the default demo path, store/demo.duckdb, is relative to it) with the fake child; returns
    a function giving the number of builds started so far."""
    monkeypatch.chdir(tmp_path)
    st.cache_resource.clear()  # the open stores are cached per path, and these tests share a relative one
    st.cache_data.clear()
    (tmp_path / "store").mkdir()
    log = tmp_path / "builds.log"
    monkeypatch.setattr(background, "child_command",
                        lambda path: [sys.executable, "-c", FAKE_CHILD, str(path), str(log)])
    return lambda: len(log.read_text().splitlines()) if log.exists() else 0


def _overview(store_path) -> AppTest:
    app = AppTest.from_file(OVERVIEW, default_timeout=60)
    app.session_state["store_path"] = str(store_path)
    return app


def _opened_the_demo(app: AppTest) -> bool:
    return not app.exception and len(app.dataframe) >= 1 and app.dataframe[0].value.run_id.tolist() == ["synthetic"]


def test_the_first_visit_builds_the_demo_and_opens_it(builds, tmp_path):
    app = _overview("store/demo.duckdb").run()
    assert _opened_the_demo(app), app
    assert builds() == 1 and (tmp_path / "store" / "demo.duckdb").is_file()
    assert _opened_the_demo(_overview("store/demo.duckdb").run()) and builds() == 1  # the next visit just opens it


def test_visitors_arriving_together_share_one_build(builds):
    apps = [_overview("store/demo.duckdb") for _ in range(3)]
    threads = [threading.Thread(target=app.run) for app in apps]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert builds() == 1
    assert all(_opened_the_demo(app) for app in apps)


def test_a_failed_build_shows_why_with_its_progress_and_can_be_started_again(builds, tmp_path):
    (tmp_path / "fail").touch()
    app = _overview("store/demo.duckdb").run()
    assert not app.exception
    assert app.progress[0].value == 100  # all 4 steps were reported before the failure
    [error] = app.error
    assert "exited with code 1 after a RuntimeError" in error.value
    assert "power cut" not in error.value  # the child's output (a traceback names server paths) stays in the log
    assert [button.label for button in app.button] == ["Build the demo again"]
    assert not (tmp_path / "store" / "demo.duckdb").exists() and builds() == 1
    # another visitor sees the failure too, and starts nothing by opening the page
    other = _overview("store/demo.duckdb").run()
    assert any("RuntimeError" in error.value for error in other.error) and builds() == 1
    app.button[0].click().run()  # it fails again: the page says so once, with its one button
    assert not app.exception and builds() == 2 and len(app.error) == 1
    assert [button.label for button in app.button] == ["Build the demo again"]
    (tmp_path / "fail").unlink()
    app.button[0].click().run()
    assert _opened_the_demo(app) and builds() == 3


def test_a_deployment_with_its_own_store_builds_the_demo_only_on_request(builds, tmp_path, monkeypatch):
    """With T3VIS_STORE naming the deployment's store, typing the demo's path does not start a training run."""
    monkeypatch.setenv("T3VIS_STORE", str(tmp_path / "store" / "ours.duckdb"))
    app = _overview("store/demo.duckdb").run()
    assert not app.exception and builds() == 0 and len(app.progress) == 0
    assert [button.label for button in app.button] == ["Build the demo store"]
    app.button[0].click().run()
    assert _opened_the_demo(app) and builds() == 1


def test_nothing_is_built_at_any_other_path(builds, tmp_path):
    """A visitor cannot make the server write where they choose: only the default demo path is built."""
    for elsewhere in (tmp_path / "demo.duckdb", tmp_path / "store" / "sst2.duckdb", "store/../demo.duckdb"):
        app = _overview(elsewhere).run()
        assert not app.exception
        assert len(app.button) == 0 and len(app.progress) == 0
        assert any("No store" in info.value for info in app.info)
        assert any("t3vis ingest" in markdown.value for markdown in app.markdown)
    assert builds() == 0
    assert sorted(path.name for path in tmp_path.rglob("*")) == ["store"]


def test_a_demo_built_by_an_older_version_is_rebuilt_other_old_stores_are_not(builds, tmp_path):
    import duckdb

    for path, mark in (("store/demo.duckdb", True), ("store/mine.duckdb", False)):
        con = duckdb.connect(path)
        con.execute((PROJECT / "tests" / "data" / "schema_v4.sql").read_text())
        con.execute("INSERT INTO t3vis_meta VALUES ('schema_version', '4')")
        if mark:
            con.execute("INSERT INTO t3vis_meta VALUES ('demo_build', 'demo')")
        con.close()
    mine = (tmp_path / "store" / "mine.duckdb").read_bytes()
    app = _overview("store/mine.duckdb").run()
    assert not app.exception and len(app.button) == 0 and builds() == 0
    assert any("t3vis upgrade" in error.value for error in app.error)  # how to convert it, and nothing built
    assert (tmp_path / "store" / "mine.duckdb").read_bytes() == mine  # opening it changed nothing
    app = _overview("store/demo.duckdb").run()
    assert _opened_the_demo(app) and builds() == 1
