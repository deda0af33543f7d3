"""The public API: the names a user needs, importable from ``t3vis`` itself and loaded lazily; the first release's
import paths keep working with a DeprecationWarning that names the new one."""

from __future__ import annotations

import importlib
import subprocess
import sys
import warnings

import pytest

import t3vis
from t3vis.deprecated_paths import MOVED, MOVED_NAMES

PUBLIC = ["DataSource", "DynamicsRecorder", "IngestConfig", "METHODS", "ModelSource", "RunInfo", "Store",
          "T3visCallback", "__version__", "encode_completions", "ingest_checkpoint", "ingest_files", "load_completions",
          "load_examples", "load_language_model", "load_model", "load_recorded_checkpoint", "prepare", "run_query",
          "show", "smollm2_checkpoint", "stop", "training_items"]


def test_the_public_names_are_pinned_and_each_resolves_to_its_module():
    assert t3vis.__all__ == PUBLIC
    from t3vis.record.callback import T3visCallback
    from t3vis.record.recorded_checkpoint import load_recorded_checkpoint
    from t3vis.store.database import Store

    assert t3vis.T3visCallback is T3visCallback and t3vis.Store is Store
    assert t3vis.load_recorded_checkpoint is load_recorded_checkpoint
    for name in PUBLIC:
        assert getattr(t3vis, name) is not None
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        t3vis.nothing  # noqa: B018


def test_import_t3vis_stays_light():
    """Nothing heavy is loaded until a name is used: no torch, no transformers, no streamlit."""
    code = ("import sys, t3vis; heavy = [m for m in ('torch', 'transformers', 'streamlit', 'duckdb') "
            "if m in sys.modules]; print(heavy)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "[]", done.stderr


@pytest.mark.parametrize("old", sorted(MOVED))
def test_a_first_release_module_still_imports_and_names_its_new_place(old):
    new, instead = MOVED[old]
    sys.modules.pop(old, None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        module = importlib.import_module(old)
    messages = [str(warning.message) for warning in caught if issubclass(warning.category, DeprecationWarning)]
    assert any(new in message and instead in message for message in messages), messages
    names = [name for name in vars(importlib.import_module(new)) if not name.startswith("_")]
    assert names and all(getattr(module, name) is getattr(importlib.import_module(new), name) for name in names)


@pytest.mark.parametrize("package, name", sorted(MOVED_NAMES))
def test_a_first_release_name_of_a_package_still_resolves(package, name):
    new, instead = MOVED_NAMES[(package, name)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = getattr(importlib.import_module(package), name)
    assert value is getattr(importlib.import_module(new), name)
    assert any(instead in str(warning.message) for warning in caught)


FIRST_RELEASE_SCRIPT = """
import warnings
warnings.simplefilter("default")
from t3vis.callback import T3visCallback
from t3vis.data_loading import load_examples
from t3vis.ingest import IngestConfig, ingest_checkpoint
from t3vis.model_access import load_model
from t3vis.store import RunInfo, Store
from t3vis.dynamics import DynamicsRecorder
from t3vis.sql_console import run_query
print("ran")
"""


def test_a_script_written_with_the_first_releases_imports_runs_with_warnings():
    done = subprocess.run([sys.executable, "-c", FIRST_RELEASE_SCRIPT], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ran", done.stderr[-2000:]
    for old in ("t3vis.callback", "t3vis.data_loading", "t3vis.ingest", "t3vis.model_access", "t3vis.store.Store",
                "t3vis.dynamics", "t3vis.sql_console"):
        assert f"{old} is deprecated" in done.stderr
