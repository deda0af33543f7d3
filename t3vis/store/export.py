"""Export a store as Parquet, for tools that read many runs at once (Polars, Spark, DuckDB elsewhere).

``t3vis export --parquet DIR`` writes one folder per table and view of the schema (``DIR/<table>/``),
hive-partitioned by ``run_id`` and, for per-checkpoint tables, ``checkpoint`` (``run_id=.../checkpoint=.../
data_0.parquet``), plus ``DIR/t3vis_export.json`` naming the store, its schema version and each table's row
count. Reading it back, e.g. in DuckDB::

    SELECT * FROM read_parquet('DIR/training_dynamics/**/*.parquet', hive_partitioning = true)

The store is only read. The export is written into a new folder beside ``DIR`` and renamed into place when
complete, so ``DIR`` is never half-written; an existing ``DIR`` is refused unless it is empty, so no file
someone else made is ever overwritten.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from t3vis.errors import StoreError, why_unwritable
from t3vis.store.database import Store

MANIFEST = "t3vis_export.json"


@dataclass(frozen=True)
class ExportSummary:
    folder: Path
    rows: dict[str, int]  # table or view -> rows written


def _relations(con) -> list[tuple[str, set[str]]]:
    """Every table and view of the store's schema with its columns, in a stable order."""
    names = [row[0] for row in con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main' ORDER BY table_name"
    ).fetchall()]
    return [(name, {row[0] for row in con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = 'main' AND table_name = ?",
        [name]).fetchall()}) for name in names]


def _quoted(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def export_parquet(store: Store, folder: str | Path) -> ExportSummary:
    """Write every table and view of ``store`` as Parquet under ``folder`` (see the module docstring)."""
    folder = Path(folder).expanduser()
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise StoreError(f"{folder} already exists and is not an empty folder; t3vis exports only into a new or "
                         "empty folder, so that it never overwrites files. Give another --parquet folder.")
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    except OSError as error:
        raise StoreError(f"t3vis cannot write the export into {folder.parent}: "
                         f"{why_unwritable(folder.parent, error)}. Give a --parquet folder in a folder you can "
                         "write.") from None
    rows: dict[str, int] = {}
    try:
        with store._connect(read_only=True) as con:
            version = con.execute("SELECT value FROM t3vis_meta WHERE key = 'schema_version'").fetchone()
            for name, columns in _relations(con):
                partitions = [column for column in ("run_id", "checkpoint") if column in columns]
                count = con.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0]
                rows[name] = int(count)
                target = staging / name
                if count == 0:
                    continue  # no rows: no folder (an empty partitioned write makes none either)
                options = "FORMAT parquet" + (f", PARTITION_BY ({', '.join(partitions)})" if partitions else "")
                if not partitions:
                    target.mkdir()
                    target = target / "data_0.parquet"
                con.execute(f'COPY (SELECT * FROM "{name}") TO {_quoted(target)} ({options})')
        manifest = {"store": str(store.path), "schema_version": version[0] if version else None, "rows": rows}
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        if folder.exists():
            folder.rmdir()  # empty, checked above
        staging.rename(folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)  # only the staging folder this call made
        raise
    return ExportSummary(folder=folder, rows=rows)
