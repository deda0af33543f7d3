"""Shared fixtures: tiny random models built from a config, small data files, stores under tmp_path."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from helpers import write_topic_csv  # noqa: E402  (after the environment is set)

LAYERS = ("unit", "integration", "app", "browser")  # folders of tests/, each a marker of the same name


def pytest_collection_modifyitems(items) -> None:
    """Mark each test with its layer, the folder it lives in."""
    for item in items:
        layer = Path(str(item.fspath)).parent.name
        if layer in LAYERS:
            item.add_marker(getattr(pytest.mark, layer))


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A tiny random BERT classifier (2 layers x 4 heads, 3 labels) saved with the MiniLM tokenizer."""
    from t3vis.fixtures.tiny_models import save_tiny_model

    return save_tiny_model(tmp_path_factory.mktemp("tiny-bert"), "bert", num_labels=3)


@pytest.fixture(scope="session")
def tiny_bundle(tiny_model_dir):
    from t3vis.model.access import load_model

    return load_model(tiny_model_dir, device="cpu")


@pytest.fixture()
def topic_csv(tmp_path) -> Path:
    """A small CSV of 15 topic sentences with string labels and an extra column."""
    return write_topic_csv(tmp_path / "topics.csv")


@pytest.fixture()
def store_path(tmp_path) -> Path:
    return tmp_path / "store" / "test.duckdb"
