"""Where a console query runs: a worker process of its own, so that it never delays anyone else's reads.

DuckDB keeps one database instance per file per process, with one configuration. The console's sandboxed
connection (read-only, no file access, limits, settings locked) has another configuration than the app's
plain reads, so in the server's own process it would make every other page of that store wait for the
query to end. In a worker process it has its own instance, and the server's reads go on beside it (two
processes may read one file at once).

A worker is a Python process started from this interpreter; it serves one query at a time and is reused
for the next (only starting it costs much: Python and its imports, ~0.3-0.5 s). For each query:

* the server sends the job (the store, the checked SQL text, the limits) and a spill folder of its own
  (``tempfile.mkdtemp``), which DuckDB gets as ``temp_directory``: nothing is ever written beside the store,
  and the folder is removed when the query ends, however it ends;
* the worker opens the store read-only and sandboxed (:meth:`t3vis.store.database.Store.sandboxed`), says
  so, and streams the rows back in Arrow IPC, batch by batch, until the query ends or a limit is reached;
  its own timer interrupts DuckDB at the timeout;
* the server kills the worker when it does not answer in time (a query DuckDB does not interrupt, a worker
  stuck at start), or when the server stops reading (an error, Ctrl-C): a killed worker is never reused.

The frames on the pipes: one byte naming the frame, eight bytes of length, then the payload.
"""

from __future__ import annotations

import atexit
import io
import json
import os
import pickle
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import duckdb
import pyarrow as pa

from t3vis import errors
from t3vis.errors import T3visError

# Rows per fetched batch. Small, because the byte cap is checked between batches: a batch of rows
# holding megabyte strings must not overshoot it by much (64 rows of 1 MB are 64 MB).
BATCH_ROWS = 64
# Seconds a worker gets past the timeout to stop by itself (its timer interrupts DuckDB) before it is killed.
KILL_GRACE = 5.0
# Seconds a worker gets to start and open the store, on top of the store's lock_timeout (it waits for writers).
START_GRACE = 60.0
IDLE_WORKERS = 1  # workers kept for the next queries; more queries at once start more, closed when done
IDLE_SECONDS = 600.0  # then an idle worker is closed, giving its memory back
JOBS_PER_WORKER = 100  # then a fresh worker: whatever memory a long-lived process keeps is given back

_HEADER = struct.Struct("!cQ")  # the frame's kind, the payload's length
JOB, READY, SCHEMA, BATCH, DONE, FAILED = b"J", b"R", b"S", b"B", b"D", b"F"


class QueryFailed(Exception):
    """The query did not finish: ``kind`` says why ("timeout", "memory", "permission", "error", "crash")."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind
        self.message = message


@dataclass(frozen=True)
class Job:
    """One query for a worker."""

    store: Any  # the t3vis.store.database.Store to read (pickled: its path and settings)
    text: str  # one checked read-only statement
    limits: dict[str, Any]  # DuckDB settings: memory_limit, threads, max_temp_directory_size
    spill_folder: str  # DuckDB's temp_directory for this query
    timeout: float
    max_rows: int
    max_bytes: int
    cwd: str  # the server's working folder, where a relative store path starts


# -- the server's side ----------------------------------------------------------------------------

def run(store, text: str, *, limits: dict[str, Any], timeout: float, max_rows: int,
        max_bytes: int) -> tuple[pa.Table, str]:
    """Run one checked query in a worker: its first rows within ``max_rows`` and ``max_bytes``, and why the rest
    was left ("" if none was).

    Raises
    ------
    QueryFailed
        The query failed, was interrupted at ``timeout``, or its worker died or was killed.
    T3visError
        The store could not be opened (the worker's StoreError or StoreLockedError, with its message).
    """
    spill = tempfile.mkdtemp(prefix="t3vis-sql-")
    try:
        worker = _POOL.take()
    except OSError as exc:
        shutil.rmtree(spill, ignore_errors=True)
        raise QueryFailed("crash", f"could not start the query's process: {exc}") from exc
    job = Job(store=store, text=text, limits=dict(limits), spill_folder=spill, timeout=timeout, max_rows=max_rows,
              max_bytes=max_bytes, cwd=os.getcwd())
    try:
        return worker.run(job)
    finally:
        _POOL.give_back(worker)  # killed unless it answered to the end
        shutil.rmtree(spill, ignore_errors=True)


def warm_up() -> None:
    """Start a worker now if none is idle, so that the next query does not wait for one to start."""
    _POOL.warm_up()


class Worker:
    """A worker process and the pipes to it; used by one query at a time."""

    def __init__(self) -> None:
        self.log = tempfile.TemporaryFile()  # its stderr: not a pipe, which nobody reads while rows stream
        root = str(Path(__file__).resolve().parents[2])  # the folder holding this t3vis package
        env = {**os.environ, "PYTHONSAFEPATH": "1",  # the working folder's own modules are not imported
               "PYTHONPATH": os.pathsep.join([root, *filter(None, [os.environ.get("PYTHONPATH")])])}
        self.process = subprocess.Popen(
            [sys.executable, "-c", "from t3vis.queries.console_process import serve; serve()"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, env=env)
        self.jobs = 0
        self.answered = True  # whether its last job was answered to the end (it is idle, not half-way)
        self.started = False  # whether it has opened the store for its current job
        self._killed = threading.Event()

    def alive(self) -> bool:
        return self.process.poll() is None

    def run(self, job: Job) -> tuple[pa.Table, str]:
        """Send the job and read its answer: the rows, and why they were cut ("" if they were not).

        A watchdog kills the worker when it does not start the query in time (the store's lock_timeout and
        :data:`START_GRACE`) or does not end it :data:`KILL_GRACE` seconds past the timeout.
        """
        message = pickle.dumps(job)
        self.jobs += 1
        self.answered = self.started = False
        self._killed.clear()
        watchdog = self._watch(job.store.lock_timeout + START_GRACE)
        try:
            try:
                _write_frame(self.process.stdin, JOB, message)
            except OSError:
                pass  # a worker that died at once: what it wrote says why, below
            tables, cut = [], None
            for kind, payload in _frames(self.process.stdout):
                if kind == READY:
                    self.started = True
                    watchdog.cancel()
                    watchdog = self._watch(job.timeout + KILL_GRACE)
                elif kind in (SCHEMA, BATCH):
                    tables.append(pa.ipc.open_stream(payload).read_all())
                elif kind in (DONE, FAILED):
                    self.answered = True  # to the end: the worker may take the next job
                    if kind == FAILED:
                        _raise_failure(pickle.loads(payload))
                    cut = json.loads(payload)["cut"]
                    break
        finally:
            watchdog.cancel()
        if cut is None:
            self._raise_ended(job)
        return pa.concat_tables(tables), cut

    def _watch(self, seconds: float) -> threading.Timer:
        timer = threading.Timer(seconds, self._kill_late)
        timer.daemon = True
        timer.start()
        return timer

    def _kill_late(self) -> None:
        self._killed.set()
        self.process.kill()

    def _raise_ended(self, job: Job) -> None:
        """The worker stopped before the end of its answer: killed in time, or dead of its own."""
        self.process.kill()
        code = self.process.wait()
        if self._killed.is_set() and self.started:
            raise QueryFailed("timeout", f"stopped {job.timeout:g} s after it started")
        if self._killed.is_set():
            raise QueryFailed("crash", f"the query's process did not open the store within "
                                       f"{job.store.lock_timeout + START_GRACE:g} s and was stopped")
        self.log.seek(0)
        lines = self.log.read().decode(errors="replace").strip().splitlines()
        raise QueryFailed("crash", f"the query's process ended unexpectedly (exit code {code})"
                          + (f": {lines[-1]}" if lines else ""))

    def close(self, *, kill: bool = False) -> None:
        """End the worker: at once (``kill``), or by closing its input, which it reads as the end of its work."""
        try:
            if kill:
                self.process.kill()
            else:
                self.process.stdin.close()
            self.process.wait(timeout=None if kill else 5)
        except (OSError, subprocess.TimeoutExpired):
            self.process.kill()
            self.process.wait()
        finally:
            for pipe in (self.process.stdin, self.process.stdout):
                try:
                    pipe.close()
                except OSError:
                    pass
            self.log.close()


def _raise_failure(failure: dict[str, str]) -> None:
    """Raise in the server what the worker reported: the store's own error, or QueryFailed."""
    if failure["kind"] == "store":
        error = getattr(errors, failure["error"], None)
        if not (isinstance(error, type) and issubclass(error, T3visError)):
            error = errors.StoreError
        raise error(failure["message"])
    raise QueryFailed(failure["kind"], failure["message"])


class _Pool:
    """The idle workers of this process, shared by its threads (one Streamlit session each). An idle worker
    holds ~70 MB of its own: at most :data:`IDLE_WORKERS` are kept, each for :data:`IDLE_SECONDS`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._idle: list[Worker] = []

    def take(self) -> Worker:
        with self._lock:
            while self._idle:
                worker = self._idle.pop()
                if worker.alive():
                    return worker
                worker.close(kill=True)
        return Worker()

    def give_back(self, worker: Worker) -> None:
        """Keep a worker that answered its job to the end for the next; kill one that did not."""
        if worker.answered and worker.alive() and worker.jobs < JOBS_PER_WORKER and self._keep(worker):
            return
        worker.close(kill=not worker.answered)

    def warm_up(self) -> None:
        with self._lock:
            if any(worker.alive() for worker in self._idle):
                return
        worker = Worker()
        if not self._keep(worker):
            worker.close()

    def _keep(self, worker: Worker) -> bool:
        """Put the worker among the idle ones, unless there are enough; it is closed after IDLE_SECONDS unused."""
        with self._lock:
            if len(self._idle) >= IDLE_WORKERS:
                return False
            self._idle.append(worker)
        timer = threading.Timer(IDLE_SECONDS, self._expire, [worker, worker.jobs])
        timer.daemon = True
        timer.start()
        return True

    def _expire(self, worker: Worker, jobs: int) -> None:
        with self._lock:
            if worker not in self._idle or worker.jobs != jobs:  # taken since: in use, or idle again anew
                return
            self._idle.remove(worker)
        worker.close()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for worker in idle:
            worker.close()


_POOL = _Pool()
atexit.register(_POOL.close)


# -- the worker's side ----------------------------------------------------------------------------

def serve() -> None:
    """A worker's life: run the jobs read from stdin one after the other, answer on stdout; end at end of input."""
    answers = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # anything printed goes to stderr, never into the answers
    for kind, payload in _frames(sys.stdin.buffer):
        if kind == JOB:
            _serve_one(pickle.loads(payload), answers)


def _serve_one(job: Job, answers: IO[bytes]) -> None:
    """Run one job: READY once the store is open, the rows as they come, then DONE or FAILED, once the
    connection is closed and the spill folder removed. The server removes that folder too, but a server killed
    meanwhile cannot: then the worker still ends the query (at its timeout at the latest) and cleans up."""
    try:
        kind, answer = _run_job(job, answers)
    finally:
        shutil.rmtree(job.spill_folder, ignore_errors=True)
    _write_frame(answers, kind, answer)


def _run_job(job: Job, answers: IO[bytes]) -> tuple[bytes, bytes]:
    """Run the job, sending READY and the rows; the last frame to send: DONE (why the rows were cut) or
    FAILED (what went wrong)."""
    try:
        os.chdir(job.cwd)
        with job.store.sandboxed(job.limits, spill_folder=job.spill_folder) as con:
            _write_frame(answers, READY)
            timer = threading.Timer(job.timeout, con.interrupt)
            timer.start()
            try:
                cut = _stream(con, job, answers)
            finally:
                timer.cancel()
    except T3visError as exc:
        failure = {"kind": "store", "error": type(exc).__name__, "message": exc.args[0] if exc.args else str(exc)}
    except (duckdb.Error, pa.ArrowException) as exc:
        failure = {"kind": failure_kind(exc), "message": str(exc)}
    except (BrokenPipeError, KeyboardInterrupt):
        raise  # the server stopped listening: nobody to answer
    except Exception as exc:  # noqa: BLE001 - a bug must reach the server as a message, not a dead worker
        failure = {"kind": "crash", "message": f"{type(exc).__name__}: {exc}"}
    else:
        return DONE, json.dumps({"cut": cut}).encode()
    return FAILED, pickle.dumps(failure)


def failure_kind(exc: Exception) -> str:
    """What a DuckDB error means for the console: "timeout", "memory", "permission" or "error".

    DuckDB's errors may also reach us wrapped by Arrow's stream reader: judged by the message too."""
    message = str(exc)
    if isinstance(exc, duckdb.InterruptException) or "INTERRUPT Error" in message:
        return "timeout"
    if isinstance(exc, duckdb.OutOfMemoryException) or "Out of Memory Error" in message:
        return "memory"
    if isinstance(exc, duckdb.PermissionException):
        return "permission"
    return "error"


def _stream(con: duckdb.DuckDBPyConnection, job: Job, answers: IO[bytes]) -> str:
    """Send the query's first rows within the job's limits; returns why the rest was left ("" if none was).

    The result streams in batches of :data:`BATCH_ROWS` rows; reading stops at the first batch that passes a
    limit, so DuckDB never computes (and no process holds) much more than is kept."""
    reader = con.sql(job.text).to_arrow_reader(BATCH_ROWS)
    try:
        _write_frame(answers, SCHEMA, _ipc(reader.schema, []))
        cut = ""
        for batch, cut in kept_batches(reader, max_rows=job.max_rows, max_bytes=job.max_bytes):
            _write_frame(answers, BATCH, _ipc(reader.schema, [batch]))
        return cut
    finally:
        reader.close()


def kept_batches(batches, *, max_rows: int, max_bytes: int) -> Iterator[tuple[pa.RecordBatch, str]]:
    """The batches within ``max_rows`` rows and ``max_bytes`` bytes, each with why the rest was left ("" while
    nothing was): the last batch kept is cut at the limit."""
    rows = size = 0
    for batch in batches:
        cut = ""
        if rows + batch.num_rows > max_rows:
            batch = batch.slice(0, max_rows - rows)
            cut = f"more than {max_rows:,} rows"
        if size + batch.nbytes > max_bytes:
            batch = _head_within(batch, max_bytes - size)
            cut = f"more than {max_bytes / 1e6:g} MB of data"
        rows += batch.num_rows
        size += batch.nbytes
        yield batch, cut
        if cut:
            return


def _head_within(batch: pa.RecordBatch, budget: int) -> pa.RecordBatch:
    """The longest head of the batch whose data fits in ``budget`` bytes (binary search over its length)."""
    low, high = 0, batch.num_rows  # the answer lies in [low, high]; slice(0, low) always fits
    while low < high:
        middle = (low + high + 1) // 2
        if batch.slice(0, middle).nbytes <= budget:
            low = middle
        else:
            high = middle - 1
    return batch.slice(0, low)


# -- frames -----------------------------------------------------------------------------------------

def _ipc(schema: pa.Schema, batches: list[pa.RecordBatch]) -> bytes:
    """An Arrow IPC stream of the batches (each frame carries its own schema and dictionaries)."""
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, schema) as writer:
        for batch in batches:
            writer.write_batch(batch)
    return sink.getvalue()


def _write_frame(out: IO[bytes], kind: bytes, payload: bytes = b"") -> None:
    out.write(_HEADER.pack(kind, len(payload)))
    out.write(payload)
    out.flush()


def _frames(source: IO[bytes]) -> Iterator[tuple[bytes, bytes]]:
    """The frames read from ``source`` until it ends (a frame cut short ends it too)."""
    while True:
        header = source.read(_HEADER.size)
        if len(header) < _HEADER.size:
            return
        kind, length = _HEADER.unpack(header)
        payload = source.read(length)
        if len(payload) < length:
            return
        yield kind, payload
