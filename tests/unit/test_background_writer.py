"""The background writer runs writes in order, below the training threads' priority."""

from __future__ import annotations

import os
import sys
import threading

import pytest

from t3vis.store.background_writer import WRITER_NICENESS, BackgroundWriter


def test_writes_run_in_order_on_a_thread_of_their_own():
    seen = []
    writer = BackgroundWriter()
    for index in range(5):
        writer.submit(f"write {index}", lambda index=index: seen.append((index, threading.get_native_id())))
    assert writer.flush(30)
    assert [index for index, _ in seen] == list(range(5)) and writer.written == 5
    assert {thread for _, thread in seen} != {threading.get_native_id()}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread priorities are a Linux feature")
def test_writes_yield_the_cores_to_training():
    """The writes (and DuckDB's threads they start) run at a lower priority than the training loop, so that on a
    machine with two cores they take the time training leaves."""
    priorities = []
    writer = BackgroundWriter()
    writer.submit("priority", lambda: priorities.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id())))
    assert writer.flush(30)
    main = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    assert priorities == [min(main + WRITER_NICENESS, 19)]
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == main  # the training thread is unchanged
