"""Ad-hoc SQL over a store that can only read it: the SQL console of the app and `t3vis sql`.

Three guards, so that a query can neither change the store nor reach other files:

1. the text must be exactly one SELECT statement (DuckDB's own parser decides; ``WITH ... SELECT``,
   ``VALUES`` and ``FROM`` shorthand count): no DROP, INSERT, CREATE, ATTACH, COPY, INSTALL, LOAD,
   SET, PRAGMA, EXPORT, CALL, and no second statement;
2. the connection is read-only and sandboxed (:data:`t3vis.store.SANDBOX_CONFIG`): file access
   outside the store is disabled (``read_csv('/etc/passwd')``, ``read_text``, ``glob`` fail),
   extensions cannot be installed or loaded, and these settings are locked;
3. a timer interrupts queries running longer than ``timeout`` seconds, and at most ``max_rows``
   rows are fetched (the result says when it was cut).
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass
from importlib import resources

import duckdb
import pandas as pd

from t3vis.errors import T3visError
from t3vis.store import Store

DEFAULT_MAX_ROWS = 10_000
DEFAULT_TIMEOUT = 30.0


class QueryRefused(T3visError):
    """A query the console does not run, or one that failed; the message says why."""


@dataclass(frozen=True)
class QueryResult:
    frame: pd.DataFrame
    seconds: float
    truncated: bool  # more rows than max_rows: only the first max_rows are in frame

    @property
    def notice(self) -> str:
        rows = f"{len(self.frame):,} row{'' if len(self.frame) == 1 else 's'}"
        cut = " (the result was cut here: add a LIMIT or aggregate)" if self.truncated else ""
        return f"{rows}{cut} in {self.seconds * 1000:.0f} ms"


def check_query(sql: str) -> str:
    """The query if it is exactly one SELECT statement; otherwise :class:`QueryRefused` saying why."""
    text = sql.strip().rstrip(";").strip()
    if not text:
        raise QueryRefused("The query is empty. Write one SELECT statement, e.g. SELECT * FROM runs.")
    try:
        statements = duckdb.extract_statements(text)
    except duckdb.Error as exc:
        raise QueryRefused(f"The query does not parse: {_first_line(exc)}") from exc
    if len(statements) != 1:
        raise QueryRefused(f"The console runs one statement at a time; this text holds {len(statements)}. "
                           "Remove the others (or the semicolons between them).")
    kind = statements[0].type
    if kind != duckdb.StatementType.SELECT:
        name = str(kind).split(".")[-1]
        raise QueryRefused(f"Only SELECT queries run here; this is a {name} statement. The console reads the "
                           "store and never changes it, reads other files or loads extensions.")
    return text


def run_query(store: Store, sql: str, *, max_rows: int = DEFAULT_MAX_ROWS,
              timeout: float = DEFAULT_TIMEOUT) -> QueryResult:
    """Run one read-only SELECT on the store; at most ``max_rows`` rows, interrupted after ``timeout`` s."""
    text = check_query(sql)
    started = time.perf_counter()
    with store.sandboxed() as con:
        timer = threading.Timer(timeout, con.interrupt)
        timer.start()
        try:
            result = con.execute(text)
            rows = result.fetchmany(max_rows + 1)
            columns = [column[0] for column in result.description]
        except duckdb.InterruptException as exc:
            raise QueryRefused(f"The query ran longer than {timeout:.0f} s and was stopped. Narrow it with WHERE, "
                               "aggregate, or add a LIMIT.") from exc
        except duckdb.Error as exc:
            raise QueryRefused(_readable(exc)) from exc
        finally:
            timer.cancel()
    frame = pd.DataFrame.from_records(rows[:max_rows], columns=columns)
    return QueryResult(frame=frame, seconds=time.perf_counter() - started, truncated=len(rows) > max_rows)


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _readable(exc: duckdb.Error) -> str:
    message = _first_line(exc)
    if isinstance(exc, duckdb.PermissionException):
        return (f"{message}. The console reads only this store: other files, extensions and settings are off "
                "limits.")
    return message


# -- the schema browser -------------------------------------------------------------------------

_DATA_MAP_COLUMNS = {
    "n_epochs": "epochs the example was seen in",
    "confidence": "mean gold-label probability over epochs",
    "variability": "population std of the gold-label probability over epochs",
    "correctness": "fraction of epochs predicted right",
    "forgetting_events": "epochs where a right prediction turned wrong",
    "region": "'easy-to-learn', 'ambiguous', 'hard-to-learn' or 'other'",
}


def _column_comments() -> dict[tuple[str, str], str]:
    """(table, column) -> the comment beside the column in schema.sql."""
    comments: dict[tuple[str, str], str] = {}
    table = None
    for line in resources.files("t3vis").joinpath("schema.sql").read_text(encoding="utf-8").splitlines():
        match = re.match(r"\s*CREATE TABLE (\w+)", line)
        if match:
            table = match.group(1)
            continue
        match = re.match(r"\s+(\w+)\s+[A-Z]+.*--\s*(.+)$", line)
        if table and match:
            comments[(table, match.group(1))] = match.group(2).strip()
    return comments


TABLE_DESCRIPTIONS = {
    "runs": "one row per run: model, labels, recording options",
    "checkpoints": "one row per ingested checkpoint: step, epoch, weights path, metrics",
    "examples": "one row per example of a split: text, gold label, length, extra columns",
    "predictions": "one row per checkpoint and example: logits, probabilities, prediction, loss",
    "projections": "one row per checkpoint, layer, method and example: 2-D position",
    "head_importance": "one row per checkpoint, layer and head: first-order importance",
    "attention_patterns": "one row per checkpoint, layer and head: aggregate attention summary",
    "training_dynamics": "one row per training example and epoch, from the training forward passes",
    "data_map": "view: one row per training example: confidence, variability, correctness, region",
    "t3vis_meta": "the store's schema version",
}


_KEY_COLUMNS = {
    "run_id": "the run (runs.run_id)",
    "checkpoint": "the checkpoint's name (checkpoints.checkpoint)",
    "split": "the split of the examples ('train', 'validation', ...)",
    "example_id": "the example (examples.example_id)",
    "layer": "0-based layer",
    "head": "0-based attention head",
}


def schema_description(store: Store) -> pd.DataFrame:
    """Every table and view with its columns: object, kind, column, type, description."""
    rows = store.query(
        """SELECT table_name AS object, CASE WHEN t.table_type = 'VIEW' THEN 'view' ELSE 'table' END AS kind,
                  column_name AS "column", data_type AS type, ordinal_position
           FROM information_schema.columns c JOIN information_schema.tables t USING (table_schema, table_name)
           WHERE table_schema = 'main' ORDER BY table_name, ordinal_position"""
    )
    comments = _column_comments()
    rows["description"] = [
        comments.get((table, column)) or (_DATA_MAP_COLUMNS.get(column) if table == "data_map" else None)
        or _KEY_COLUMNS.get(column, "")
        for table, column in zip(rows.object, rows["column"])
    ]
    rows["object_description"] = rows.object.map(TABLE_DESCRIPTIONS).fillna("")
    return rows.drop(columns=["ordinal_position"])
