"""Helpers shared by the tests (paths, the shared datasets, small data files); fixtures live in conftest.py."""

from __future__ import annotations

from pathlib import Path

import pytest

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


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    """Run the CLI in this process; returns (exit code, stdout, stderr)."""
    import contextlib
    import io

    from t3vis.cli import run

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = run(argv)
    return code, out.getvalue(), err.getvalue()
