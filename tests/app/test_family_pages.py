"""Every page on stores of the decoder, DeBERTa and ModernBERT families (tiny random classifiers, weights on disk)."""

from __future__ import annotations

import pytest

from helpers import PROJECT
from page_helpers import chart_with, open_page
from t3vis.data.loading import load_examples
from t3vis.fixtures.tiny_models import save_tiny_model
from t3vis.model.access import load_model
from t3vis.record.ingest import IngestConfig, ingest_checkpoint
from t3vis.store.database import Store

PAGES = ["projection", "heads", "instance", "training", "sql", "overview"]
FAMILIES = ["gpt2", "llama", "modernbert", "deberta-v2"]


@pytest.fixture(scope="module")
def family_stores(tmp_path_factory):
    from helpers import write_topic_csv

    folder = tmp_path_factory.mktemp("families")
    examples = load_examples(write_topic_csv(folder / "topics.csv"))
    stores = {}
    for model_type in FAMILIES:
        weights = save_tiny_model(folder / model_type, model_type, num_labels=len(examples.label_names))
        bundle = load_model(weights, label_names=tuple(examples.label_names), device="cpu")
        store = Store(folder / f"{model_type}.duckdb", create=True)
        ingest_checkpoint(store, bundle, examples, run_id=model_type, checkpoint="c1", step=1, path=weights,
                          config=IngestConfig(projection="pca", batch_size=4))
        stores[model_type] = store
    return stores


@pytest.mark.parametrize("model_type", FAMILIES)
@pytest.mark.parametrize("page", PAGES)
def test_every_page_loads_for_every_family(family_stores, model_type, page):
    store = family_stores[model_type]
    app = open_page(str(PROJECT / "pages" / f"{page}.py"), store.path, split="validation", example_id=3,
                    heads_scale="instance")
    assert not app.exception, app.exception
    if page == "projection":
        (spec, rows), = chart_with(app, "pick")
        assert len(rows) == store.scalar("SELECT count(*) FROM examples")
    if page == "instance":  # the live view ran the checkpoint: tokens and class probabilities are drawn
        assert any("predicted" in markdown.value for markdown in app.markdown)
