"""The demo's scratch folders: made by a build beside its target, held while it runs, removed by whoever finds
them abandoned.

A build (:func:`t3vis.demo.build.build_demo`) writes into a ``.demo-build-*`` folder beside the store and moves
the result into place at the end, removing the folder. A build killed midway (``os._exit``, the kernel's
out-of-memory killer) cannot remove it, so the app removes such folders before it starts a build of its own.
It must not remove the folder of a build that is still running: a ``t3vis demo`` command in a terminal, or the
app of another server on the same folder.

A build holds an exclusive lock (``flock``) on the file :data:`OWNER_FILE` in its folder for as long as it runs,
and the kernel releases that lock when the process ends, however it ends. A folder is abandoned, and removed,
only when its lock can be taken: that proves no process holds it, with no process id that could be reused or
belong to another container. A folder without the file (made by a t3vis from before the lock, or killed within
the instant between making the folder and the file) or on a filesystem without locks is never called abandoned:
it stays, as anything t3vis cannot prove is its own.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from t3vis.errors import StoreError, option, why_unwritable

try:
    import fcntl
except ImportError:  # Windows: no flock; no scratch folder is ever called abandoned
    fcntl = None

SCRATCH_PREFIX = ".demo-build-"
OWNER_FILE = ".t3vis-building"  # locked by the build that owns the folder, while it runs


@contextmanager
def scratch_folder(parent: Path) -> Iterator[Path]:
    """A new scratch folder in ``parent``, held for the block and removed after it.

    Raises :class:`StoreError` when ``parent`` cannot be made or written (it is a file, or read-only)."""
    try:
        parent.mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(prefix=SCRATCH_PREFIX, dir=parent))
    except OSError as error:
        raise StoreError(f"t3vis cannot build the demo in {parent}: {why_unwritable(parent, error)}. Choose another "
                         f"{option('path', flag='--store')} for the demo, in a folder you can write.") from None
    owner = None
    try:
        owner = open(folder / f"{OWNER_FILE}.new", "wb")
        _try_lock(owner)  # no lock (a filesystem without them): the folder is simply never removed by another
        (folder / f"{OWNER_FILE}.new").rename(folder / OWNER_FILE)  # so that no one ever sees it unheld
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)  # while still held, so that no one else removes it meanwhile
        if owner is not None:
            owner.close()


def remove_abandoned(parent: Path) -> list[Path]:
    """Remove the scratch folders in ``parent`` whose build has ended without removing them (see the module
    docstring); returns them. A folder whose build runs, or that cannot be proved abandoned, stays."""
    removed = []
    for folder in sorted(parent.glob(f"{SCRATCH_PREFIX}*")):
        if not folder.is_dir() or folder.is_symlink():
            continue
        try:
            with open(folder / OWNER_FILE, "rb") as owner:
                if not _try_lock(owner):
                    continue  # its build is running
                shutil.rmtree(folder, ignore_errors=True)  # held meanwhile: no build can take it
                removed.append(folder)
        except OSError:  # no owner file, or no access: not provably abandoned
            continue
    return removed


def _try_lock(file) -> bool:
    """Take the exclusive lock of ``file`` without waiting; False when another process holds it, or there are no
    locks here."""
    if fcntl is None:
        return False
    try:
        fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError:  # BlockingIOError: held; ENOLCK or EOPNOTSUPP: a filesystem without locks
        return False

