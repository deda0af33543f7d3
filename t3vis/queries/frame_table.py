"""A view's example frame held in an in-memory DuckDB table, for views too large to send to the browser.

At a million points, copying the frame into pandas on each filter change (and shipping it to the browser)
is what costs. :class:`FrameTable` keeps the unfiltered frame of one view as a native DuckDB table in its own
in-memory database, built once; every filter change is then a few SQL queries over it: the count of rows
passing the filters, one page of them for the Data Table, the filter widgets' ranges, and the WebGL layer's
data (:mod:`t3vis.charts.point_cloud`). Filters are the same parameterised WHERE clause as
:func:`t3vis.queries.explore.example_frame`.

DuckDB connections are not safe to share between threads; each query runs on its own cursor (a
connection to the same in-memory database), so sessions of the app may query one table at once.
"""

from __future__ import annotations

from collections.abc import Sequence

import duckdb
import pandas as pd

from t3vis.queries.explore import Attribute, Filter, example_frame, where_clause
from t3vis.queries.frames import View, quote_identifier
from t3vis.store.database import Store


PAGE_CACHE_ROWS = 1_000  # pages of up to this many rows are remembered (per filters, offset and columns)
LAYOUT_ATTRIBUTES = (Attribute("x", "x (layout)", "continuous"), Attribute("y", "y (layout)", "continuous"))


class FrameTable:
    """The unfiltered example frame of one view, as a DuckDB table named ``frame``."""

    def __init__(self, frame: pd.DataFrame, known: Sequence[Attribute]):
        names = {attribute.name for attribute in known}
        # the layout's coordinates are filterable too: narrowing x and y zooms into a region, in SQL
        self.known = list(known) + [attribute for attribute in LAYOUT_ATTRIBUTES if attribute.name not in names]
        self.columns = list(frame.columns)
        self.order = ["example_id", "unit"] if "unit" in frame.columns else ["example_id"]
        self._connection = duckdb.connect(":memory:")
        self._connection.register("incoming", frame)
        # rows in a fixed pseudo-random order (a hash of the key): scans without ORDER BY, such as the points
        # of a rasterised view (t3vis.charts.point_raster), then draw no label over all the others
        keys = ", ".join(quote_identifier(column) for column in self.order)
        self._connection.execute(f"CREATE TABLE frame AS SELECT * FROM incoming ORDER BY hash({keys}), {keys}")
        self._connection.unregister("incoming")
        self.n_rows = int(self._connection.execute("SELECT count(*) FROM frame").fetchone()[0])
        self._summaries: dict[str, tuple] = {}
        self._counts: dict[tuple, int] = {}  # the table never changes: a count stays right
        self._pages: dict[tuple, pd.DataFrame] = {}  # and so does a page of rows
        counts = self.query("SELECT " + ", ".join(f"count({quote_identifier(c)}) AS {quote_identifier(c)}"
                                                  for c in self.columns) + " FROM frame").iloc[0]
        # e.g. a training split's prediction columns, empty without a checkpoint's predictions of that split
        self.empty_columns = tuple(c for c in self.columns if int(counts[c]) == 0)

    @classmethod
    def of_view(cls, store: Store, view: View, known: Sequence[Attribute]) -> FrameTable:
        """Read the view's frame from the store once (unfiltered) and keep it in memory."""
        return cls(example_frame(store, view, (), known=known), known)

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A connection of this thread's own to the in-memory database (close it after use)."""
        return self._connection.cursor()

    def where(self, filters: Sequence[Filter]) -> tuple[str, list]:
        """`` WHERE ...`` (or an empty string) and its parameters."""
        clause, params = where_clause(filters, self.known)
        return (f" WHERE {clause}" if clause else ""), params

    def query(self, sql: str, params: Sequence = ()) -> pd.DataFrame:
        with self.cursor() as cursor:
            return cursor.execute(sql, list(params)).df()

    def scalar(self, sql: str, params: Sequence = ()):
        with self.cursor() as cursor:
            return cursor.execute(sql, list(params)).fetchone()[0]

    def count(self, filters: Sequence[Filter] = ()) -> int:
        """Rows passing the filters; remembered per filters, as a page asks several times per run."""
        key = tuple(filters)
        count = self._counts.get(key)  # (one get: another session may clear the dict meanwhile)
        if count is None:
            where, params = self.where(filters)
            if len(self._counts) >= 64:
                self._counts.clear()
            count = self._counts[key] = int(self.scalar(f"SELECT count(*) FROM frame{where}", params))
        return count

    def rows(self, filters: Sequence[Filter] = (), *, offset: int = 0, limit: int | None = None,
             columns: Sequence[str] | None = None) -> pd.DataFrame:
        """The rows passing the filters, in example order (``limit`` rows from ``offset``; all when None)."""
        key = (tuple(filters), offset, limit, None if columns is None else tuple(columns))
        remembered = self._pages.get(key)  # a page of the Data table: a new visitor or a click asks again
        if remembered is not None:
            return remembered.copy()
        where, params = self.where(filters)
        selected = "*" if columns is None else ", ".join(quote_identifier(c) for c in columns if c in self.columns)
        page = "" if limit is None else f" LIMIT {int(limit)} OFFSET {int(offset)}"
        found = self.query(f"SELECT {selected} FROM frame{where} ORDER BY {', '.join(self.order)}{page}", params)
        if limit is not None and limit <= PAGE_CACHE_ROWS:
            if len(self._pages) >= 64:
                self._pages.clear()
            self._pages[key] = found.copy()
        return found

    def position(self, filters: Sequence[Filter], example_id: int) -> int | None:
        """Index of the example's first row among the rows passing the filters (None when it does not pass)."""
        where, params = self.where(filters)
        sql = (f"SELECT position FROM (SELECT example_id, row_number() OVER (ORDER BY {', '.join(self.order)}) - 1 "
               f"AS position FROM frame{where}) WHERE example_id = ? ORDER BY position LIMIT 1")
        with self.cursor() as cursor:
            found = cursor.execute(sql, [*params, int(example_id)]).fetchone()
        return None if found is None else int(found[0])

    def summary(self, attribute: Attribute) -> tuple:
        """(min, max) of a continuous attribute, or the sorted distinct values of a categorical one, over the
        unfiltered rows (what :func:`t3vis.queries.explore.attribute_summary` gives for a DataFrame)."""
        if attribute.name not in self._summaries:
            column = quote_identifier(attribute.name)
            if attribute.kind == "continuous":
                low, high = self.query(f"SELECT min({column}) AS low, max({column}) AS high FROM frame "
                                       f"WHERE isfinite({column})").iloc[0]  # an infinite loss: no bound
                value = (0.0, 0.0) if pd.isna(low) else (float(low), float(high))
            else:
                values = self.query(f"SELECT DISTINCT CAST({column} AS VARCHAR) AS value FROM frame "
                                    f"WHERE {column} IS NOT NULL").value
                value = tuple(sorted(values))
            self._summaries[attribute.name] = value
        return self._summaries[attribute.name]

    def close(self) -> None:
        self._connection.close()
