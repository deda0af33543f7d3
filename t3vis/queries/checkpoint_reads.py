"""Reads that bring a checkpoint back to life: where its weights are, and a split's examples as stored."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from t3vis.data.loading import ExampleSet
from t3vis.model.checkpoint_folders import WeightsStatus, recorded_folder, weights_status
from t3vis.store.database import Store


def checkpoint_weights_status(store: Store, run_id: str, checkpoint: str, *,
                              base_model: str | Path | None = None) -> WeightsStatus:
    """What the folder the store records for a checkpoint holds, and whether it can be loaded
    (:mod:`t3vis.model.checkpoint_folders`): a full model, or an adapter whose base (``base_model`` when given)
    can be found."""
    path = store.scalar("SELECT path FROM checkpoints WHERE run_id = ? AND checkpoint = ?", [run_id, checkpoint])
    return weights_status(recorded_folder(store.path.parent, path), base_model=base_model)


def checkpoint_weights(store: Store, run_id: str, checkpoint: str, *,
                       base_model: str | Path | None = None) -> Path | None:
    """The folder of a checkpoint's weights when t3vis can load it (see :func:`checkpoint_weights_status`), or None."""
    status = checkpoint_weights_status(store, run_id, checkpoint, base_model=base_model)
    return status.folder if status.loadable else None


def stored_examples(store: Store, run_id: str, split: str) -> ExampleSet:
    """A split's examples as the store holds them (texts as fed to the model, gold labels)."""
    import pandas as pd

    rows = store.query("SELECT example_id, text, text_pair, label FROM examples WHERE run_id = ? AND split = ? "
                       "ORDER BY example_id", [run_id, split])
    names = store.scalar("SELECT label_names FROM runs WHERE run_id = ?", [run_id])
    has_pairs = bool(rows.text_pair.notna().any())
    return ExampleSet(
        example_ids=rows.example_id.to_numpy(np.int64), texts=rows.text.tolist(),
        text_pairs=rows.text_pair.fillna("").tolist() if has_pairs else None,
        labels=rows.label.to_numpy(np.int64), label_names=list(names or []), extra=pd.DataFrame(index=rows.index),
        text_columns=("text", "text_pair") if has_pairs else ("text",), label_column="label",
        source=f"{store.path}:{run_id}/{split}",
    )


def stored_documents(store: Store, run_id: str, split: str):
    """A summarization split's documents as the store holds them: sentences, oracle labels, references."""
    import pandas as pd

    from t3vis.data.documents import DocumentSet

    documents = store.query("SELECT example_id, reference FROM examples WHERE run_id = ? AND split = ? "
                            "ORDER BY example_id", [run_id, split])
    sentences = _units_of(store, run_id, split, documents.example_id)
    return DocumentSet(
        example_ids=documents.example_id.to_numpy(np.int64),
        sentences=[group.text.tolist() for group in sentences],
        references=[(reference or "").splitlines() for reference in documents.reference],
        oracle=[group.label.to_numpy(np.int64) for group in sentences],
        extra=pd.DataFrame(index=documents.index), article_column="text", summary_column="reference",
        source=f"{store.path}:{run_id}/{split}",
    )


def stored_sentences(store: Store, run_id: str, split: str):
    """A token-classification split's sentences as the store holds them: words and gold tags."""
    import pandas as pd

    from t3vis.data.tagging import TaggedSentences

    sentences = store.query("SELECT example_id FROM examples WHERE run_id = ? AND split = ? ORDER BY example_id",
                            [run_id, split])
    words = _units_of(store, run_id, split, sentences.example_id)
    names = store.scalar("SELECT label_names FROM runs WHERE run_id = ?", [run_id])
    return TaggedSentences(
        example_ids=sentences.example_id.to_numpy(np.int64), words=[group.text.tolist() for group in words],
        tags=[group.label.to_numpy(np.int64) for group in words], tag_names=tuple(names or ()),
        extra=pd.DataFrame(index=sentences.index), source=f"{store.path}:{run_id}/{split}",
    )


def _units_of(store: Store, run_id: str, split: str, example_ids):
    """Each example's units (columns text, label, in unit order), one frame per example id in the given order."""
    import pandas as pd

    units = store.query("SELECT example_id, text, label FROM units WHERE run_id = ? AND split = ? "
                        "ORDER BY example_id, unit", [run_id, split])
    grouped = {key: group for key, group in units.groupby("example_id", sort=False)}
    empty = pd.DataFrame({"text": [], "label": []})
    return [grouped.get(key, empty) for key in example_ids]
