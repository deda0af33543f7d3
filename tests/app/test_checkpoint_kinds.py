"""Every kind of checkpoint folder the callback writes opens the app's live views, through the app's own path.

A run is recorded with ``T3visCallback(checkpoint_dir=...)``: a full classifier, a LoRA adapter over an encoder,
a LoRA adapter over a decoder (its saved ``score`` head), a summarizer and a tagger (a two-process launch:
tests/integration/test_distributed.py). The library's definition of a loadable folder accepts each, the
function the pages call loads it, and the Instance and Attention heads pages show their live views. A LoRA run
whose base model was moved away says which base its adapter names and where to give another one.
"""

from __future__ import annotations

import shutil
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding, Trainer, \
    TrainingArguments

from helpers import PROJECT
from page_helpers import assert_live_views, open_page, token_saliency
from t3vis.data.loading import ExampleSet
from t3vis.fixtures.tiny_models import save_tiny_model
from t3vis.model.checkpoint_folders import ADAPTER, FULL_MODEL, weights_status
from t3vis.queries.checkpoint_reads import checkpoint_weights_status
from t3vis.record.callback import T3visCallback
from t3vis.record.ingest import IngestConfig
from t3vis.record.recorded_checkpoint import load_recorded_checkpoint
from t3vis.store.database import Store

peft = pytest.importorskip("peft")
TOPICS = ("sport", "money", "space")
TEXTS = [f"{word} {other}" for word in ("goal", "bank", "planet") for other in ("today", "again", "now", "here")]
LABELS = [index // 4 for index in range(len(TEXTS))]
CLASSIFIER_KINDS = {  # kind: (model type, LoRA target modules or None for full fine-tuning)
    "classifier": ("bert", None),
    "lora-encoder": ("bert", ["query", "value"]),
    "lora-decoder": ("llama", ["q_proj", "v_proj"]),
}


def _examples() -> ExampleSet:
    return ExampleSet(example_ids=np.arange(len(TEXTS)), texts=TEXTS, text_pairs=None, labels=np.array(LABELS),
                      label_names=list(TOPICS), extra=pd.DataFrame(index=range(len(TEXTS))),
                      text_columns=("text",), label_column="label", source="inline")


def record_classifier(folder, kind: str) -> Store:
    """Fine-tune a tiny classifier (fully or with LoRA) for 2 epochs, recorded by the callback with its weights."""
    model_type, targets = CLASSIFIER_KINDS[kind]
    base = save_tiny_model(folder / "base", model_type, num_labels=3)
    tokenizer = AutoTokenizer.from_pretrained(base)
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(base)
    if targets is not None:
        model = peft.get_peft_model(model, peft.LoraConfig(task_type="SEQ_CLS", r=4, lora_alpha=8,
                                                           target_modules=targets, init_lora_weights=False))
    store = Store(folder / "run.duckdb", create=True)
    callback = T3visCallback(store, run_id=kind, eval_examples=_examples(), checkpoint_dir=folder / "weights",
                             label_names=list(TOPICS), ingest_config=IngestConfig(projection="pca", batch_size=4))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the Trainer's own
        Trainer(model=model, processing_class=tokenizer, callbacks=[callback],
                data_collator=DataCollatorWithPadding(tokenizer),
                train_dataset=[dict(tokenizer(text), labels=label) for text, label in zip(TEXTS, LABELS)],
                args=TrainingArguments(output_dir=str(folder / "out"), num_train_epochs=2, learning_rate=1e-3,
                                       per_device_train_batch_size=4, report_to=[], save_strategy="no",
                                       use_cpu=True, disable_tqdm=True)).train()
    callback.flush(60)
    assert callback.problems == []
    return store


@pytest.fixture(scope="module", params=[*CLASSIFIER_KINDS, "summarizer", "tagger"])
def recorded(request, tmp_path_factory):
    """(kind, store, run id, last checkpoint, an evaluation example, page state) of a callback-recorded run."""
    folder = tmp_path_factory.mktemp(request.param)
    if request.param == "summarizer":
        from t3vis.fixtures.summarization_store import build_summarization_store

        store = build_summarization_store(folder / "run.duckdb")
        return request.param, store, "bertsum-tiny", "epoch-2", 1003, {"summary_sentence": 1}
    if request.param == "tagger":
        from t3vis.fixtures.tagging_store import build_tagging_store

        store = build_tagging_store(folder / "run.duckdb")
        return request.param, store, "ner-tiny", "epoch-2", 1003, {"tagged_word": 1}
    return request.param, record_classifier(folder, request.param), request.param, "epoch-2", 4, {}


def test_each_kind_of_checkpoint_folder_loads_and_shows_the_live_views(recorded):
    kind, store, run_id, checkpoint, example_id, state = recorded
    status = checkpoint_weights_status(store, run_id, checkpoint)
    assert status.loadable and status.kind == (ADAPTER if kind.startswith("lora") else FULL_MODEL)
    if status.kind == ADAPTER:  # what the callback saves of a PeftModel: the adapter, its head, the tokenizer
        assert not (status.folder / "config.json").exists() and status.base_found
    bundle = load_recorded_checkpoint(store, run_id, checkpoint, device="cpu")
    assert bundle.num_layers == store.run(run_id).num_layers and not bundle.classifier_was_initialised
    assert_live_views(store.path, run_id, checkpoint, example_id, **state)


@pytest.fixture()
def lora_decoder(tmp_path):
    return record_classifier(tmp_path, "lora-decoder"), tmp_path


def test_a_lora_run_whose_base_moved_names_the_base_and_takes_another_one(lora_decoder):
    store, folder = lora_decoder
    base = folder / "base"
    shutil.move(base, folder / "moved")
    status = checkpoint_weights_status(store, "lora-decoder", "epoch-2")
    assert status.kind == ADAPTER and status.named_base == str(base) and not status.base_found
    assert f"trained on {base}, which cannot be found here" in status.problem and "base_model" in status.problem

    instance = open_page(str(PROJECT / "pages" / "instance.py"), store.path, split="validation", example_id=4)
    assert not instance.exception
    [message] = [info.value for info in instance.info]
    assert "base model" in message and base.name in message and "Base model of the adapter" in message
    assert token_saliency(instance) is None
    [field] = [widget for widget in instance.text_input if widget.label == "Base model folder or hub name"]
    assert any(base.name in warning.value for warning in instance.warning)  # the sidebar says which base

    field.set_value(str(folder / "moved")).run()  # the app's counterpart of --base-model
    assert not instance.exception and not [info.value for info in instance.info]
    assert (token_saliency(instance).value.abs() > 0).any()
    heads = open_page(str(PROJECT / "pages" / "heads.py"), store.path, split="validation", example_id=4,
                      heads_scale="instance")
    assert any("Base model of the adapter" in info.value for info in heads.info)  # another session: not chosen yet
    assert_live_views(store.path, "lora-decoder", "epoch-2", 4, **{"base_model.lora-decoder": str(folder / "moved")})


def test_a_folder_that_is_neither_a_model_nor_an_adapter_is_refused_with_a_reason(tmp_path):
    (tmp_path / "empty").mkdir()
    assert "holds neither config.json" in weights_status(tmp_path / "empty").problem
    assert "is not there" in weights_status(tmp_path / "gone").problem
    assert weights_status(None).kind == "not recorded" and not weights_status(None).loadable


def test_a_deployment_that_fixes_its_stores_lets_no_visitor_name_a_base_model(lora_decoder, monkeypatch):
    """With T3VIS_ALLOWED_STORES set, the sidebar's base-model field (a path on the server) is not offered."""
    store, folder = lora_decoder
    shutil.move(folder / "base", folder / "moved")
    monkeypatch.setenv("T3VIS_ALLOWED_STORES", str(folder))
    instance = open_page(str(PROJECT / "pages" / "instance.py"), store.path, split="validation", example_id=4,
                         **{"base_model.lora-decoder": str(folder / "moved")})  # a value from before is ignored
    assert not instance.exception and token_saliency(instance) is None
    assert not [widget for widget in instance.text_input if widget.label == "Base model folder or hub name"]
    assert any("T3VIS_ALLOWED_STORES" in warning.value for warning in instance.warning)
