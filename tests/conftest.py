"""Shared fixtures: tiny random models built from a config, small data files, stores under tmp_path."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

PROJECT = Path(__file__).resolve().parents[1]
SHARED_DATA = PROJECT.parent / "shared" / "data"

TOPIC_SENTENCES = {
    "sports": ["the team won the final match", "a late goal decided the game", "the striker scored twice",
               "fans cheered as the runner crossed the line", "the coach praised the defence"],
    "business": ["shares fell after the earnings report", "the company hired a new chief executive",
                 "investors worry about interest rates", "the bank raised its profit forecast",
                 "the merger was approved by regulators"],
    "science": ["the telescope found a distant planet", "researchers sequenced the genome",
                "the experiment confirmed the theory", "a new vaccine entered clinical trials",
                "physicists measured the particle mass"],
}


def shared_file(name: str) -> Path:
    """A file of ../shared/data, or skip the test with the reason."""
    path = SHARED_DATA / name
    if not path.is_file():
        pytest.skip(f"{path} is absent: the shared datasets are not on this machine")
    return path


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A tiny random BERT classifier (2 layers x 4 heads, 3 labels) saved with the MiniLM tokenizer."""
    from t3vis.fixtures.tiny_models import save_tiny_model

    return save_tiny_model(tmp_path_factory.mktemp("tiny-bert"), "bert", num_labels=3)


@pytest.fixture(scope="session")
def tiny_bundle(tiny_model_dir):
    from t3vis.model.access import load_model

    return load_model(tiny_model_dir, device="cpu")


def write_topic_csv(path: Path) -> Path:
    """Write the 15 topic sentences as a CSV (text, label, source) at ``path``; returns the path."""
    import csv

    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label", "source"])
        for topic, sentences in TOPIC_SENTENCES.items():
            for index, sentence in enumerate(sentences):
                writer.writerow([sentence, topic, f"{topic}-{index}"])
    return path


@pytest.fixture()
def topic_csv(tmp_path) -> Path:
    """A small CSV of 15 topic sentences with string labels and an extra column."""
    return write_topic_csv(tmp_path / "topics.csv")


@pytest.fixture()
def store_path(tmp_path) -> Path:
    return tmp_path / "store" / "test.duckdb"
