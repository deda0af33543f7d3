"""The app removes only the demo scratch folders of builds that ended, never the one a `t3vis demo` works in."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from t3vis.demo.background import BackgroundDemoBuild
from t3vis.demo.scratch import OWNER_FILE, SCRATCH_PREFIX

WRITE_THE_STORE = "import sys; from pathlib import Path; Path(sys.argv[1]).write_text('x')"  # a stand-in build


def _app_build(path) -> None:
    """What the app does on a visit with no store: start a build (here a stand-in), which first removes the
    scratch folders of killed builds."""
    build = BackgroundDemoBuild(path, command=[sys.executable, "-c", WRITE_THE_STORE, str(path)])
    assert build.start() and build.wait(30).built
    path.unlink()


def test_the_app_keeps_the_scratch_folder_of_a_running_demo_command_and_removes_it_once_killed(tmp_path):
    target = tmp_path / "demo.duckdb"
    command = [sys.executable, "-m", "t3vis.cli", "demo", "--store", str(target), "--quiet"]
    demo = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"})
    try:
        deadline = time.monotonic() + 240
        while not list(tmp_path.glob(f"{SCRATCH_PREFIX}*/demo.duckdb")):  # its store is written: it is training
            assert demo.poll() is None, f"`t3vis demo` exited with code {demo.returncode}"
            assert time.monotonic() < deadline, "`t3vis demo` made no scratch store in 240 s"
            time.sleep(0.2)
        (scratch,) = tmp_path.glob(f"{SCRATCH_PREFIX}*")
        _app_build(target)
        assert (scratch / "demo.duckdb").is_file(), "the app removed the folder of a build that was running"
        assert demo.poll() is None
    finally:
        demo.send_signal(signal.SIGKILL)  # as the out-of-memory killer would: no clean-up
        demo.wait(30)
    assert scratch.is_dir()
    _app_build(target)
    assert not scratch.exists()


def test_a_scratch_folder_that_cannot_be_proved_abandoned_stays(tmp_path):
    abandoned = tmp_path / f"{SCRATCH_PREFIX}killed"  # as a killed build leaves it: its owner file, unheld
    abandoned.mkdir()
    (abandoned / OWNER_FILE).write_bytes(b"")
    unknown = tmp_path / f"{SCRATCH_PREFIX}old"  # no owner file: an older t3vis's, or not t3vis's at all
    (unknown / "checkpoints").mkdir(parents=True)
    _app_build(tmp_path / "demo.duckdb")
    assert not abandoned.exists() and (unknown / "checkpoints").is_dir()
