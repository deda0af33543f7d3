"""Ad-hoc SQL over a store that can only read it: the SQL console of the app and `t3vis sql`.

Four guards, so that a query can neither change the store, reach other files nor exhaust the machine:

1. the text must be exactly one SELECT statement (DuckDB's own parser decides; ``WITH ... SELECT``,
   ``VALUES``, ``FROM`` shorthand and ``PIVOT ... IN (...)`` count): no DROP, INSERT, CREATE, ATTACH,
   COPY, INSTALL, LOAD, SET, PRAGMA, EXPORT, CALL, no second statement, and no DELETE, INSERT, UPDATE
   or COPY hidden in a CTE (``WITH x AS (DELETE FROM runs RETURNING *) SELECT * FROM x``, which
   DuckDB's parser calls a SELECT): see :func:`check_query`;
2. the connection is read-only and sandboxed (:data:`t3vis.store.database.SANDBOX_CONFIG`): file access
   outside the store is disabled (``read_csv('/etc/passwd')``, ``read_text``, ``glob`` fail),
   extensions cannot be installed or loaded, and these settings are locked;
3. DuckDB's own limits, set on that connection before it is locked: ``memory_limit``, ``threads``
   and the size of the files it may spill to (``max_temp_directory_size``), in a temporary folder of the
   query's own, removed when it ends;
4. a timer interrupts queries running longer than ``timeout`` seconds (and the query's process is killed
   if that does not stop it), and the rows are fetched in small Arrow batches until ``max_rows`` rows or
   ``max_bytes`` bytes (the result says when and why it was cut).

The query runs in a worker process (:mod:`t3vis.queries.console_process`), never in the caller's: there
its sandboxed connection would make every other read of the store in that process wait until it ends.
"""

from __future__ import annotations

import functools
import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa

from t3vis.errors import T3visError
from t3vis.queries import console_process
from t3vis.store.database import SANDBOX_CONFIG, Store, schema_sql

DEFAULT_MAX_ROWS = 10_000
DEFAULT_MAX_BYTES = 50_000_000  # of Arrow data; the DataFrame built from it is of the same order
DEFAULT_TIMEOUT = 30.0
DEFAULT_MEMORY_LIMIT = "1GB"
DEFAULT_THREADS = 2
DEFAULT_TEMP_LIMIT = "1GB"

# Query nodes a read-only statement is made of. DuckDB's parse tree names every query node
# "<KIND>_NODE"; a CTE may also hold DELETE_QUERY_NODE, INSERT_QUERY_NODE, UPDATE_QUERY_NODE or
# COPY_QUERY_NODE, and newer DuckDB versions may add more: anything not listed here is refused.
_READ_ONLY_NODES = frozenset({"SELECT_NODE", "SET_OPERATION_NODE", "RECURSIVE_CTE_NODE", "CTE_NODE"})

# Functions that run SQL given as a string, which the parse tree shows only as a string constant.
_UNCHECKED_FUNCTIONS = frozenset({"query"})

_SIZE = re.compile(r"^\s*\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)\s*$", re.IGNORECASE)


class QueryRefused(T3visError):
    """A query the console does not run, or one that failed; the message says why."""


@dataclass(frozen=True)
class QueryResult:
    frame: pd.DataFrame
    seconds: float
    cut: str = ""  # why the result was cut ("" when frame holds every row), e.g. "more than 10,000 rows"

    @property
    def truncated(self) -> bool:
        """True when the query returned more than ``frame`` holds."""
        return bool(self.cut)

    @property
    def notice(self) -> str:
        rows = f"{len(self.frame):,} row{'' if len(self.frame) == 1 else 's'}"
        cut = (f" (the result was cut here: it has {self.cut}; add a LIMIT, aggregate or select fewer "
               "columns)") if self.cut else ""
        return f"{rows}{cut} in {self.seconds * 1000:.0f} ms"


def check_query(sql: str) -> str:
    """The query if it is exactly one read-only SELECT statement; otherwise :class:`QueryRefused` saying why.

    Two checks, both by DuckDB's own parser (the text is parsed, never run):

    1. :func:`duckdb.extract_statements` gives the statement's type: one statement, of type SELECT;
    2. ``json_serialize_sql`` gives its parse tree, and every query node in it, however deeply nested
       (CTEs, subqueries, set operations), must be a SELECT-like node. The statement type alone is not
       enough: a data-modifying CTE (``WITH x AS (DELETE ... RETURNING *) SELECT * FROM x``) is of type
       SELECT. The read-only connection would stop it too; this check says why before anything runs.
    """
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
    if kind == duckdb.StatementType.MULTI and re.search(r"\bpivot\b", text, re.IGNORECASE):
        # DuckDB runs a PIVOT without an IN list as several statements (one finds the distinct values
        # first), which cannot be checked as one SELECT. With the values listed it is a plain SELECT.
        raise QueryRefused("PIVOT without an IN list is not supported in the console. List the values to "
                           "pivot on, e.g. PIVOT predictions ON correct IN (true, false) USING count(*), or "
                           "use SELECT ... FROM t PIVOT (count(*) FOR column IN (...)) or count(*) FILTER "
                           "(WHERE ...).")
    if kind != duckdb.StatementType.SELECT:
        name = str(kind).split(".")[-1]
        raise QueryRefused(f"Only SELECT queries run here; this is {_a(name)} statement. The console reads the "
                           "store and never changes it, reads other files or loads extensions.")
    nodes = list(_tree_dicts(_parse_tree(text)))
    kinds = {node["type"] for node in nodes if str(node.get("type", "")).endswith("_NODE")}
    writes = sorted(kinds - _READ_ONLY_NODES)
    if writes:
        names = " and ".join(kind.removesuffix("_NODE").removesuffix("_QUERY") for kind in writes)
        raise QueryRefused(f"Only SELECT queries run here; this one holds {_a(names)} inside it (in a WITH "
                           "clause or a subquery). The console reads the store and never changes it.")
    if any(node.get("function_name") in _UNCHECKED_FUNCTIONS for node in nodes):
        raise QueryRefused("The query() table function is not available in the console: it runs SQL text "
                           "that cannot be checked beforehand. Write that query directly instead.")
    return text


@functools.cache
def _parser() -> tuple[duckdb.DuckDBPyConnection, threading.Lock]:
    """An in-memory, sandboxed connection that only parses, and the lock that serialises its use.

    Kept for the process: a new connection costs ~40 ms, a parse ~1 ms. A DuckDB connection is not
    safe to share between threads (Streamlit runs each session in its own), hence the lock.
    """
    return duckdb.connect(":memory:", config=SANDBOX_CONFIG), threading.Lock()


def _parse_tree(text: str) -> dict[str, Any]:
    """DuckDB's parse tree of one SELECT statement, as ``json_serialize_sql`` writes it."""
    con, lock = _parser()
    try:
        with lock:
            row = con.execute("SELECT json_serialize_sql(?)", [text]).fetchone()
        tree = json.loads(row[0])
    except (duckdb.Error, ValueError, TypeError) as exc:
        # Fail closed: a statement whose tree cannot be read is not known to be read-only.
        raise QueryRefused(f"The query could not be checked: {_first_line(exc)}") from exc
    if tree.get("error"):
        raise QueryRefused(f"The query could not be checked: {tree.get('error_message', 'unknown error')}")
    return tree


def _tree_dicts(tree: Any) -> Iterator[dict[str, Any]]:
    """Every object (JSON dict) of a parse tree, at any depth."""
    stack = [tree]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            yield item
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def run_query(store: Store, sql: str, *, max_rows: int = DEFAULT_MAX_ROWS, max_bytes: int = DEFAULT_MAX_BYTES,
              timeout: float = DEFAULT_TIMEOUT, memory_limit: str = DEFAULT_MEMORY_LIMIT,
              threads: int = DEFAULT_THREADS, temp_limit: str = DEFAULT_TEMP_LIMIT) -> QueryResult:
    """Run one read-only SELECT on the store, within limits on time, memory, disk and result size.

    The query runs in a worker process (:mod:`t3vis.queries.console_process`), so that it never delays other
    reads of the store in this process; a warm worker adds a few milliseconds, starting one a few tenths of a
    second (:func:`warm_up` starts one ahead).

    Parameters
    ----------
    store : Store
        The store to read; it is opened read-only and sandboxed for this one query.
    sql : str
        One SELECT statement (see :func:`check_query`).
    max_rows : int
        Rows kept at most; a longer result is cut and :attr:`QueryResult.cut` says so.
    max_bytes : int
        Bytes of result data (Arrow) kept at most; rows past it are dropped and the result says so.
    timeout : float
        Seconds before the query is interrupted (:class:`QueryRefused`).
    memory_limit : str
        DuckDB's ``memory_limit`` for the query, e.g. "1GB"; a query needing more fails with a message.
    threads : int
        DuckDB's ``threads``: CPU cores the query may use.
    temp_limit : str
        DuckDB's ``max_temp_directory_size``: how much a query past ``memory_limit`` may spill to disk;
        "0B" turns spilling off. Spill files go to a temporary folder of this query (never beside the
        store, whose folder may be read-only), removed when the query ends, however it ends.

    Raises
    ------
    QueryRefused
        The query is not one read-only SELECT, or it failed, ran out of time, memory or spill space.
    StoreError
        The store could not be opened (StoreLockedError: a writer held it longer than its lock_timeout).
    """
    _check_limits(max_rows=max_rows, max_bytes=max_bytes, timeout=timeout, memory_limit=memory_limit,
                  threads=threads, temp_limit=temp_limit)
    text = check_query(sql)
    limits = {"memory_limit": memory_limit, "threads": threads, "max_temp_directory_size": temp_limit}
    started = time.perf_counter()
    try:
        table, cut = console_process.run(store, text, limits=limits, timeout=timeout, max_rows=max_rows,
                                         max_bytes=max_bytes)
    except console_process.QueryFailed as failed:
        raise QueryRefused(_failure_message(failed, timeout=timeout, memory_limit=memory_limit,
                                            temp_limit=temp_limit)) from failed
    return QueryResult(frame=_to_frame(table), seconds=time.perf_counter() - started, cut=cut)


def warm_up() -> None:
    """Start a console worker process now, if none is idle: the next :func:`run_query` need not wait for one
    (the SQL page calls it when it opens)."""
    console_process.warm_up()


def _failure_message(failed: console_process.QueryFailed, *, timeout: float, memory_limit: str,
                     temp_limit: str) -> str:
    """What to tell the user about a query that did not finish."""
    if failed.kind == "timeout":
        return (f"The query ran longer than {timeout:g} s and was stopped. Narrow it with WHERE, aggregate, or add "
                "a LIMIT.")
    if failed.kind == "memory":
        return (f"The query needed more than {memory_limit} of memory (and {temp_limit} of spill files) and was "
                "stopped. Filter with WHERE, aggregate, or select fewer columns.")
    message = _first_line(failed)
    if failed.kind == "permission":
        return (f"{message}. The console reads only this store: other files, extensions and settings are off "
                "limits.")
    if failed.kind == "crash":
        return f"The query could not run: {message}. Try again; if it keeps failing, the server's log says more."
    return message


def _check_limits(*, max_rows: int, max_bytes: int, timeout: float, memory_limit: str, threads: int,
                  temp_limit: str) -> None:
    for name, value in (("max_rows", max_rows), ("max_bytes", max_bytes), ("threads", threads)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if not timeout > 0:
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    for name, value in (("memory_limit", memory_limit), ("temp_limit", temp_limit)):
        if not isinstance(value, str) or not _SIZE.match(value):
            raise ValueError(f"{name} must be a size such as '1GB' or '500MB', got {value!r}")


def _to_frame(table: pa.Table) -> pd.DataFrame:
    """The rows as a DataFrame; list columns hold Python lists, and repeated column names are kept."""
    columns = {}
    for i, (field, column) in enumerate(zip(table.schema, table.columns)):
        if pa.types.is_list(field.type) or pa.types.is_large_list(field.type) \
                or pa.types.is_fixed_size_list(field.type):
            # Arrow would give NumPy arrays; lists print as [0.1, 0.9] in tables and CSV.
            columns[i] = pd.Series(column.to_pylist(), dtype=object)
        else:
            columns[i] = column.to_pandas()
    # Columns are keyed by position first: ``SELECT 1 AS a, 2 AS a`` has two columns named "a".
    frame = pd.DataFrame(columns, index=pd.RangeIndex(table.num_rows))
    frame.columns = table.column_names
    return frame


def _a(word: str) -> str:
    return f"{'an' if word[:1].upper() in 'AEIOU' else 'a'} {word}"


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


# -- the schema browser -------------------------------------------------------------------------

_DATA_MAP_COLUMNS = {
    "n_epochs": "epochs the example was seen in",
    "confidence": "mean gold-label probability over epochs",
    "variability": "population std of the gold-label probability over epochs",
    "correctness": "fraction of epochs predicted right",
    "forgetting_events": "epochs where a right prediction turned wrong",
    "region": "'easy-to-learn', 'ambiguous', 'hard-to-learn' or 'other'",
}


_ENTITY_SPAN_COLUMNS = {
    "first_unit": "the span's first word (units.unit)",
    "last_unit": "the span's last word (units.unit)",
    "n_words": "words in the span",
    "entity_type": "the entity type (PER, LOC, ...): the tag without its B-/I- prefix",
    "text": "the span's words joined by spaces",
}


def _schema_comments() -> tuple[dict[tuple[str, str], str], dict[str, str]]:
    """From schema.sql: (table, column) -> the comment beside the column, and table -> the first line of the
    comment above its CREATE statement (the one place tables are described)."""
    columns: dict[tuple[str, str], str] = {}
    tables: dict[str, str] = {}
    table, block = None, []
    for line in schema_sql().splitlines():
        match = re.match(r"\s*CREATE (?:TABLE|VIEW) (\w+)", line)
        if match:
            table = match.group(1)
            if block:
                tables[table] = block[0]
            block = []
            continue
        if line.startswith("--"):
            block.append(line.lstrip("- ").strip())
            continue
        block = [] if not line.strip() else block
        match = re.match(r"\s+(\w+)\s+[A-Z]+.*--\s*(.+)$", line)
        if table and match:
            columns[(table, match.group(1))] = match.group(2).strip()
    return columns, tables


_KEY_COLUMNS = {
    "run_id": "the run (runs.run_id)",
    "checkpoint": "the checkpoint's name (checkpoints.checkpoint)",
    "split": "the split of the examples ('train', 'validation', ...)",
    "example_id": "the example (examples.example_id)",
    "unit": "the output unit of the example: a sentence of a document or a word of a sentence (units.unit); 0 for "
            "example-level tasks",
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
    comments, table_comments = _schema_comments()
    rows["description"] = [
        comments.get((table, column)) or (_DATA_MAP_COLUMNS.get(column) if table == "data_map" else None)
        or (_ENTITY_SPAN_COLUMNS.get(column) if table == "entity_spans" else None)
        or _KEY_COLUMNS.get(column, "")
        for table, column in zip(rows.object, rows["column"])
    ]
    rows["object_description"] = rows.object.map(table_comments).fillna("")
    return rows.drop(columns=["ordinal_position"])
