"""The analysis store: one DuckDB file, its schema, and the only code that opens it (reads read-only, writes in one transaction, queued writes for recording)."""


def __getattr__(name: str):
    """``t3vis.store.Store`` and ``t3vis.store.RunInfo`` of the first release (deprecated; now ``from t3vis import
    Store``)."""
    from t3vis.deprecated_paths import moved_name

    return moved_name(__name__, name)
