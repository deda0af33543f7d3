"""Layouts of a document's sentences: the vector at each kept sentence's [CLS], laid out per checkpoint."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import AutoTokenizer

from t3vis.data.documents import make_documents
from t3vis.fixtures.summarization_store import synthetic_documents
from t3vis.fixtures.tiny_models import save_tiny_summarizer
from t3vis.model.pretrained import minilm_path
from t3vis.model.summarizer import collate_documents, encode_documents
from t3vis.model.summarizer_loading import load_summarizer
from t3vis.queries import explore
from t3vis.record.ingest_config import IngestConfig
from t3vis.record.projection import project
from t3vis.record.ingest import previous_layouts
from t3vis.record.summarization import ingest_summarizer_checkpoint
from t3vis.store.database import Store

ARTICLES = ["The council met on Monday. It approved the new budget. Critics called it reckless. The vote was close.",
            "Rain is expected tomorrow. Rivers may flood. Residents should prepare sandbags.",
            "The team won the final. Fans celebrated in the streets. The coach praised the defence."]
SUMMARIES = ["The council approved the budget .", "Rivers may flood .", "The team won the final ."]


@pytest.fixture(scope="module")
def summarizer(tmp_path_factory):
    return load_summarizer(save_tiny_summarizer(tmp_path_factory.mktemp("bertsum")), device="cpu")


def _distances(points: np.ndarray) -> np.ndarray:
    return np.linalg.norm(points[:, None] - points[None], axis=-1)


def test_each_kept_sentence_is_laid_out_from_its_own_cls_vector(tmp_path, summarizer):
    documents = make_documents(ARTICLES, SUMMARIES, example_ids=np.array([7, 8, 9]))
    store = Store(tmp_path / "s.duckdb", create=True)
    config = IngestConfig(projection="pca", layers=(1, 2), batch_size=2, importance_examples=0)
    ingest_summarizer_checkpoint(store, summarizer, documents, run_id="r", checkpoint="c1", step=1, config=config)

    # By hand: every document alone through the model, the hidden state at each sentence's [CLS].
    encoded = encode_documents(summarizer.tokenizer, documents.sentences, max_length=summarizer.max_length)
    for layer in (1, 2):
        vectors, keys = [], []
        for example_id, document in zip(documents.example_ids, encoded):
            inputs = collate_documents([document], pad_token_id=summarizer.pad_token_id)
            with torch.no_grad():
                hidden = summarizer.model(**inputs, output_hidden_states=True).hidden_states[layer][0]  # (T, D)
            vectors.append(hidden[document.cls_positions].numpy())  # (S, D)
            keys += [(int(example_id), unit) for unit in range(document.n_kept)]
        expected = project(np.concatenate(vectors), method="pca")  # (M, 2)
        stored = store.query("SELECT example_id, unit, x, y FROM unit_projections WHERE layer = ? "
                             "ORDER BY example_id, unit", [layer])
        assert list(zip(stored.example_id, stored.unit)) == keys == [(7, 0), (7, 1), (7, 2), (7, 3), (8, 0),
                                                                      (8, 1), (8, 2), (9, 0), (9, 1), (9, 2)]
        # PCA axes may flip sign: compare the layouts by their pairwise distances.
        np.testing.assert_allclose(_distances(stored[["x", "y"]].to_numpy()), _distances(expected), atol=1e-3)

    # The Projection view's sentence frame: one point per laid-out sentence, with its oracle label and score.
    view = explore.View(run_id="r", split="validation", checkpoint="c1", layout="pca", layer=2, points="units")
    names = {attribute.name for attribute in explore.attributes(store, view)}
    assert {"label", "position", "prob", "prediction"} <= names and "region" not in names  # no training dynamics
    frame = explore.example_frame(store, view)
    assert len(frame) == 10 and frame.prob.between(0, 1).all() and set(frame.label) <= {"in summary",
                                                                                         "not in summary"}
    only_first = explore.example_frame(store, view, [explore.RangeFilter("position", 0, 0)])
    assert only_first.example_id.tolist() == [7, 8, 9] and (only_first.unit == 0).all()


def test_a_sample_of_sentences_is_laid_out_and_the_next_checkpoint_starts_from_it(tmp_path, summarizer):
    documents = synthetic_documents(12)  # 5 sentences each
    store = Store(tmp_path / "s.duckdb", create=True)
    config = IngestConfig(projection="tsne", unit_points=20, batch_size=4, importance_examples=0)
    for step, name in ((1, "c1"), (2, "c2")):
        ingest_summarizer_checkpoint(store, summarizer, documents, run_id="r", checkpoint=name, step=step,
                                     config=config)
    layouts = {name: store.query("SELECT example_id, unit, x, y FROM unit_projections WHERE checkpoint = ? "
                                 "ORDER BY example_id, unit", [name]) for name in ("c1", "c2")}
    assert len(layouts["c1"]) == 20  # the sample, the same sentences at both checkpoints
    assert layouts["c1"][["example_id", "unit"]].values.tolist() == layouts["c2"][["example_id", "unit"]].values.tolist()
    # c2's t-SNE starts from c1's layout of the same sentences; with the same weights it stays close to it.
    start = previous_layouts(store, "r", checkpoint="c2", step=2, config=config)["unit_projections"].to_pandas()
    assert start.sort_values(["example_id", "unit"])[["x", "y"]].values.tolist() == layouts["c1"][["x", "y"]].values.tolist()
    first, second = (layouts[name][["x", "y"]].to_numpy() for name in ("c1", "c2"))
    assert np.median(np.linalg.norm(second - first, axis=1)) < 0.25 * np.ptp(first, axis=0).max()

    none = IngestConfig(projection="pca", unit_points=0, importance_examples=0)
    ingest_summarizer_checkpoint(store, summarizer, documents, run_id="r", checkpoint="c3", step=3, config=none)
    assert store.scalar("SELECT count(*) FROM unit_projections WHERE checkpoint = 'c3'") == 0
