"""The demo built in a child process, one build at a time, its progress readable from any thread.

The app runs this when it is opened with no demo store, e.g. on the first visit of a fresh hosted
deployment: every browser session follows the same build, and none can start a second one.

A child process rather than a thread of the server: the server keeps answering other visitors at
full speed (training in a thread would hold the GIL between tensor operations), the memory of
training goes back to the system when the child exits, and a build killed for memory (a hosting
platform's limit) leaves the server up. The child builds as ``t3vis demo`` does, in a scratch folder
moved into place at the end (:func:`t3vis.demo.build.build_demo`), so a build that fails or is
killed never leaves a store that would open half-written (a killed build's scratch folder is removed before
the next build starts: :mod:`t3vis.demo.scratch`). The child exits when its parent does: it watches its
standard input, which the parent holds open.

    python -m t3vis.demo.background PATH   # the child: one line on stdout per progress report
"""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import sys
import threading
from collections import deque
from dataclasses import dataclass, replace
from pathlib import Path

from t3vis.demo.scratch import remove_abandoned

PROGRESS = "t3vis-demo-progress"  # a child's line: PROGRESS \t phase \t done \t total
FAILED = "t3vis-demo-failed"  # a child's line: FAILED \t message (bad input, e.g. a target it must not replace)
LOG = logging.getLogger("t3vis.demo")
PEAK_FILE = "T3VIS_DEMO_PEAK_FILE"  # environment: a file the child adds its peak memory to as it ends (benchmarks)
OVERALL_PHASE = "fine-tuning"  # the phase of t3vis.demo.build whose share done stands for the whole build


@dataclass(frozen=True)
class BuildStatus:
    """Where the build stands: the latest progress report, and how the last build ended."""

    running: bool = False
    phase: str = ""
    done: int = 0
    total: int = 0
    fraction: float = 0.0  # of the whole build (the fine-tuning steps done): never goes back
    built: bool = False  # the last build finished and moved the store into place
    error: str | None = None  # why the last build failed

    @property
    def text(self) -> str:
        if not self.phase:
            return "Starting (loading torch and the model) ..."
        return f"{self.phase}: {self.done} / {self.total}" if self.total else self.phase


def child_command(path: Path) -> list[str]:
    """The command of the child that builds the demo at ``path``."""
    return [sys.executable, "-m", "t3vis.demo.background", str(path)]


class BackgroundDemoBuild:
    """Builds the demo at ``path`` in a child process; :meth:`start` is a no-op while a build runs.

    Parameters
    ----------
    path
        Where the demo store goes (resolved once, so a later change of the working folder moves nothing).
    command
        The child's command (default :func:`child_command`): it prints :data:`PROGRESS` lines and exits 0 once the
        store is in place.
    """

    def __init__(self, path: str | Path, *, command: list[str] | None = None):
        self.path = Path(path).resolve()
        self.command = command or child_command(self.path)
        self._changed = threading.Condition()
        self._status = BuildStatus()

    def status(self) -> BuildStatus:
        with self._changed:
            return self._status

    def start(self) -> bool:
        """Start a build unless one is running, or the last one built the store that is still there. Returns
        whether this call started one."""
        with self._changed:
            if self._status.running or (self._status.built and self.path.is_file()):
                return False
            remove_abandoned(self.path.parent)  # of builds killed midway; never one that runs (t3vis demo, say)
            try:
                child = subprocess.Popen(
                    self.command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                    text=True, errors="replace", env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
            except OSError as error:
                self._status = BuildStatus(error=f"the build could not start: {error}")
                return False
            self._status = BuildStatus(running=True)
        threading.Thread(target=self._follow, args=(child,), name="t3vis-demo-build", daemon=True).start()
        return True

    def wait(self, timeout: float | None = None) -> BuildStatus:
        """The status once the build has ended, or after ``timeout`` seconds, whichever comes first."""
        with self._changed:
            self._changed.wait_for(lambda: not self._status.running, timeout)
            return self._status

    def _follow(self, child: subprocess.Popen) -> None:
        last_lines: deque[str] = deque(maxlen=8)  # what the child printed besides its reports: a traceback's end
        failure = None
        for line in child.stdout:
            fields = line.rstrip("\n").split("\t")
            if fields[0] == PROGRESS and len(fields) == 4 and fields[2].isdigit() and fields[3].isdigit():
                phase, done, total = fields[1], int(fields[2]), int(fields[3])
                with self._changed:
                    fraction = done / max(total, 1) if phase == OVERALL_PHASE else self._status.fraction
                    self._status = BuildStatus(running=True, phase=phase, done=done, total=total,
                                               fraction=max(fraction, self._status.fraction))
            elif fields[0] == FAILED and len(fields) == 2:
                failure = fields[1]
            elif line.strip():
                last_lines.append(line.rstrip())
        code = child.wait()
        child.stdin.close()
        reason = failure or short_reason(code, list(last_lines))
        if code != 0 and not failure:  # the details (a traceback: server paths) go to the server's log only
            LOG.warning("The demo build failed (exit code %s); its last output:\n%s", code, "\n".join(last_lines))
        with self._changed:
            if code == 0 and self.path.is_file():
                self._status = BuildStatus(phase="built", fraction=1.0, built=True)
            else:  # the last report stays: how far the build got
                self._status = replace(self._status, running=False, error=reason)
            self._changed.notify_all()


def short_reason(code: int, last_lines: list[str]) -> str:
    """What a visitor is told about a failed build: how the process ended, and the kind of error it reported, but
    not the traceback (it names the server's paths); the server's log has the rest."""
    if code < 0:
        how = f"was stopped by signal {-code}" + (" (most often: out of memory)" if -code == signal.SIGKILL else "")
    else:
        how = f"exited with code {code}"
    error = re.match(r"([A-Za-z_][\w.]*(?:Error|Exception|Interrupt))\b", last_lines[-1]) if last_lines else None
    return f"the build process {how}" + (f" after a {error.group(1)}" if error else "") + "; the server's log has the details"


def _exit_with_parent() -> None:
    sys.stdin.read()  # returns at end of file: the parent closed the pipe, or exited
    os._exit(1)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def main(argv: list[str] | None = None) -> int:
    """The child: build the demo at the path given, reporting progress on stdout."""
    (path,) = argv if argv is not None else sys.argv[1:]
    threading.Thread(target=_exit_with_parent, daemon=True).start()
    from t3vis.demo.build import build_demo
    from t3vis.errors import StoreError

    def report(phase: str, done: int, total: int) -> None:
        print(f"{PROGRESS}\t{_one_line(phase)}\t{int(done)}\t{int(total)}", flush=True)

    try:
        build_demo(path, progress=report)
    except StoreError as error:
        print(f"{FAILED}\t{_one_line(error)}", flush=True)
        return 2
    finally:
        _report_peak_memory()
    return 0


def _report_peak_memory() -> None:
    """Write this process's peak resident memory where :data:`PEAK_FILE` names a file: one line, ``pid megabytes``.

    For a benchmark of the server: the server reaps this process, so no one else can read its peak once it has
    exited. On Linux it is the kernel's high-water mark of this process's own memory (``VmHWM``). Not
    ``ru_maxrss``: it also counts the memory of the process this one was forked from, which exec left behind (the
    server's, here; and a helper command this process starts would count all of this one's). The build runs in
    this process alone (no data loader workers)."""
    target = os.environ.get(PEAK_FILE)
    if not target:
        return
    try:
        status = Path("/proc/self/status").read_text()
        peak_kb = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:"))
    except (OSError, StopIteration):  # not Linux: the next best figure
        import resource

        peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1024 if sys.platform == "darwin" else 1)
    with open(target, "a", encoding="utf-8") as file:
        file.write(f"{os.getpid()} {peak_kb / 1024:.1f}\n")


if __name__ == "__main__":
    sys.exit(main())
