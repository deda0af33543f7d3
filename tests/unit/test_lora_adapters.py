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
    assert f"trained on {base}, which cannot be found here" in error and "--base-model" in error
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


def _lora_checkpoint(base, folder, seed: int, task_type: str = "SEQ_CLS", auto=AutoModelForSequenceClassification,
                     **options):
    """A LoRA adapter over ``base`` with random (non-zero) weights saved in ``folder``; returns the PeftModel."""
    torch.manual_seed(seed)
    model = peft.get_peft_model(auto.from_pretrained(base), peft.LoraConfig(
        task_type=task_type, r=4, lora_alpha=8, target_modules=["query", "value"], init_lora_weights=False, **options))
    model.save_pretrained(folder)
    return model.eval()


def test_the_checkpoints_of_one_lora_run_load_the_base_once_and_share_its_weights(tmp_path, monkeypatch):
    from t3vis.model.access import forget_base_models

    base = save_tiny_model(tmp_path / "base", "bert", num_labels=3)
    trained = [_lora_checkpoint(base, tmp_path / f"epoch-{epoch}", seed=epoch) for epoch in (1, 2)]
    for epoch in (1, 2):  # a Trainer saves the tokenizer into every checkpoint
        AutoTokenizer.from_pretrained(base).save_pretrained(tmp_path / f"epoch-{epoch}")
    forget_base_models()
    loads = []
    original = AutoModelForSequenceClassification.from_pretrained
    monkeypatch.setattr(AutoModelForSequenceClassification, "from_pretrained",
                        lambda *args, **kwargs: loads.append(args[0]) or original(*args, **kwargs))
    bundles = [load_model(tmp_path / f"epoch-{epoch}", device="cpu") for epoch in (1, 2)]
    assert loads == [str(base)]  # one read of the base for both checkpoints
    weights = [bundle.model.get_base_model().bert.embeddings.word_embeddings.weight for bundle in bundles]
    assert weights[0].data_ptr() == weights[1].data_ptr()  # held once

    tokenizer = AutoTokenizer.from_pretrained(base)
    inputs = dict(tokenizer(TEXTS[:4], padding=True, return_tensors="pt"))
    with torch.no_grad():
        outputs = [run_with_probe(bundle.model, AttentionProbe(), **inputs)[0].logits for bundle in bundles]
        for model, output in zip(trained, outputs):  # each checkpoint is its own adapter, not the other's
            assert torch.allclose(model(**inputs).logits, output, atol=1e-5)
        assert not torch.allclose(outputs[0], outputs[1], atol=1e-3)
        plain = AutoModelForSequenceClassification.from_pretrained(base).eval()(**inputs).logits
        base_again = load_model(base, device="cpu").model(**inputs).logits
    assert torch.allclose(plain, base_again, atol=1e-6)  # attaching adapters left the base as it was
    assert bundles[1].tokenizer.name_or_path == str(tmp_path / "epoch-2")  # each its own folder's tokenizer
    from t3vis.errors import ModelError

    with pytest.raises(ModelError, match="is itself an adapter"):  # refused at once (it used to wait forever)
        load_model(tmp_path / "epoch-2", base_model=tmp_path / "epoch-1", device="cpu")
    forget_base_models()


def test_a_tagger_and_a_summarizer_trained_with_lora_load_from_their_adapters(tmp_path):
    from transformers import AutoModelForTokenClassification

    from t3vis.attribution import METHODS
    from t3vis.attribution.base import prepare_words, word_target
    from t3vis.fixtures.tiny_models import save_tiny_summarizer, save_tiny_tagger
    from t3vis.model.summarizer import ExtractiveSummarizer
    from t3vis.model.summarizer_loading import load_summarizer
    from t3vis.tasks import TOKEN_CLASSIFICATION

    tags = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    tagger_base = save_tiny_tagger(tmp_path / "tagger", tags)
    tagger = _lora_checkpoint(tagger_base, tmp_path / "tagger-lora", seed=3, task_type="TOKEN_CLS",
                              auto=AutoModelForTokenClassification)
    bundle = load_model(tmp_path / "tagger-lora", task=TOKEN_CLASSIFICATION, device="cpu")
    assert bundle.label_names == tuple(tags)
    example = prepare_words(bundle, ["Ada", "Lovelace", "visited", "Paris"])
    with torch.no_grad():
        assert torch.allclose(tagger(**example.inputs).logits, bundle.model(**example.inputs).logits, atol=1e-5)
    with torch.no_grad():  # LRP stays conservative through the adapted layers of a bias-free tagger
        for name, parameter in bundle.model.named_parameters():
            if name.endswith("bias"):
                parameter.zero_()
    result = METHODS["lrp"].attribute(bundle, example, word_target(bundle, example, 1, tags.index("I-PER")))
    assert abs(result.logit) > 1e-4
    assert result.total == pytest.approx(result.logit, rel=1e-3, abs=1e-6)

    summarizer_base = save_tiny_summarizer(tmp_path / "summarizer")
    torch.manual_seed(4)
    summarizer = peft.get_peft_model(ExtractiveSummarizer.from_pretrained(summarizer_base), peft.LoraConfig(
        r=4, lora_alpha=8, target_modules=["query", "value"], init_lora_weights=False, modules_to_save=["scorer"]))
    summarizer.save_pretrained(tmp_path / "summarizer-lora")
    loaded = load_summarizer(tmp_path / "summarizer-lora", device="cpu")
    assert type(loaded.model).__name__.startswith("PeftModel")
    from t3vis.attribution.base import prepare_document

    document = prepare_document(loaded, ["The storm hit the coast.", "Thousands lost power.", "Schools closed."])
    with torch.no_grad():
        mine = loaded.model(**document.inputs).logits
        theirs = summarizer.eval()(**document.inputs).logits
    assert torch.allclose(mine, theirs, atol=1e-5) and mine.shape[-1] == 3


def test_an_adapter_named_by_its_hub_repository_loads_from_the_hub_cache(tmp_path, monkeypatch):
    """Offline here: the hub repository is laid out in a hub cache as huggingface_hub keeps downloads; the same
    code downloads it when online."""
    import huggingface_hub.constants as hub

    base = save_tiny_model(tmp_path / "base", "bert", num_labels=3)
    trained = _lora_checkpoint(base, tmp_path / "adapter", seed=5)
    snapshot = tmp_path / "hub" / "models--someone--tiny-lora" / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    for item in (tmp_path / "adapter").iterdir():
        (snapshot / item.name).write_bytes(item.read_bytes())
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("0" * 40)
    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", True)
    bundle = load_model("someone/tiny-lora", device="cpu")
    assert type(bundle.model).__name__.startswith("PeftModel")
    tokenizer = AutoTokenizer.from_pretrained(base)
    inputs = dict(tokenizer(TEXTS[:3], padding=True, return_tensors="pt"))
    with torch.no_grad():
        assert torch.allclose(trained(**inputs).logits, bundle.model(**inputs).logits, atol=1e-5)
    from t3vis.errors import ModelError

    with pytest.raises(ModelError, match="Cannot load a model config from 'someone/not-there'"):
        load_model("someone/not-there", device="cpu")
