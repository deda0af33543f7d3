"""The benchmarks' peak memory counts a child that exited before the measurement stopped (the demo build's child),
from the peak the child reports as it ends."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from app_browser import PeakMemory
from t3vis.demo.background import PEAK_FILE

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PeakMemory reads Linux's /proc")

CHILD_MB = 300
# A child that touches CHILD_MB of memory, reports its peak as the demo build's child does, and exits.
CHILD = ("import sys; from t3vis.demo.background import _report_peak_memory; "
         f"block = bytearray({CHILD_MB} * 2**20); block[::4096] = b'x' * len(block[::4096]); "
         "_report_peak_memory()")
# A parent that starts it once told to, waits for it, and stays until its standard input closes, as the server does.
PARENT = ("import subprocess, sys; sys.stdin.readline(); "
          f"subprocess.run([sys.executable, '-c', {CHILD!r}], check=True); print('done', flush=True); "
          "sys.stdin.read()")


def test_a_child_that_exited_before_the_end_is_counted_from_its_own_report(tmp_path):
    reports = tmp_path / "peaks.txt"
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True, env={**os.environ, PEAK_FILE: str(reports)})
    try:
        time.sleep(0.5)  # the parent is up
        memory = PeakMemory(parent.pid, reports=reports)
        parent.stdin.write("go\n")
        parent.stdin.flush()
        assert parent.stdout.readline() == "done\n"
        assert not memory.process.children()  # the child has exited: its high-water mark went with it
        peak_mb = memory.stop()
    finally:
        parent.stdin.close()
        parent.wait(30)
    (line,) = reports.read_text().splitlines()
    child_mb = float(line.split()[1])
    assert CHILD_MB < child_mb < CHILD_MB + 200  # its own memory: not the parent's it was started from
    assert child_mb < peak_mb < child_mb + 100  # the parent's own few MB on top
