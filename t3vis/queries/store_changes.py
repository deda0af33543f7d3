"""Whether a store has new data since the last look: for following a running training.

Two looks, cheap first. :func:`file_stamp` reads the modification time and size of the store file
and its write-ahead log: no connection, no lock, so it can run every few seconds in every browser
session without ever keeping a writer out. Every commit changes it (a writer's connection ends
with DuckDB folding its log into the file). Only when the stamp moved does :func:`contents` open
the store read-only, for one small query, and summarise what a page lists: the runs, each run's
checkpoints in training order, each run's epochs of training dynamics. A writer in the middle
of its transaction holds the file; :func:`contents` then gives up after ``wait`` seconds and
returns None (look again later) rather than queue behind it. A writer that finds the file held
by this short read (0.1 to 0.3 s on 2 cores) retries until it frees (see
:class:`t3vis.store.database.Store`).
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from pathlib import Path

from t3vis.errors import StoreLockedError
from t3vis.store.database import Store

# One connection: the checkpoints rows, one row per run and split of dynamics, one row per run. Checkpoints come
# in the order Store.checkpoints gives them (training order: the last is the latest).
_CONTENTS = """
SELECT * FROM (
    SELECT 'checkpoint' AS kind, run_id, checkpoint AS name, step, epoch, ingested_at, NULL::BIGINT AS n_rows
    FROM checkpoints
    UNION ALL
    SELECT 'dynamics', run_id, split, NULL, max(epoch), NULL, count(*) FROM training_dynamics GROUP BY run_id, split
    UNION ALL
    SELECT 'run', run_id, NULL, NULL, NULL, NULL, NULL FROM runs
)
ORDER BY kind, run_id, step NULLS LAST, epoch NULLS LAST, ingested_at, name
"""


def file_stamp(path: str | Path) -> tuple:
    """(modification time in ns, size) of the store file and of its write-ahead log; (0, 0) for a missing one.

    Reads file metadata only. Changes whenever a writer commits; a writer still inside its transaction may
    change it too (DuckDB can write large transactions' blocks before the commit), which :func:`contents`
    then tells apart."""
    path = Path(path)
    stamps = []
    for file in (path, path.with_name(path.name + ".wal")):
        try:
            stat = os.stat(file)
            stamps.append((stat.st_mtime_ns, stat.st_size))
        except FileNotFoundError:
            stamps.append((0, 0))
    return tuple(stamps)


@dataclass(frozen=True)
class StoreContents:
    """What a store lists, enough to tell that something new was committed (compare two with ``==``).

    ``checkpoints``: (run_id, ((checkpoint, ingested_at), ...) in training order) per run; a checkpoint written
    again gets a new ``ingested_at``. ``dynamics``: (run_id, split, last epoch, rows) per run and split."""

    runs: tuple[str, ...]
    checkpoints: tuple[tuple[str, tuple[tuple[str, str], ...]], ...]
    dynamics: tuple[tuple[str, str, int, int], ...]

    def checkpoint_names(self, run_id: str) -> list[str]:
        """The run's checkpoints in training order."""
        for run, checkpoints in self.checkpoints:
            if run == run_id:
                return [name for name, _ in checkpoints]
        return []

    def latest_checkpoint(self, run_id: str) -> str | None:
        """The run's last checkpoint in training order (the sidebar's default), or None."""
        names = self.checkpoint_names(run_id)
        return names[-1] if names else None


def contents(store: Store, *, wait: float = 0.5) -> StoreContents | None:
    """What ``store`` lists now (one read-only connection), or None when a writer held it for ``wait`` seconds.

    Parameters
    ----------
    store : Store
        The store; it is not changed (the short wait applies to this call only).
    wait : float
        Seconds to keep retrying while another process holds the file.
    """
    if wait < 0:
        raise ValueError(f"wait must be 0 or more seconds, not {wait}")
    brief = copy.copy(store)  # the same file, a shorter lock timeout: a poll never queues behind a writer
    brief.lock_timeout = wait
    try:
        rows = brief.query(_CONTENTS)
    except StoreLockedError:
        return None
    return _summarise(rows)


def _summarise(rows) -> StoreContents:
    checkpoints: dict[str, list[tuple[str, str]]] = {}
    for row in rows[rows.kind == "checkpoint"].itertuples():
        checkpoints.setdefault(row.run_id, []).append((row.name, str(row.ingested_at)))
    dynamics = rows[rows.kind == "dynamics"]
    return StoreContents(
        runs=tuple(rows[rows.kind == "run"].run_id),
        checkpoints=tuple((run_id, tuple(names)) for run_id, names in checkpoints.items()),
        dynamics=tuple((row.run_id, row.name, int(row.epoch), int(row.n_rows)) for row in dynamics.itertuples()),
    )
