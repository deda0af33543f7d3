"""The analysis store: one DuckDB file, its schema, and the only code that opens it (reads read-only, writes in one transaction, queued writes for recording)."""
