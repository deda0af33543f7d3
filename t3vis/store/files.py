"""Opening a store's file safely: waiting out another process's lock (and telling a filesystem without locks
from one), DuckDB's write-ahead log, and the files a first write creates.

DuckDB lets one process hold a file read-write and then nobody else may open it, not even read-only; a read-only
opener in turn keeps a writer out. Connections are therefore short and retried while the lock is held
(:func:`connect_waiting`).
"""

from __future__ import annotations

import errno
import os
import re
import struct
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import duckdb

from t3vis.errors import StoreError, StoreLockedError


# DuckDB's messages for a file held by another connection, matched (after removing the file's path, so that a
# path containing these words is not taken for a lock) only where the operating system cannot be asked.
_LOCK_PATTERNS = (re.compile(r"Could not set lock on file.*Conflicting lock"),)

# Lock states of a file, as the operating system tells them (lock_state).
LOCK_HELD, LOCK_FREE, LOCKS_UNSUPPORTED, LOCK_UNKNOWN = "held", "free", "unsupported", "unknown"
_FLOCK = "hhqqi4x"  # Linux's struct flock: l_type, l_whence, l_start, l_len, l_pid (and padding)
_NO_LOCK_ERRNOS = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS}


def lock_state(path: Path, *, exclusive: bool) -> str:
    """Whether another process holds a lock on ``path`` that conflicts with a shared (reading) or an exclusive
    (writing) one, as DuckDB takes them: LOCK_HELD, LOCK_FREE, LOCKS_UNSUPPORTED (the filesystem has no file
    locks, e.g. NFS without a lock daemon) or LOCK_UNKNOWN (this platform cannot be asked). Asks with F_GETLK,
    which takes no lock and works on a file opened read-only."""
    if not sys.platform.startswith("linux"):
        return LOCK_UNKNOWN
    import fcntl

    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return LOCK_UNKNOWN
    try:
        asked = struct.pack(_FLOCK, fcntl.F_WRLCK if exclusive else fcntl.F_RDLCK, os.SEEK_SET, 0, 0, 0)
        answer = fcntl.fcntl(fd, fcntl.F_GETLK, asked)
    except OSError as exc:
        return LOCKS_UNSUPPORTED if exc.errno in _NO_LOCK_ERRNOS else LOCK_UNKNOWN
    finally:
        os.close(fd)
    return LOCK_FREE if struct.unpack(_FLOCK, answer)[0] == fcntl.F_UNLCK else LOCK_HELD


def is_lock_conflict(exc: BaseException, path: Path, *, read_only: bool = True) -> bool:
    """Whether a DuckDB error opening ``path`` is a lock that another connection holds (worth waiting for).

    Decided by what the error is, not by its wording where that can be avoided: a ConnectionException is
    another connection of this process holding the file with another configuration; for an IOException the
    operating system is asked whether another process holds a conflicting lock on the file. A filesystem
    without file locks is no conflict (see :func:`no_file_locks`): waiting would not help."""
    if isinstance(exc, duckdb.ConnectionException):
        return True
    if not isinstance(exc, duckdb.IOException):
        return False
    state = lock_state(path, exclusive=not read_only)
    if state != LOCK_UNKNOWN:
        return state == LOCK_HELD
    message = str(exc)
    for form in {str(path), str(path.resolve()), os.path.abspath(path)}:
        message = message.replace(form, "<store>")
    return any(pattern.search(message) for pattern in _LOCK_PATTERNS)


def no_file_locks(exc: BaseException, path: Path) -> bool:
    """Whether a DuckDB error opening ``path`` comes from a filesystem without file locks."""
    return isinstance(exc, duckdb.IOException) and lock_state(path, exclusive=False) == LOCKS_UNSUPPORTED


def connect_waiting(path: Path, *, read_only: bool, config: Mapping[str, Any] | None = None,
                    lock_timeout: float = 60.0) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection to ``path``, retried while another connection holds a conflicting lock (up to
    ``lock_timeout`` seconds, then StoreLockedError); any other failure is a StoreError saying what to do."""
    deadline = time.monotonic() + lock_timeout
    delay = 0.01
    freed = False  # the lock that refused us was gone when asked: one more try tells a release from another error
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only, config=dict(config or {}))
        except duckdb.Error as exc:
            if no_file_locks(exc, path):
                raise StoreError(
                    f"Cannot open {path}: its filesystem does not support file locks, which DuckDB needs (a network "
                    "filesystem without a lock service, for example). Put the store on a local disk (copy it "
                    "there to read it)."
                ) from exc
            if not is_lock_conflict(exc, path, read_only=read_only):
                if isinstance(exc, duckdb.IOException) and not freed:
                    freed = True  # released between DuckDB's try and our question: try again at once
                    continue
                raise StoreError(_open_failure(path, exc, read_only=read_only)) from exc
            if time.monotonic() > deadline:
                raise StoreLockedError(
                    f"{path} stayed locked by another process for {lock_timeout:.0f} s. Is a writer stuck? Close it, "
                    "or raise lock_timeout."
                ) from exc
            time.sleep(delay)
            delay = min(delay * 2, 0.25)


def merge_pending_log(path: Path, *, lock_timeout: float = 60.0) -> None:
    """Apply a database file's pending write-ahead log to the file itself (DuckDB's CHECKPOINT), so that the file
    can be copied or replaced on its own. A writer killed after its commit and before DuckDB's own checkpoint
    (a crashed training run) leaves rows that live only in ``<file>.wal``: a copy of the file alone loses them,
    and a new file put in its place beside that log cannot be opened. The rows stay as they are; waits while
    another process holds the file, as every write does."""
    if not log_of(path).exists():
        return
    con = connect_waiting(path, read_only=False, lock_timeout=lock_timeout)
    try:
        con.execute("CHECKPOINT")
    finally:
        con.close()
    if log_of(path).exists() and log_of(path).stat().st_size > 0:
        raise StoreError(f"Could not apply the write-ahead log {log_of(path)} to {path}; copy both files together.")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _open_failure(path: Path, exc: duckdb.Error, *, read_only: bool) -> str:
    text = str(exc)
    if "not a valid DuckDB database file" in text:
        return (f"{path} is not a DuckDB database (nor a t3vis store). Give the path of a store written by "
                "t3vis, or a new path to create one.")
    if "ermission denied" in text or "Read-only file system" in text:
        action = "read" if read_only else "write"
        return f"Cannot {action} {path}: permission denied. Check the permissions of the file and its folder."
    return f"Cannot open {path} as a DuckDB database: {_first_line(exc)}"


def _check_can_create(path: Path) -> None:
    """Refuse early a new store path whose folder cannot be made or written."""
    folder = path.parent.resolve()
    existing = folder
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise StoreError(f"Cannot create the store {path}: {existing} is a file, not a folder. Choose another path.")
    if not os.access(existing, os.W_OK | os.X_OK):
        what = "its folder" if existing == folder else f"the folder {folder}, since {existing} is not writable"
        raise StoreError(f"Cannot create the store {path} in {what}. Choose a store path in a folder you can "
                         "write to.")


def log_of(path: Path) -> Path:
    """DuckDB's write-ahead log of a database file."""
    return path.with_name(path.name + ".wal")


def _file_identity(path: Path) -> tuple[int, int] | None:
    """(device, inode) of a file, None when there is none: tells a file apart from one put in its place."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_dev, stat.st_ino


def _remove_created(path: Path) -> None:
    """Remove a store file that a failed first write created, and its write-ahead log (made by this process:
    ``Store._create_file`` refuses a path that had one)."""
    for file in (path, log_of(path)):
        try:
            file.unlink()
        except FileNotFoundError:
            pass
