"""The analysis store: one class owns the DuckDB file.

Connections are short-lived: each read opens the file read-only, runs one query and closes it;
each write opens it read-write, runs one transaction and closes it. DuckDB lets one process
hold a file read-write and then nobody else may open it, not even read-only; short connections
plus retries let a training run write while the app reads (:mod:`t3vis.store.files`). The schema and its
version are in :mod:`t3vis.store.schema`, the rows a write is given in :mod:`t3vis.store.records`.

Everything a checkpoint adds is written in one transaction, after it was computed in memory,
so a crash leaves the store as it was and readers never see half a checkpoint.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa

from t3vis.errors import StoreError, option
from t3vis.store.files import (connect_waiting, is_lock_conflict, lock_state, log_of, merge_pending_log,  # noqa: F401
                               no_file_locks, _check_can_create, _file_identity, _first_line, _remove_created)
from t3vis.store.schema import (DATA_MAP_ROWS, SCHEMA_VERSION, UPGRADABLE_VERSIONS, _check_schema,  # noqa: F401
                                _first_row, read_meta_of_any_version, refresh_data_map, schema_sql)
from t3vis.store.records import CheckpointInfo, CheckpointResults, RunInfo

DEFAULT_STORE_DIR = Path("store")
DEFAULT_STORE_PATH = DEFAULT_STORE_DIR / "t3vis.duckdb"
DEFAULT_DEMO_PATH = DEFAULT_STORE_DIR / "demo.duckdb"  # where `t3vis demo` and the app build the demo

# Tables holding one checkpoint's results; all are keyed by (run_id, checkpoint, split, ...).
CHECKPOINT_TABLES = ("predictions", "projections", "head_importance", "attention_patterns", "unit_predictions",
                     "document_scores", "unit_projections", "generations")
# Tables written once per run and split, with its examples (the first checkpoint ingested over it).
SPLIT_TABLES = ("units", "baseline_scores")


# DuckDB settings for user-written SQL: no reading or writing other files (read_csv, COPY, ATTACH,
# EXPORT, glob), no installing or loading extensions, and no changing these settings afterwards.
SANDBOX_CONFIG = {
    "enable_external_access": False,
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "allow_community_extensions": False,
    "lock_configuration": True,
}


class Store:
    """A t3vis analysis store: one DuckDB file.

    Opening a store reads it: the file is opened read-only, checked and closed, and no byte of
    it changes. Only the write methods open it read-write, one short transaction each.

    Parameters
    ----------
    path : str or Path
        The DuckDB file.
    create : bool
        Allow a new store at ``path`` (recording and ingestion). The file and its folder are made
        by the first write (an empty store built aside and linked into place), and removed again
        if that write fails, so a recording that fails leaves no empty store behind. With False
        (reading), a missing file is a :class:`StoreError`.
    lock_timeout : float
        Seconds to keep retrying while another process holds the file.
    """

    def __init__(self, path: str | Path, *, create: bool = False, lock_timeout: float = 60.0):
        self.path = Path(path).expanduser()  # "~/runs/x.duckdb" from Python or a quoted CLI argument
        self.lock_timeout = lock_timeout
        self._checked_file: tuple[int, int] | None = None  # (device, inode) of the file _check last accepted
        if self.path.is_dir():
            raise StoreError(f"{self.path} is a folder; give the path of a .duckdb file inside it.")
        if self.path.exists():
            self._check()
        elif create:
            _check_can_create(self.path)
        else:
            raise StoreError(
                f"No t3vis store at {self.path}. Create one with `t3vis ingest ... --store {self.path}` "
                "or `t3vis demo`."
            )

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r})"

    # -- connections -------------------------------------------------------------------------

    @contextmanager
    def _connect(self, *, read_only: bool, config: Mapping[str, Any] | None = None
                 ) -> Iterator[duckdb.DuckDBPyConnection]:
        """Open the file, retrying while another connection holds a conflicting lock.

        Reading a store whose file does not exist yet (``create=True`` before the first write)
        reads an empty in-memory store with the same schema.
        """
        if read_only and not self.path.exists():
            con = duckdb.connect(":memory:", config=dict(config or {}))
            con.execute(schema_sql())
            try:
                yield con
            finally:
                con.close()
            return
        con = connect_waiting(self.path, read_only=read_only, config=config, lock_timeout=self.lock_timeout)
        try:
            yield con
        finally:
            con.close()

    def _check(self) -> None:
        """Refuse a file that is not a t3vis store of this schema version (opened read-only)."""
        identity = _file_identity(self.path)
        with self._connect(read_only=True) as con:
            _check_schema(con, self.path)
        self._checked_file = identity

    def _check_before_writing(self) -> None:
        """Check the file at the path before opening it read-write, unless it is the very file checked before.
        A file that appeared after this Store was made (another program's DuckDB database, say) must be refused
        while it is opened read-only: a read-write open replays its write-ahead log and changes its bytes."""
        if _file_identity(self.path) != self._checked_file:
            self._check()

    # -- reading -----------------------------------------------------------------------------

    def query(self, sql: str, params: Sequence[Any] | Mapping[str, Any] | None = None) -> pd.DataFrame:
        """Run one parameterised read query and return its rows."""
        with self._connect(read_only=True) as con:
            return con.execute(sql, params).df()

    def scalar(self, sql: str, params: Sequence[Any] | Mapping[str, Any] | None = None) -> Any:
        """Run a read query that returns one value."""
        with self._connect(read_only=True) as con:
            row = _first_row(con.execute(sql, params))
        return None if row is None else row[0]

    @contextmanager
    def sandboxed(self, limits: Mapping[str, Any] | None = None, *, spill_folder: str | Path | None = None
                  ) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-only connection for user-written SQL: no file access beyond this store, no extensions,
        settings locked (see :mod:`t3vis.queries.sql_console`). ``limits``: more DuckDB settings (memory_limit,
        threads, ...), applied before the settings are locked. ``spill_folder``: where DuckDB may spill a query
        larger than its memory (``temp_directory``; by default ``<store>.tmp`` beside the store), set when the
        connection opens because DuckDB refuses to move it once external access is off.

        Open it in a process of its own (:mod:`t3vis.queries.console_process`): DuckDB keeps one database
        instance per file per process, with one configuration, so while this connection is open every other
        connection of the same process to this store, with the plain configuration, is refused and waits."""
        config = {**dict(limits or {}), **SANDBOX_CONFIG, "lock_configuration": False}
        if spill_folder is not None:
            config["temp_directory"] = str(spill_folder)
        with self._connect(read_only=True, config=config) as con:
            # Session settings first (DuckDB may draw a progress bar on stdout for long queries), then lock every
            # setting before any user SQL runs. Connections of one process share the database instance, and with
            # it the lock: a second sandboxed connection finds it locked already.
            if not _first_row(con.execute("SELECT current_setting('lock_configuration')"))[0]:
                con.execute("SET enable_progress_bar = false")
                con.execute("SET lock_configuration = true")
            yield con

    def meta(self, key: str) -> str | None:
        """A value of the ``t3vis_meta`` table (e.g. ``"schema_version"``), or None."""
        return self.scalar("SELECT value FROM t3vis_meta WHERE key = ?", [key])

    def runs(self) -> pd.DataFrame:
        """All runs, oldest first."""
        return self.query("SELECT * FROM runs ORDER BY created_at, run_id")

    def run(self, run_id: str) -> RunInfo | None:
        """The run's row, or None."""
        rows = self.query("SELECT * FROM runs WHERE run_id = ?", [run_id])
        if rows.empty:
            return None
        row = rows.iloc[0]
        return RunInfo(
            run_id=row.run_id,
            model=row.model,
            label_names=tuple(row.label_names),
            num_layers=int(row.num_layers),
            num_heads=int(row.num_heads),
            max_length=int(row.max_length),
            task=row.task,
            dataset=row.dataset,
            config=json.loads(row.config) if row.config else {},
        )

    def checkpoints(self, run_id: str) -> pd.DataFrame:
        """The run's checkpoints in training order (step, then ingestion time)."""
        return self.query(
            "SELECT * FROM checkpoints WHERE run_id = ? ORDER BY step NULLS LAST, epoch NULLS LAST, ingested_at",
            [run_id],
        )

    def previous_checkpoint(self, run_id: str, *, step: int | None, exclude: str) -> str | None:
        """The latest checkpoint of the run before ``step`` (or the latest at all when step is None)."""
        return self.scalar(
            """SELECT checkpoint FROM checkpoints
               WHERE run_id = ? AND checkpoint <> ? AND (? IS NULL OR step IS NULL OR step < ?)
               ORDER BY step DESC NULLS LAST, ingested_at DESC LIMIT 1""",
            [run_id, exclude, step, step],
        )

    # -- writing -----------------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-write connection inside one transaction: committed on success, else rolled back.

        The first write to a new store first puts an empty store with its schema in place (built
        aside and linked in atomically, so a crash leaves no file or a valid store); if the
        transaction then fails, the file it created is removed again.
        """
        created = not self.path.exists() and self._create_file()
        try:
            if not created:
                self._check_before_writing()
            with self._connect(read_only=False) as con:
                con.execute("BEGIN TRANSACTION")
                try:
                    _check_schema(con, self.path)
                    yield con
                except BaseException:
                    con.execute("ROLLBACK")
                    raise
                try:
                    con.execute("COMMIT")
                except duckdb.Error as exc:
                    raise StoreError(
                        f"Could not write to {self.path}: {_first_line(exc)}. Check that the file and its folder "
                        "are writable and the disk has space; the store is unchanged."
                    ) from exc
        except BaseException:
            if created:  # only the files this call made (_create_file refuses a log that was there before it)
                _remove_created(self.path)
            raise

    def _create_file(self) -> bool:
        """Make an empty store at ``self.path``: built in a scratch file, then linked in (never replacing a file).

        Returns False when another process put its store there first (this call then writes into it).
        """
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"Cannot create the folder {self.path.parent} for the store: {exc.strerror}. "
                             "Choose a store path in a folder you can write to.") from exc
        stray_log = log_of(self.path)
        if stray_log.exists():
            raise StoreError(f"Cannot create the store {self.path}: a write-ahead log {stray_log} lies there without "
                             "its database, and DuckDB would apply it to the new store. Move it away (it belongs to "
                             "a database that was moved or deleted), or choose another store path.")
        scratch = self.path.with_name(f".{self.path.name}.creating-{os.getpid()}-{threading.get_ident()}")
        try:
            con = duckdb.connect(str(scratch))
            try:
                con.execute("BEGIN TRANSACTION")
                con.execute(schema_sql())
                con.execute("INSERT INTO t3vis_meta VALUES ('schema_version', ?), ('created_by', 't3vis')",
                            [str(SCHEMA_VERSION)])
                con.execute("COMMIT")
            finally:
                con.close()
            try:
                os.link(scratch, self.path)  # atomic, and fails rather than replace a file that appeared meanwhile
            except FileExistsError:
                return False  # another process created the store first: write into theirs
            except OSError:  # a filesystem without hard links
                if self.path.exists():
                    return False
                os.replace(scratch, self.path)
            self._checked_file = _file_identity(self.path)
            return True
        except (OSError, duckdb.Error) as exc:
            raise StoreError(f"Cannot create the store {self.path}: {exc}. Choose a store path in a folder you can "
                             "write to.") from exc
        finally:
            _remove_created(scratch)

    def write_run(self, con: duckdb.DuckDBPyConnection, run: RunInfo) -> None:
        """Insert the run, or check that an existing run of that name matches it."""
        existing = _first_row(con.execute(
            "SELECT label_names, num_layers, num_heads, task FROM runs WHERE run_id = ?", [run.run_id]
        ))
        if existing is None:
            con.execute(
                "INSERT INTO runs (run_id, model, task, dataset, label_names, num_layers, num_heads, max_length, "
                "config) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [run.run_id, run.model, run.task, run.dataset, list(run.label_names), run.num_layers, run.num_heads,
                 run.max_length, json.dumps(dict(run.config))],
            )
            return
        labels, layers, heads, task = existing
        if task != run.task:
            raise StoreError(
                f"Run {run.run_id!r} already exists in {self.path} with task {task!r}; this checkpoint's task is "
                f"{run.task!r}. Choose another {option('run_id', flag='--run')} name."
            )
        if list(labels) != list(run.label_names) or (layers, heads) != (run.num_layers, run.num_heads):
            raise StoreError(
                f"Run {run.run_id!r} already exists in {self.path} with labels {list(labels)} and "
                f"{layers}x{heads} heads; this checkpoint has labels {list(run.label_names)} and "
                f"{run.num_layers}x{run.num_heads} heads. Choose another {option('run_id', flag='--run')} name."
            )

    def write_checkpoint(self, run: RunInfo, checkpoint: CheckpointInfo, results: CheckpointResults) -> None:
        """Write one checkpoint's results over one split, replacing any earlier ingestion of it.

        One transaction: the run row (if new), the split's examples (if new), the checkpoint row
        and every results table. Readers see all of it or none of it.
        """
        key = [checkpoint.run_id, checkpoint.checkpoint, results.split]
        with self.transaction() as con:
            self.write_run(con, run)
            if results.examples is not None:
                self._write_examples(con, run.run_id, results.split, results.examples)
            for table, rows in results.split_tables.items():
                if table not in SPLIT_TABLES:
                    raise ValueError(f"unknown split table {table!r}")
                self._write_once(con, table, rows, run_id=run.run_id, split=results.split)
            con.execute(
                "DELETE FROM checkpoints WHERE run_id = ? AND checkpoint = ?", key[:2]
            )
            con.execute(
                "INSERT INTO checkpoints (run_id, checkpoint, step, epoch, path, metrics) VALUES (?, ?, ?, ?, ?, ?)",
                [*key[:2], checkpoint.step, checkpoint.epoch, checkpoint.path,
                 json.dumps(dict(checkpoint.metrics))],
            )
            for table in CHECKPOINT_TABLES:
                con.execute(f"DELETE FROM {table} WHERE run_id = ? AND checkpoint = ? AND split = ?", key)
            for table, rows in results.tables.items():
                if table not in CHECKPOINT_TABLES:
                    raise ValueError(f"unknown checkpoint table {table!r}")
                self._insert(con, table, rows, run_id=key[0], checkpoint=key[1], split=key[2])

    def _write_once(self, con: duckdb.DuckDBPyConnection, table: str, rows: pa.Table, *, run_id: str,
                    split: str) -> None:
        """Insert a split's rows of a table written once per run and split, unless it has them already."""
        count = _first_row(con.execute(f"SELECT count(*) FROM {table} WHERE run_id = ? AND split = ?",
                                       [run_id, split]))[0]
        if count == 0:
            self._insert(con, table, rows, run_id=run_id, split=split)

    def write_examples(self, run: RunInfo, split: str, rows: pa.Table,
                       split_tables: Mapping[str, pa.Table] | None = None) -> None:
        """Write a split's examples (one transaction), or check they equal the ones the run has; with the
        split's tables of SPLIT_TABLES (e.g. a summarization split's sentences), unless it has them."""
        with self.transaction() as con:
            self.write_run(con, run)
            self._write_examples(con, run.run_id, split, rows)
            for table, table_rows in (split_tables or {}).items():
                if table not in SPLIT_TABLES:
                    raise ValueError(f"unknown split table {table!r}")
                self._write_once(con, table, table_rows, run_id=run.run_id, split=split)

    def _write_examples(self, con: duckdb.DuckDBPyConnection, run_id: str, split: str, rows: pa.Table) -> None:
        """Insert a split's examples, or check they equal the ones the run already has."""
        count = _first_row(con.execute(
            "SELECT count(*) FROM examples WHERE run_id = ? AND split = ?", [run_id, split]
        ))[0]
        if count == 0:
            self._insert(con, "examples", rows, run_id=run_id, split=split)
            return
        con.register("_t3vis_new_examples", rows)
        try:
            mismatched = _first_row(con.execute(
                """SELECT count(*) FROM _t3vis_new_examples n
                   FULL JOIN (SELECT * FROM examples WHERE run_id = ? AND split = ?) e USING (example_id)
                   WHERE e.text IS DISTINCT FROM n.text OR e.label IS DISTINCT FROM n.label""",
                [run_id, split],
            ))[0]
        finally:
            con.unregister("_t3vis_new_examples")
        if mismatched:
            raise StoreError(
                f"Run {run_id!r} already has a {split!r} split with other examples ({mismatched} ids differ "
                "in text or label). Use the same data file for every checkpoint of a run, or choose another "
                f"{option('run_id', flag='--run')} name."
            )

    @staticmethod
    def _insert(con: duckdb.DuckDBPyConnection, table: str, rows: pa.Table, **constants: Any) -> None:
        """Insert Arrow rows by column name, filling key columns with constants."""
        for name, value in constants.items():
            if name in rows.column_names:
                rows = rows.drop_columns([name])
            rows = rows.append_column(name, pa.array([value] * rows.num_rows, type=pa.string()))
        view = f"_t3vis_rows_{table}"
        con.register(view, rows)
        try:
            con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM {view}")
        finally:
            con.unregister(view)

    def write_training_dynamics(self, run: RunInfo, split: str, epoch: int, rows: pa.Table,
                                token_rows: pa.Table | None = None) -> None:
        """Write one epoch of training dynamics (replacing that epoch if it was written before); ``token_rows``:
        a generation run's per-token dynamics of the epoch (``token_dynamics``, without run, split, epoch)."""
        with self.transaction() as con:
            self.write_run(con, run)
            for table in ("training_dynamics", "token_dynamics"):
                con.execute(f"DELETE FROM {table} WHERE run_id = ? AND split = ? AND epoch = ?",
                            [run.run_id, split, epoch])
            for table, table_rows in (("training_dynamics", rows), ("token_dynamics", token_rows)):
                if table_rows is not None:
                    table_rows = table_rows.append_column("epoch", pa.array([epoch] * table_rows.num_rows,
                                                                            type=pa.int32()))
                    self._insert(con, table, table_rows, run_id=run.run_id, split=split)
            refresh_data_map(con, run.run_id, split)

    def initialise(self) -> None:
        """Create the file and its schema now, if it does not exist yet (otherwise check it)."""
        with self.transaction():
            pass

    def write_meta(self, key: str, value: str) -> None:
        """Set a value of the ``t3vis_meta`` table (one transaction)."""
        with self.transaction() as con:
            con.execute("INSERT OR REPLACE INTO t3vis_meta VALUES (?, ?)", [key, value])

    def delete_run(self, run_id: str) -> None:
        """Remove a run and everything recorded for it."""
        with self.transaction() as con:
            for table in (*CHECKPOINT_TABLES, *SPLIT_TABLES, "training_dynamics", "token_dynamics", "data_map",
                          "examples", "checkpoints", "runs"):
                con.execute(f"DELETE FROM {table} WHERE run_id = ?", [run_id])
