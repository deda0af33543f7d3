"""The demo's background build (t3vis.demo.background): the real child process, stopped midway."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from t3vis.demo.background import OVERALL_PHASE, PROGRESS, BackgroundDemoBuild, child_command
from t3vis.demo.scratch import OWNER_FILE
from t3vis.errors import StoreError
from t3vis.store.database import Store


def _until_training(child: subprocess.Popen) -> None:
    """Read the child's reports until fine-tuning has begun (the scratch store exists by then)."""
    deadline = time.monotonic() + 240
    for line in child.stdout:
        if line.startswith(f"{PROGRESS}\t{OVERALL_PHASE}\t"):
            return
        assert time.monotonic() < deadline, "the child reported no fine-tuning step"
    raise AssertionError(f"the child exited with code {child.wait()} before fine-tuning")


@pytest.mark.slow
def test_a_build_stopped_midway_leaves_no_store(tmp_path):
    """The child exits at once when its parent is gone (its stdin closes), as abruptly as a kill: its scratch folder
    stays, but no store was moved into place."""
    path = tmp_path / "store" / "demo.duckdb"
    child = subprocess.Popen(child_command(path), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, text=True)
    try:
        _until_training(child)
        child.stdin.close()
        assert child.wait(30) != 0
    finally:
        if child.poll() is None:
            child.kill()
    assert not path.exists()
    assert all(".demo-build-" in str(p.parent) for p in tmp_path.rglob("*.duckdb"))
    with pytest.raises(StoreError):
        Store(path)


def test_a_new_build_removes_the_scratch_folders_of_killed_ones_and_nothing_else(tmp_path):
    path = tmp_path / "demo.duckdb"
    killed = tmp_path / ".demo-build-abc123"
    (killed / "checkpoints").mkdir(parents=True)
    (killed / "checkpoints" / "model.safetensors").write_bytes(b"0" * 100)
    (killed / OWNER_FILE).write_bytes(b"")  # its build's lock file, which no process holds any more
    theirs = [tmp_path / "notes.txt", tmp_path / "demo-build-notes"]  # not t3vis's scratch folders
    theirs[0].write_text("keep")
    theirs[1].mkdir()
    script = "import sys; from pathlib import Path; Path(sys.argv[1]).write_text('x')"
    build = BackgroundDemoBuild(path, command=[sys.executable, "-c", script, str(path)])
    assert build.start() and build.wait(30).built
    assert not killed.exists() and all(other.exists() for other in theirs)


def test_a_failed_build_tells_how_it_ended_without_its_output():
    from t3vis.demo.background import short_reason

    traceback = ['  File "/mount/src/t3vis/t3vis/demo/build.py", line 3', "torch.OutOfMemoryError: CUDA out of memory"]
    assert short_reason(1, traceback) == ("the build process exited with code 1 after a torch.OutOfMemoryError; "
                                          "the server's log has the details")
    assert short_reason(-9, []).startswith("the build process was stopped by signal 9 (most often: out of memory)")


def test_start_is_a_no_op_while_a_build_runs_and_after_it_built_the_store(tmp_path):
    path = tmp_path / "demo.duckdb"
    script = ("import sys, time; from pathlib import Path; time.sleep(1); "
              "print('t3vis-demo-progress\\tfine-tuning\\t1\\t2', flush=True); Path(sys.argv[1]).write_text('x')")
    build = BackgroundDemoBuild(path, command=[sys.executable, "-c", script, str(path)])
    assert build.start() and build.status().running
    assert not build.start()
    status = build.wait(30)
    assert status.built and not status.running and status.error is None and status.fraction == 1.0
    assert not build.start()  # the store it built is there
    path.unlink()
    assert build.start()  # gone: build it again
    assert build.wait(30).built


def test_a_failing_child_reports_how_it_ended_and_its_progress_and_logs_its_last_words(tmp_path, caplog):
    path = tmp_path / "demo.duckdb"
    script = ("import sys; print('t3vis-demo-progress\\tfine-tuning\\t3\\t4', flush=True); "
              "print('Traceback (most recent call last):'); print('MemoryError: out of memory'); sys.exit(1)")
    build = BackgroundDemoBuild(path, command=[sys.executable, "-c", script])
    build.start()
    status = build.wait(30)
    assert not status.running and not status.built
    assert status.error == "the build process exited with code 1 after a MemoryError; the server's log has the details"
    assert "MemoryError: out of memory" in caplog.text  # the output itself: for the server's operator
    assert status.fraction == 0.75 and status.text == "fine-tuning: 3 / 4"
    refused = BackgroundDemoBuild(path, command=[sys.executable, "-c", "print('t3vis-demo-failed\\tnot a demo store')"])
    refused.start()
    assert refused.wait(30).error == "not a demo store"
