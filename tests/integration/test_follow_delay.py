"""Follow training against writers in other processes: a real Trainer's checkpoints appear in the followed page
within seconds of their commit, and a look at the store never waits for, nor gets in the way of, a writer."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

from follow_helpers import CONFIG
from helpers import PROJECT
from live_training import follow_a_training
from page_helpers import open_page
from t3vis.fixtures.synthetic_store import build_synthetic_store
from t3vis.queries.store_changes import contents
from t3vis_app import follow

GOAL_SECONDS = 10.0  # from a checkpoint's commit to the followed page listing it (issue #16)


def test_every_checkpoint_of_a_training_in_another_process_appears_within_seconds_of_its_commit(tmp_path):
    followed = follow_a_training(tmp_path, epochs=3, pace=2.0)
    assert followed.trainer["problems"] == [] and followed.trainer["failures"] == [], "the looks hindered recording"
    assert followed.at_opening == [], "the page opened before the first checkpoint"
    assert [appearance.checkpoint for appearance in followed.appearances] == ["epoch-1", "epoch-2", "epoch-3"]
    delays = [round(appearance.delay, 2) for appearance in followed.appearances]
    assert all(0 < delay <= GOAL_SECONDS for delay in delays), delays
    assert followed.selected == "epoch-3", "the sidebar's checkpoint was on the latest and follows it"
    assert followed.slowest_look < follow.LOCK_WAIT + 1.0, "a look waited for a writer"


HOLDER = textwrap.dedent("""
    import sys, time
    from t3vis.store.database import Store

    with Store(sys.argv[1]).transaction() as con:  # the file stays locked until the commit
        con.execute("INSERT INTO checkpoints (run_id, checkpoint, step, epoch) VALUES ('synthetic', 'epoch-3', 300, 3)")
        print("inside", flush=True)
        time.sleep(float(sys.argv[2]))
    print("committed", flush=True)
""")


def test_a_look_during_another_process_write_gives_up_quickly_and_the_next_one_sees_the_commit(tmp_path):
    store = build_synthetic_store(tmp_path / "growing.duckdb", CONFIG)
    app = open_page(str(PROJECT / "pages" / "overview.py"), store.path, follow_training=True)
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(store.path), "4"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "inside", holder.stderr.read()

    started = time.monotonic()
    assert contents(store, wait=follow.LOCK_WAIT) is None, "the store is held: no contents"
    assert time.monotonic() - started < follow.LOCK_WAIT + 1.0
    started = time.monotonic()
    assert not follow.check(app.session_state, store), "nothing committed yet"
    assert time.monotonic() - started < follow.LOCK_WAIT + 1.0, "a look waited for the writer"

    assert holder.stdout.readline().strip() == "committed"
    assert holder.wait(30) == 0, holder.stderr.read()
    assert follow.check(app.session_state, store)
    app.run()
    checkpoint = next(widget for widget in app.sidebar.selectbox if widget.key == "w.checkpoint")
    assert checkpoint.options == ["epoch-1", "epoch-2", "epoch-3"] and checkpoint.value == "epoch-3"
