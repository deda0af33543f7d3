"""LoRA adapters (peft): the callback records a PeftModel's training, an adapter checkpoint is ingested and
explained through its adapted layers, and LRP stays conservative through them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding, Trainer, \
    TrainingArguments

from t3vis.data.loading import ExampleSet
from t3vis.fixtures.tiny_models import save_tiny_model
from t3vis.model.access import AttentionProbe, load_model, run_with_probe
from t3vis.record.callback import T3visCallback
from t3vis.record.ingest import IngestConfig, ingest_checkpoint
from t3vis.store.database import Store

peft = pytest.importorskip("peft")
TEXTS = [f"{word} {other}" for word in ("goal", "bank", "planet") for other in ("today", "again", "now", "here")]
LABELS = [index // 4 for index in range(len(TEXTS))]


def _examples() -> ExampleSet:
    return ExampleSet(example_ids=np.arange(len(TEXTS)), texts=TEXTS, text_pairs=None, labels=np.array(LABELS),
                      label_names=["sport", "money", "space"], extra=pd.DataFrame(index=range(len(TEXTS))),
                      text_columns=("text",), label_column="label", source="inline")


@pytest.mark.parametrize("model_type, targets", [("bert", ["query", "value"]), ("llama", ["q_proj", "v_proj"])])
def test_a_lora_run_is_recorded_ingested_and_explained(tmp_path, model_type, targets):
    base = save_tiny_model(tmp_path / "base", model_type, num_labels=3)
    tokenizer = AutoTokenizer.from_pretrained(base)
    torch.manual_seed(0)
    model = peft.get_peft_model(AutoModelForSequenceClassification.from_pretrained(base),
                                peft.LoraConfig(task_type="SEQ_CLS", r=4, lora_alpha=8, target_modules=targets,
                                                init_lora_weights=False))  # random B: the adapter changes outputs
    store = Store(tmp_path / "s.duckdb", create=True)
    callback = T3visCallback(store, run_id="lora", eval_examples=_examples(), checkpoint_dir=tmp_path / "weights",
                             label_names=["sport", "money", "space"],
                             ingest_config=IngestConfig(projection="pca", batch_size=4))
    Trainer(model=model, processing_class=tokenizer, callbacks=[callback], data_collator=DataCollatorWithPadding(tokenizer),
            train_dataset=[dict(tokenizer(text), labels=label) for text, label in zip(TEXTS, LABELS)],
            args=TrainingArguments(output_dir=str(tmp_path / "out"), num_train_epochs=2, per_device_train_batch_size=4,
                                   learning_rate=1e-3, report_to=[], save_strategy="no", use_cpu=True)).train()
    callback.flush(60)
    assert callback.problems == []
    assert store.scalar("SELECT count(*) FROM training_dynamics") == 2 * len(TEXTS)
    folder = tmp_path / "weights" / "epoch-2"
    assert (folder / "adapter_config.json").is_file() and not (folder / "config.json").exists()  # an adapter only

    # The adapter folder loads over its base, and gives the trained model's own outputs.
    bundle = load_model(folder, device="cpu")
    assert type(bundle.model).__name__.startswith("PeftModel") and not bundle.classifier_was_initialised
    inputs = dict(tokenizer(TEXTS[:3], padding=True, return_tensors="pt"))
    if model_type != "bert":  # the MiniLM tokenizer makes segment ids a Llama tokenizer would not
        inputs.pop("token_type_ids")
    model.eval()
    with torch.no_grad():
        expected = model(**inputs).logits
        ours, probe = run_with_probe(bundle.model, AttentionProbe(record=True), **inputs)
        plain = AutoModelForSequenceClassification.from_pretrained(base)(**inputs).logits
    assert torch.allclose(ours.logits, expected, atol=1e-5) and not torch.allclose(ours.logits, plain, atol=1e-3)
    assert probe.stacked_attentions().shape[:3] == (2, 3, 4)

    # Ingesting the adapter checkpoint: the stored predictions are the adapted model's.
    summary = ingest_checkpoint(store, bundle, _examples(), run_id="lora-ingested", checkpoint="epoch-2", step=2,
                                path=folder, config=IngestConfig(projection="pca", batch_size=4))
    probs = store.query("SELECT probs FROM predictions WHERE run_id = 'lora-ingested' ORDER BY example_id").probs
    np.testing.assert_allclose(np.stack(probs[:3]), torch.softmax(expected, -1).numpy(), rtol=1e-4, atol=1e-5)
    assert summary.n_examples == len(TEXTS)


def test_lrp_is_conservative_through_lora_layers(tmp_path):
    from t3vis.attribution import METHODS
    from t3vis.attribution.base import prepare

    base = save_tiny_model(tmp_path / "base", "llama", num_labels=3)
    torch.manual_seed(0)
    model = peft.get_peft_model(AutoModelForSequenceClassification.from_pretrained(base),
                                peft.LoraConfig(task_type="SEQ_CLS", r=4, lora_alpha=8, init_lora_weights=False,
                                                target_modules=["q_proj", "v_proj", "o_proj", "gate_proj", "down_proj"]))
    model.save_pretrained(tmp_path / "adapter")
    AutoTokenizer.from_pretrained(base).save_pretrained(tmp_path / "adapter")
    bundle = load_model(tmp_path / "adapter", device="cpu")
    with torch.no_grad():
        for module in bundle.model.modules():
            if type(module).__name__.endswith("RMSNorm"):
                module.weight.uniform_(0.5, 1.5)
    example = prepare(bundle, "the committee approved a rather surprising budget")
    for target in range(3):
        result = METHODS["lrp"].attribute(bundle, example, target)
        assert abs(result.logit) > 1e-4
        assert result.total == pytest.approx(result.logit, rel=1e-3, abs=1e-6)


def test_the_cli_ingests_an_adapter_folder_and_finds_a_moved_base_with_base_model(tmp_path, capsys):
    import shutil

    from helpers import write_topic_csv
    from t3vis.cli import run

    data = write_topic_csv(tmp_path / "topics.csv")
    base = save_tiny_model(tmp_path / "base", "bert", num_labels=3)
    torch.manual_seed(0)
    model = peft.get_peft_model(AutoModelForSequenceClassification.from_pretrained(base),
                                peft.LoraConfig(task_type="SEQ_CLS", r=4, lora_alpha=8, target_modules=["query"],
                                                init_lora_weights=False))
    model.save_pretrained(tmp_path / "adapter")
    AutoTokenizer.from_pretrained(base).save_pretrained(tmp_path / "adapter")
    store = tmp_path / "s.duckdb"
    assert run(["ingest", "--model", str(tmp_path / "adapter"), "--data", str(data), "--store", str(store),
                "--projection", "pca", "--quiet"]) == 0
    assert Store(store).scalar("SELECT count(*) FROM predictions") > 0
    shutil.move(base, tmp_path / "moved")
    assert run(["ingest", "--model", str(tmp_path / "adapter"), "--data", str(data), "--store", str(store),
                "--run", "again", "--projection", "pca", "--quiet"]) == 2
    error = capsys.readouterr().err
    assert "is not there any more" in error and "--base-model" in error
    assert run(["ingest", "--model", str(tmp_path / "adapter"), "--base-model", str(tmp_path / "moved"),
                "--data", str(data), "--store", str(store), "--run", "again", "--projection", "pca", "--quiet"]) == 0
    assert Store(store).scalar("SELECT count(*) FROM predictions WHERE run_id = 'again'") > 0


def test_an_adapter_over_a_base_without_head_brings_its_own_head_size(tmp_path, monkeypatch):
    from transformers import AutoModel

    from t3vis.model.adapters import adapter_head_size

    # a base saved without a classification head (an encoder); the adapter trains a 5-label head on it
    base = save_tiny_model(tmp_path / "with-head", "bert", num_labels=5)
    AutoModel.from_pretrained(base).save_pretrained(tmp_path / "encoder")
    AutoTokenizer.from_pretrained(base).save_pretrained(tmp_path / "encoder")
    monkeypatch.chdir(tmp_path)  # the base recorded as a relative path, as peft keeps it
    torch.manual_seed(0)
    model = peft.get_peft_model(AutoModelForSequenceClassification.from_pretrained("encoder", num_labels=5),
                                peft.LoraConfig(task_type="SEQ_CLS", r=4, target_modules=["query"]))
    model.save_pretrained(tmp_path / "adapter")
    assert adapter_head_size(tmp_path / "adapter") == 5
    bundle = load_model(tmp_path / "adapter", device="cpu")
    assert len(bundle.label_names) == 5 and not bundle.classifier_was_initialised
    inputs = dict(AutoTokenizer.from_pretrained(base)(["goal today"], return_tensors="pt"))
    model.eval()
    with torch.no_grad():
        ours, _ = run_with_probe(bundle.model, AttentionProbe(), **inputs)
        assert torch.allclose(ours.logits, model(**inputs).logits, atol=1e-5)
    monkeypatch.chdir(tmp_path.parent)  # elsewhere the relative base is not found: the message says what to do
    with pytest.raises(Exception, match="base_model"):
        load_model(tmp_path / "adapter", device="cpu")
    assert len(load_model(tmp_path / "adapter", base_model=tmp_path / "encoder", device="cpu").label_names) == 5
