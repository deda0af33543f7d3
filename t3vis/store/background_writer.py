"""Writing to the store from a thread of its own, so that recording never waits for a reader.

DuckDB lets one process write a file and nobody else open it meanwhile; a reader in another
process (the app, an SQL console query of up to 30 s) in turn keeps the writer out. A training
loop that wrote directly would stall, or fail once the lock timeout passed. The
:class:`BackgroundWriter` takes each write as a function, returns at once, and runs the writes
in order on its thread: a write that finds the store locked waits and is retried until the lock
frees; a write that fails for any other reason is reported (to ``on_failure``: the Trainer callback
lists it in its ``problems``; by default, a warning) and dropped. Nothing is ever raised into the
training loop. At the end of training, :meth:`BackgroundWriter.flush` waits for the queue to drain.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
import warnings
from collections.abc import Callable

from t3vis.errors import StoreLockedError

log = logging.getLogger(__name__)


class RecordingWarning(RuntimeWarning):
    """Something t3vis could not record; training went on."""


class BackgroundWriter:
    """Runs store writes in submission order on a daemon thread.

    Parameters
    ----------
    retry_delay : float
        Seconds to wait before retrying a write that found the store locked.
    on_failure : callable, optional
        Called on the writer's thread with the message of each write that failed (default: warn it as a
        :class:`RecordingWarning`); it must be safe to call from another thread.
    """

    def __init__(self, *, retry_delay: float = 0.5, on_failure: Callable[[str], object] | None = None):
        self.retry_delay = retry_delay
        self.on_failure = on_failure or _warn
        self.failures: list[str] = []  # descriptions of the writes that failed, with the reason
        self.written = 0
        self._queue: queue.Queue = queue.Queue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    @property
    def pending(self) -> int:
        """Writes submitted and not finished yet."""
        return self._queue.unfinished_tasks

    def submit(self, description: str, write: Callable[[], object]) -> None:
        """Queue ``write()`` (one store transaction); returns at once."""
        with self._start_lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="t3vis-writer", daemon=True)
                self._thread.start()
        self._queue.put((description, write))

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every submitted write is done (or ``timeout`` seconds); True when the queue is empty."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._queue.unfinished_tasks:
            if deadline is not None and time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    def _run(self) -> None:
        _yield_to_training()
        while True:
            description, write = self._queue.get()
            try:
                self._write_until_done(description, write)
            finally:
                self._queue.task_done()

    def _write_until_done(self, description: str, write: Callable[[], object]) -> None:
        waited = 0.0
        while True:
            try:
                write()
                self.written += 1
                if waited:
                    log.info("t3vis wrote %s after waiting %.0f s for the store's lock", description, waited)
                return
            except StoreLockedError:
                # A reader (or another writer) holds the store: wait and retry, however long it takes.
                time.sleep(self.retry_delay)
                waited += self.retry_delay
            except Exception as exc:  # recording must never fail training: report and go on
                message = f"t3vis could not record {description}: {exc}"
                self.failures.append(message)
                log.error(message)
                try:
                    self.on_failure(message)
                except Exception:  # the writer's thread goes on with the next write, whatever the report does
                    log.exception("t3vis could not report a failed write")
                return


def _warn(message: str) -> None:
    warnings.warn(message, RecordingWarning, stacklevel=2)


WRITER_NICENESS = 10  # how much lower than the training threads the writes run (added to the Linux nice value)


def _yield_to_training() -> None:
    """Lower this thread's scheduling priority (Linux: a thread is a task of its own; the threads DuckDB starts
    from it inherit the value), so that on a machine with few cores the writes take the time training leaves."""
    try:
        thread = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, thread, min(19, os.getpriority(os.PRIO_PROCESS, thread) + WRITER_NICENESS))
    except (AttributeError, OSError):  # not Linux, or not allowed: the writes keep the process's priority
        pass
