"""The store's schema: its version, the SQL that makes it (schema.sql), the check of a file's version, and the
Data Map table computed from the training dynamics."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import duckdb

from t3vis.errors import SchemaVersionError, StoreError


SCHEMA_VERSION = 6
# Older versions `t3vis upgrade` converts, with what changed.
UPGRADABLE_VERSIONS = {
    "1": "Version 1 stored head importance as |gradient summed over a batch| summed over batches, which depends "
         "on the batch size; version 2 stores the mean over examples of |gradient| (Michel et al. 2019).",
    "2": "Version 3 records the run's task (sequence classification or extractive summarization), per-sentence "
         "results and head functions; version 2 stores keep all their data, their runs become "
         "sequence-classification runs.",
    "3": "Version 4 adds 2-D layouts of a document's sentences (unit_projections); version 3 stores keep all "
         "their data (re-ingest a checkpoint to lay out its sentences).",
    "4": "Version 5 keeps the Data Map as a table, computed when the training dynamics are written; version 4 "
         "stores keep all their data, their Data Map is computed once by the upgrade.",
    "5": "Version 6 adds the generation task (generations, token_dynamics, training_dynamics.token_accuracy) and "
         "the induction head function (attention_patterns.attn_induction); version 5 stores keep all their data.",
}

# A run and split's Data Map from its training dynamics (see schema.sql, data_map): parameters run_id, split.
DATA_MAP_ROWS = """
WITH ordered AS (
    SELECT *, lag(correct) OVER (PARTITION BY example_id, unit ORDER BY epoch) AS prev_correct
    FROM training_dynamics WHERE run_id = $run_id AND split = $split
),
per_example AS (
    SELECT run_id, split, example_id, unit,
           count(*)                                          AS n_epochs,
           avg(gold_prob)                                    AS confidence,
           coalesce(stddev_pop(gold_prob), 0)                AS variability,
           avg(coalesce(token_accuracy, CASE WHEN correct THEN 1.0 ELSE 0.0 END)) AS correctness,
           count(*) FILTER (WHERE prev_correct AND NOT correct) AS forgetting_events
    FROM ordered
    GROUP BY run_id, split, example_id, unit
),
ranked AS (
    SELECT *,
           percent_rank() OVER (ORDER BY variability) AS variability_rank,
           percent_rank() OVER (ORDER BY confidence)  AS confidence_rank
    FROM per_example
)
SELECT run_id, split, example_id, unit, n_epochs, confidence, variability, correctness, forgetting_events,
       CASE WHEN variability_rank >= 2.0 / 3 THEN 'ambiguous'
            WHEN confidence_rank  <= 1.0 / 3 THEN 'hard-to-learn'
            WHEN confidence_rank  >= 2.0 / 3 THEN 'easy-to-learn'
            ELSE 'other' END AS region
FROM ranked
"""


def read_meta_of_any_version(path: str | Path, key: str) -> str | None:
    """A ``t3vis_meta`` value of a store file whatever its schema version (read-only); None when there is none or
    the file is not a store. For deciding what to do with a store of another version, e.g. an old demo."""
    try:
        with duckdb.connect(str(path), read_only=True) as con:
            row = con.execute("SELECT value FROM t3vis_meta WHERE key = ?", [key]).fetchone()
    except duckdb.Error:
        return None
    return None if row is None else row[0]


def refresh_data_map(con: duckdb.DuckDBPyConnection, run_id: str, split: str) -> None:
    """Compute a run and split's Data Map again from its training dynamics (inside the caller's transaction)."""
    con.execute("DELETE FROM data_map WHERE run_id = ? AND split = ?", [run_id, split])
    con.execute(f"INSERT INTO data_map {DATA_MAP_ROWS}", {"run_id": run_id, "split": split})


def _first_row(result: duckdb.DuckDBPyConnection) -> tuple | None:
    """The first row of a result, fetching all of it: DuckDB 2 refuses new work on a half-read result."""
    rows = result.fetchall()
    return rows[0] if rows else None


def _user_tables(con: duckdb.DuckDBPyConnection) -> set[str]:
    return {row[0] for row in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}


def _check_schema(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    tables = _user_tables(con)
    if "t3vis_meta" not in tables:
        raise StoreError(
            f"{path} is a DuckDB file but not a t3vis store (it has no t3vis_meta table). t3vis does not write into "
            "other databases: give the path of a t3vis store, or a new path."
        )
    row = _first_row(con.execute("SELECT value FROM t3vis_meta WHERE key = 'schema_version'"))
    found = row[0] if row else "unknown"
    if found == str(SCHEMA_VERSION):
        return
    if found in UPGRADABLE_VERSIONS:
        raise SchemaVersionError(
            f"{path} was written with store schema version {found}; this t3vis reads version {SCHEMA_VERSION}. "
            f"{UPGRADABLE_VERSIONS[found]} Convert it with `t3vis upgrade --store {path}` (it keeps a copy of the "
            "old file), or re-ingest the checkpoints into a new store."
        )
    raise SchemaVersionError(
        f"{path} was written with store schema version {found}, but this t3vis reads "
        f"version {SCHEMA_VERSION}. Re-ingest the checkpoints into a new store (another --store "
        "path), or open it with the t3vis release that wrote it."
    )


def schema_sql() -> str:
    """The store's schema as SQL text (``t3vis/store/schema.sql``)."""
    return resources.files("t3vis.store").joinpath("schema.sql").read_text(encoding="utf-8")
