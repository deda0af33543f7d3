"""Which store files a visitor of the app may open: the operator's list (``T3VIS_ALLOWED_STORES``).

The app's store field takes any path, so by default a visitor can open any DuckDB file the server can read.
A deployment that must not expose its disk names the stores it serves in the environment variable
``T3VIS_ALLOWED_STORES``: store files and folders separated by ``os.pathsep`` (``:`` on Linux and macOS,
``;`` on Windows); a folder allows every store under it, at any depth. The default store (``T3VIS_STORE``,
or the demo's path when that is unset) is always allowed. Set but empty, only the default store is allowed;
unset, every path is (a local app on one's own machine).

Paths are compared once resolved (made absolute, ``..`` removed, symbolic links followed), so neither
``allowed/../other.duckdb`` nor a link inside an allowed folder pointing outside it gets through.
"""

from __future__ import annotations

import os
from pathlib import Path

from t3vis.errors import StoreError
from t3vis.store.database import DEFAULT_DEMO_PATH

ALLOWED_STORES_VARIABLE = "T3VIS_ALLOWED_STORES"
DEFAULT_STORE_VARIABLE = "T3VIS_STORE"


def default_store() -> str:
    """The store the app opens first: ``T3VIS_STORE``, or the built-in demo's path."""
    return os.environ.get(DEFAULT_STORE_VARIABLE) or str(DEFAULT_DEMO_PATH)


def allowed_entries() -> list[Path] | None:
    """The resolved files and folders of ``T3VIS_ALLOWED_STORES``, or None when it is unset (no restriction)."""
    listed = os.environ.get(ALLOWED_STORES_VARIABLE)
    if listed is None:
        return None
    return [_resolved(entry) for entry in listed.split(os.pathsep) if entry.strip()]


def store_allowed(path: str | Path) -> bool:
    """Whether a visitor may open ``path``: the default store, a listed store, or a store under a listed folder.

    Only names are resolved (``os.path.realpath``: links followed, ``..`` removed); the file is not opened."""
    entries = allowed_entries()
    if entries is None:
        return True
    target = _resolved(path)
    if target == _resolved(default_store()):
        return True
    return any(target == entry or (entry.is_dir() and entry in target.parents) for entry in entries)


def check_store_allowed(path: str | Path) -> None:
    """Refuse a path outside the operator's list (:class:`StoreError`, one line saying what to do)."""
    if not store_allowed(path):
        raise StoreError(f"This server does not open {path}: it serves only the stores its operator listed "
                         f"({ALLOWED_STORES_VARIABLE}). Open {default_store()}, or ask the operator to add "
                         "this store to the list.")


def _resolved(path: str | Path) -> Path:
    return Path(os.path.realpath(Path(path).expanduser()))
