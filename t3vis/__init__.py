"""t3vis: visual analytics for training and fine-tuning Transformer models (after T3-Vis, EMNLP 2021).

The library: the DuckDB analysis store, ingestion, model access, attributions and chart specs. It never imports
streamlit; the app (``streamlit_app.py``, ``pages/``; ``t3vis app`` when installed) is built on top of it.

The names a user needs are importable from here, and loaded only when first used, so that ``import t3vis`` stays
light (no torch, no transformers)::

    from t3vis import T3visCallback, Store, ingest_files, DataSource, ModelSource, IngestConfig, show
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# public name -> the module that defines it (tests/unit/test_public_api.py pins this list)
_PUBLIC = {
    # recording
    "T3visCallback": "t3vis.record.callback",
    "IngestConfig": "t3vis.record.ingest_config",
    "ingest_files": "t3vis.record.ingest_files",
    "DataSource": "t3vis.record.sources",
    "ModelSource": "t3vis.record.sources",
    "ingest_checkpoint": "t3vis.record.ingest",
    "DynamicsRecorder": "t3vis.record.dynamics",
    # the store
    "Store": "t3vis.store.database",
    "RunInfo": "t3vis.store.database",
    "run_query": "t3vis.queries.sql_console",
    # data and models
    "load_examples": "t3vis.data.loading",
    "load_completions": "t3vis.data.completions",
    "encode_completions": "t3vis.data.completions",
    "training_items": "t3vis.data.completions",
    "load_model": "t3vis.model.access",
    "load_recorded_checkpoint": "t3vis.record.recorded_checkpoint",
    "load_language_model": "t3vis.model.language_models",
    "smollm2_checkpoint": "t3vis.model.gguf_checkpoints",
    # explaining one example
    "METHODS": "t3vis.attribution",
    "prepare": "t3vis.attribution",
    # the app
    "show": "t3vis.notebook",
    "stop": "t3vis.notebook",
}

__all__ = sorted([*_PUBLIC, "__version__"])


def __getattr__(name: str):
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 't3vis' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # loaded once
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_PUBLIC))
