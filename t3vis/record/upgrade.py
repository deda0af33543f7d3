"""Converting a store written by an older schema version: ``t3vis upgrade --store PATH``.

Version 1 → 2: version 1 stored head importance as |gradient of a batch's summed loss|, summed
over batches and divided by the number of examples. Gradients of opposite sign cancel inside a
batch, so the number depended on the batch size and on which examples shared a batch. Version 2
stores the definition of Michel et al. (2019): the mean over examples of |dL(x)/dm|. The old
numbers cannot be converted arithmetically; the upgrade recomputes them from each checkpoint's
saved weights, over the same sample of the split's stored examples (the run's recorded batch
size, seed and sample size). Checkpoints whose weights are not on disk lose their head
importance (the report names them; re-ingest them to get it back). Everything else is kept.

Version 2 → 3: version 3 adds tasks (``runs.task`` names the task; the free text that version 2
kept there moves to ``runs.dataset``), per-unit tables for extractive summarization, a ``unit``
column in the training dynamics (0 for every version-2 row), and head-function columns in
``attention_patterns`` (NULL for checkpoints ingested before; re-ingest to measure them).

Version 3 → 4: version 4 adds ``unit_projections``, the 2-D layouts of a document's sentences
(empty after the upgrade; re-ingest a checkpoint to lay out its sentences).

Version 4 → 5: version 5 keeps the Data Map as a table (``data_map``), computed again whenever a run's
training dynamics are written, instead of a view aggregating them on every query; the upgrade computes it
once for every run and split.

Every upgrade first copies the old file to ``<name>.v<version>.bak``, then builds the new store in a
scratch file beside it (the current schema, every row of the old one copied by column name) and moves
it into place only when complete: an interrupted upgrade leaves the store as it was.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field, fields
from pathlib import Path

import duckdb

from t3vis.errors import StoreError
from t3vis.model.checkpoint_folders import recorded_folder, weights_status
from t3vis.record.ingest import IngestConfig, sample_importance
from t3vis.store.rows import importance_rows
from t3vis.progress import Progress, no_progress
from t3vis.store.database import (SCHEMA_VERSION, UPGRADABLE_VERSIONS, Store, log_of, merge_pending_log,
                                  refresh_data_map, schema_sql)
from t3vis.tasks import SEQUENCE_CLASSIFICATION


@dataclass
class UpgradeReport:
    path: Path
    from_version: str
    backup: Path | None = None
    recomputed: list[str] = field(default_factory=list)  # "run/checkpoint [split]"
    dropped: list[str] = field(default_factory=list)  # importances that could not be recomputed, with why


def stored_version(path: Path) -> str:
    """The schema version recorded in a store file (read-only)."""
    if not path.is_file():
        raise StoreError(f"No store at {path}.")
    try:
        con = duckdb.connect(str(path), read_only=True)
    except duckdb.Error as exc:
        raise StoreError(f"Cannot open {path} as a DuckDB database: {exc}") from exc
    try:
        row = con.execute("SELECT value FROM t3vis_meta WHERE key = 'schema_version'").fetchall()
    except duckdb.CatalogException as exc:
        raise StoreError(f"{path} is not a t3vis store (it has no t3vis_meta table).") from exc
    finally:
        con.close()
    return row[0][0] if row else "unknown"


def upgrade_store(path: str | Path, *, device: str | None = "cpu", progress: Progress = no_progress,
                  base_model: str | None = None) -> UpgradeReport:
    """Convert the store at ``path`` to the current schema version (see the module docstring); ``base_model``:
    the base of adapter checkpoints (LoRA) whose weights are recomputed, when not the one they name."""
    path = Path(path).expanduser()
    version = stored_version(path)
    report = UpgradeReport(path=path, from_version=version)
    if version == str(SCHEMA_VERSION):
        return report
    if version not in UPGRADABLE_VERSIONS:
        raise StoreError(f"{path} has schema version {version}, which this t3vis cannot convert. Re-ingest the "
                         "checkpoints into a new store.")
    if not os.access(path.parent, os.W_OK):  # before anything is written: the backup and the new store go there
        raise StoreError(f"{path.parent} is read-only here, and the upgrade writes a backup and the converted store "
                         "beside the store. Copy the store into a folder you can write, and upgrade the copy.")
    backup = path.with_name(f"{path.name}.v{version}.bak")
    if backup.exists():
        raise StoreError(f"{backup} exists already; move it away first (the upgrade never overwrites a file).")
    merge_pending_log(path)  # rows a crashed writer left in <store>.wal go into the file, then into the backup
    shutil.copy2(path, backup)
    report.backup = backup
    scratch = path.with_name(f".{path.name}.upgrading-{os.getpid()}")
    try:
        _copy_into_current_schema(backup, scratch)
        if version == "1":
            _recompute_importance(scratch, report, device, progress, base_model)
        if log_of(path).exists():  # written meanwhile: that log belongs to the old file, not to the new one
            raise StoreError(f"{path} was written while it was being upgraded ({log_of(path)} appeared); it is "
                             "unchanged. Stop the writer and run the upgrade again.")
        os.replace(scratch, path)  # only a complete conversion replaces the store
    finally:
        for leftover in (scratch, scratch.with_name(scratch.name + ".wal")):
            leftover.unlink(missing_ok=True)
    return report


def _copy_into_current_schema(old: Path, scratch: Path) -> None:
    """Make ``scratch`` a store of the current schema holding every row of ``old``."""
    con = duckdb.connect(str(scratch))
    try:
        con.execute("BEGIN TRANSACTION")
        con.execute(schema_sql())
        con.execute("INSERT INTO t3vis_meta VALUES ('schema_version', ?)", [str(SCHEMA_VERSION)])
        con.execute(f"ATTACH '{_sql_string(old)}' AS t3vis_previous (READ_ONLY)")
        tables = [row[0] for row in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database()").fetchall()]
        for table in tables:
            if table != "data_map":  # computed below, from the copied dynamics
                _copy_table(con, table)
        for run_id, split in con.execute("SELECT DISTINCT run_id, split FROM training_dynamics").fetchall():
            refresh_data_map(con, run_id, split)
        con.execute("COMMIT")
        con.execute("DETACH t3vis_previous")
    finally:
        con.close()


def _sql_string(path: Path) -> str:
    return str(path.resolve()).replace("'", "''")


def _copy_table(con: duckdb.DuckDBPyConnection, table: str) -> None:
    """Copy the old store's rows of ``table`` by column name; new columns take their defaults."""
    def columns(database: str) -> list[str]:
        return [row[0] for row in con.execute(
            "SELECT column_name FROM duckdb_columns() WHERE database_name = ? AND table_name = ? "
            "ORDER BY column_index", [database, table]).fetchall()]

    old_columns = columns("t3vis_previous")
    if not old_columns:
        return  # a table the old version did not have
    new_columns = set(columns(con.execute("SELECT current_database()").fetchone()[0]))
    shared = [column for column in old_columns if column in new_columns]
    targets, sources = list(shared), [f'"{column}"' for column in shared]
    if table == "runs" and "dataset" not in old_columns:  # version 2 kept free text in runs.task
        sources[targets.index("task")] = f"'{SEQUENCE_CLASSIFICATION}'"
        targets.append("dataset")
        sources.append('"task"')
    where = " WHERE key <> 'schema_version'" if table == "t3vis_meta" else ""
    quoted = ", ".join(f'"{column}"' for column in targets)
    con.execute(f'INSERT INTO "{table}" ({quoted}) SELECT {", ".join(sources)} FROM t3vis_previous."{table}"{where}')


def _recompute_importance(path: Path, report: UpgradeReport, device: str | None, progress: Progress,
                          base_model: str | None) -> None:
    """Version 1 → 2: head importance recomputed from each checkpoint's saved weights (module docstring)."""

    con = duckdb.connect(str(path), read_only=True)
    try:
        keys = con.execute(
            """SELECT DISTINCT h.run_id, h.checkpoint, h.split, c.path, r.config, r.label_names
               FROM head_importance h JOIN checkpoints c USING (run_id, checkpoint) JOIN runs r USING (run_id)
               ORDER BY h.run_id, h.checkpoint, h.split"""
        ).fetchall()
    finally:
        con.close()

    new_tables, gone = {}, []
    for done, (run_id, checkpoint, split, weights, config_json, label_names) in enumerate(keys):
        progress("head importance", done, len(keys))
        name = f"{run_id}/{checkpoint} [{split}]"
        status = weights_status(recorded_folder(path.parent, weights), base_model=base_model)
        if not status.loadable:
            gone.append((run_id, checkpoint, split))
            report.dropped.append(f"{name}: its weights cannot be loaded ({status.problem})")
            continue
        config = _ingest_config(config_json, split)
        new_tables[(run_id, checkpoint, split)] = _recompute(path, status.folder, run_id, split, tuple(label_names),
                                                             config, device, base_model)
        report.recomputed.append(name)
    progress("head importance", len(keys), len(keys))

    con = duckdb.connect(str(path))
    try:
        con.execute("BEGIN TRANSACTION")
        for (run_id, checkpoint, split), table in new_tables.items():
            con.execute("DELETE FROM head_importance WHERE run_id = ? AND checkpoint = ? AND split = ?",
                        [run_id, checkpoint, split])
            Store._insert(con, "head_importance", table, run_id=run_id, checkpoint=checkpoint, split=split)
        for run_id, checkpoint, split in gone:
            con.execute("DELETE FROM head_importance WHERE run_id = ? AND checkpoint = ? AND split = ?",
                        [run_id, checkpoint, split])
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    finally:
        con.close()


def _ingest_config(config_json: str | None, split: str) -> IngestConfig:
    recorded = json.loads(config_json) if config_json else {}
    names = {item.name for item in fields(IngestConfig)} - {"layers", "split"}
    values = {key: value for key, value in recorded.items() if key in names}
    return IngestConfig(split=split, **values)


def _recompute(store_path: Path, folder: Path, run_id: str, split: str, label_names: tuple[str, ...],
               config: IngestConfig, device: str | None, base_model: str | None):
    from t3vis.queries.checkpoint_reads import stored_examples  # the examples as the store holds them
    from t3vis.model.access import load_model

    bundle = load_model(folder, label_names=label_names, device=device, base_model=base_model)
    examples = _read_examples(store_path, run_id, split, stored_examples)
    importance, n_examples = sample_importance(bundle, examples, config)
    return importance_rows(importance, n_examples)


def _read_examples(store_path: Path, run_id: str, split: str, reader):
    """The split's stored examples, read with a connection that ignores the old schema version."""

    class _OldStore(Store):
        def _check(self) -> None:  # the version is what is being upgraded
            pass

    return reader(_OldStore(store_path), run_id, split)

