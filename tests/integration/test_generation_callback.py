"""T3visCallback on causal language models fine-tuned on prompt → completion pairs: the training dynamics from the
training passes equal an eval-mode forward pass (learning rate 0, no dropout), per example and per completion token;
chat data; LoRA (peft) and TRL's SFTTrainer."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, DataCollatorForSeq2Seq, Trainer, TrainingArguments

from t3vis.data.completions import encode_completions, load_completions, training_items
from t3vis.fixtures.generation_store import arithmetic_pairs, write_pairs
from t3vis.fixtures.tiny_models import save_tiny_language_model
from t3vis.model.language_models import completion_token_scores, load_language_model
from t3vis.record.callback import T3visCallback
from t3vis.record.ingest_config import IngestConfig
from t3vis.record.recorded_checkpoint import load_recorded_checkpoint
from t3vis.store.database import Store

CONFIG = IngestConfig(projection="pca", importance_examples=4, attention_examples=4, batch_size=4, max_new_tokens=4,
                      max_length=48)
# A chat template whose rendering of a conversation extends its rendering of the conversation's start.
CHAT_TEMPLATE = ("{% for m in messages %}{{ m['role'] }}: {{ m['content'] }} [SEP] {% endfor %}"
                 "{% if add_generation_prompt %}assistant: {% endif %}")


def _train(folder, model, tokenizer, items, callback, *, epochs=2, learning_rate=0.0, output):
    Trainer(model=model, processing_class=tokenizer, data_collator=DataCollatorForSeq2Seq(tokenizer, padding=True),
            train_dataset=items, callbacks=[callback],
            args=TrainingArguments(output_dir=str(output), num_train_epochs=epochs, per_device_train_batch_size=4,
                                   learning_rate=learning_rate, report_to=[], save_strategy="no", use_cpu=True,
                                   disable_tqdm=True, logging_strategy="no", seed=0)).train()
    callback.flush(120)
    assert callback.problems == [], callback.problems


@pytest.mark.parametrize("model_type", ["llama", "gpt2"])
def test_the_dynamics_equal_an_eval_forward_pass_per_example_and_per_token(tmp_path, model_type):
    folder = save_tiny_language_model(tmp_path / "lm", model_type, **({"resid_pdrop": 0.0, "embd_pdrop": 0.0,
                                                                        "attn_pdrop": 0.0} if model_type == "gpt2"
                                                                       else {}))
    tokenizer = AutoTokenizer.from_pretrained(folder)
    data = load_completions(write_pairs(tmp_path / "train.jsonl", arithmetic_pairs(10, seed=3)))
    encoded = encode_completions(tokenizer, data, max_length=48)
    store = Store(tmp_path / "s.duckdb", create=True)
    callback = T3visCallback(store, run_id="lm", train_examples=data, ingest_config=CONFIG)
    _train(folder, AutoModelForCausalLM.from_pretrained(folder), tokenizer, training_items(encoded), callback,
           output=tmp_path / "out")

    expected = completion_token_scores(load_language_model(folder, device="cpu"), encoded.input_ids, encoded.labels)
    tokens = store.query("SELECT * FROM token_dynamics ORDER BY epoch, example_id, token")
    assert len(tokens) == 2 * len(expected.token_id)  # every completion token of every example, both epochs
    for epoch in (0, 1):
        rows = tokens[tokens.epoch == epoch]
        np.testing.assert_allclose(rows.gold_prob, np.exp(expected.log_probability), rtol=1e-5, atol=1e-7)
        np.testing.assert_array_equal(rows.token_id, expected.token_id)
        np.testing.assert_array_equal(rows["rank"], expected.rank)
        np.testing.assert_array_equal(rows.pred, expected.predicted_id)
    examples = store.query("SELECT * FROM training_dynamics WHERE epoch = 1 ORDER BY example_id")
    np.testing.assert_allclose(examples.gold_prob, np.exp(-expected.loss), rtol=1e-5)
    np.testing.assert_allclose(examples.loss, expected.loss, rtol=1e-5)
    np.testing.assert_allclose(examples.token_accuracy, expected.token_accuracy, rtol=1e-6)
    data_map = store.query("SELECT * FROM data_map ORDER BY example_id")
    assert len(data_map) == len(data) and (data_map.unit == 0).all()
    np.testing.assert_allclose(data_map.confidence, np.exp(-expected.loss), rtol=1e-5)  # the same both epochs
    np.testing.assert_allclose(data_map.variability, 0, atol=1e-6)
    units = store.query("SELECT * FROM units WHERE split = 'train' ORDER BY example_id, unit")
    np.testing.assert_array_equal(units.label, expected.token_id)  # the training completion tokens, as trained
    assert store.query("SELECT text FROM examples WHERE split = 'train' ORDER BY example_id").text.tolist() == \
        data.prompts


def test_chat_data_is_rendered_with_the_template_and_recorded(tmp_path):
    tokenizer = AutoTokenizer.from_pretrained(save_tiny_language_model(tmp_path / "plain", "llama"))
    tokenizer.chat_template = CHAT_TEMPLATE
    folder = save_tiny_language_model(tmp_path / "lm", "llama", tokenizer=tokenizer)
    import json

    rows = [{"messages": [{"role": "user", "content": pair["question"]},
                          {"role": "assistant", "content": pair["answer"]}]} for pair in arithmetic_pairs(8)]
    path = tmp_path / "chat.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    data = load_completions(path, tokenizer=tokenizer)
    assert data.format == "chat" and data.prompts[0].endswith("assistant: ")
    encoded = encode_completions(tokenizer, data, max_length=48)
    store = Store(tmp_path / "s.duckdb", create=True)
    callback = T3visCallback(store, run_id="chat", train_examples=data, eval_examples=data, ingest_config=CONFIG)
    _train(folder, AutoModelForCausalLM.from_pretrained(folder), tokenizer, training_items(encoded), callback,
           epochs=1, learning_rate=1e-3, output=tmp_path / "out")
    assert store.scalar("SELECT count(*) FROM token_dynamics") == int(encoded.completion_lengths.sum())
    references = store.query("SELECT reference FROM examples WHERE split = 'validation' ORDER BY example_id")
    assert references.reference.tolist() == data.completions and data.completions[0].endswith("[SEP] ")


def test_a_lora_run_records_dynamics_and_checkpoints_the_app_can_load(tmp_path):
    peft = pytest.importorskip("peft")
    folder = save_tiny_language_model(tmp_path / "base", "llama")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = peft.get_peft_model(AutoModelForCausalLM.from_pretrained(folder),
                                peft.LoraConfig(r=4, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))
    data = load_completions(write_pairs(tmp_path / "train.jsonl", arithmetic_pairs(8, seed=5)))
    store = Store(tmp_path / "s.duckdb", create=True)
    callback = T3visCallback(store, run_id="lora", train_examples=data, eval_examples=data, ingest_config=CONFIG,
                             checkpoint_dir=tmp_path / "weights")
    _train(folder, model, tokenizer, training_items(encode_completions(tokenizer, data, max_length=48)), callback,
           learning_rate=5e-3, output=tmp_path / "out")
    assert store.run("lora").task == "generation"
    assert store.scalar("SELECT count(DISTINCT epoch) FROM token_dynamics") == 2
    assert (tmp_path / "weights" / "epoch-2" / "adapter_config.json").exists()
    bundle = load_recorded_checkpoint(store, "lora", "epoch-2")
    stored = store.query("SELECT loss FROM generations WHERE checkpoint = 'epoch-2' ORDER BY example_id").loss
    encoded = encode_completions(bundle.tokenizer, data, max_length=48)
    live = completion_token_scores(bundle, encoded.input_ids, encoded.labels).loss
    np.testing.assert_allclose(stored, live, rtol=1e-4)  # the saved adapter is the model that was recorded


def test_an_sft_trainer_run_is_recorded_from_its_own_tokenization(tmp_path):
    trl = pytest.importorskip("trl", reason="TRL is the optional extra t3vis[trl]")
    datasets = pytest.importorskip("datasets")
    folder = save_tiny_language_model(tmp_path / "lm", "llama")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    tokenizer.eos_token = "[SEP]"  # TRL appends the EOS to each completion
    pairs = arithmetic_pairs(8, seed=6)
    train = datasets.Dataset.from_list([{"prompt": p["question"] + "\n", "completion": p["answer"]} for p in pairs])
    data = load_completions(write_pairs(tmp_path / "train.jsonl", [{"prompt": p["question"] + "\n",
                                                                    "completion": p["answer"]} for p in pairs]))
    store = Store(tmp_path / "s.duckdb", create=True)
    callback = T3visCallback(store, run_id="sft", train_examples=data, eval_examples=data, ingest_config=CONFIG)
    torch.manual_seed(0)
    trainer = trl.SFTTrainer(
        model=AutoModelForCausalLM.from_pretrained(folder), processing_class=tokenizer, train_dataset=train,
        callbacks=[callback],
        args=trl.SFTConfig(output_dir=str(tmp_path / "out"), num_train_epochs=2, per_device_train_batch_size=4,
                           learning_rate=0.0, report_to=[], save_strategy="no", use_cpu=True, disable_tqdm=True,
                           logging_strategy="no", completion_only_loss=True, max_length=48,
                           bf16=False))  # TRL's default is bf16 autocast: the training pass would differ from float32
    trainer.train()
    callback.flush(120)
    assert callback.problems == [], callback.problems
    # TRL's own tokenization (its prepared dataset: input_ids and labels, -100 off the completion, an EOS at its end);
    # the recorded tokens are its completions.
    processed = trainer.train_dataset
    labels = [list(row["labels"]) for row in processed]
    assert all(row[-1] == tokenizer.eos_token_id for row in labels)
    units = store.query("SELECT example_id, label FROM units WHERE split = 'train' ORDER BY example_id, unit")
    assert units.label.tolist() == [token for row in labels for token in row if token != -100]
    bundle = load_language_model(folder, device="cpu")
    expected = completion_token_scores(bundle, [row["input_ids"] for row in processed], labels)
    tokens = store.query("SELECT gold_prob FROM token_dynamics WHERE epoch = 1 ORDER BY example_id, token")
    np.testing.assert_allclose(tokens.gold_prob, np.exp(expected.log_probability), rtol=1e-5, atol=1e-7)
    fused = store.query("SELECT * FROM token_dynamics WHERE epoch = 1 ORDER BY example_id, token")
    assert fused["rank"].isna().all() and fused.pred.isna().all()  # TRL's fused LM head gives no logits
    np.testing.assert_array_equal(fused.correct, expected.rank == 1)  # its is_top1
    assert store.scalar("SELECT count(*) FROM data_map WHERE split = 'train'") == len(pairs)


def test_a_tiny_evaluation_set_is_laid_out_by_pca_instead_of_losing_its_checkpoints(tmp_path):
    from t3vis.store.background_writer import RecordingWarning

    folder = save_tiny_language_model(tmp_path / "lm", "llama")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    data = load_completions(write_pairs(tmp_path / "train.jsonl", arithmetic_pairs(8, seed=7)))
    store = Store(tmp_path / "s.duckdb", create=True)
    with pytest.warns(RecordingWarning, match="laid out by PCA"):
        callback = T3visCallback(store, run_id="small", eval_examples=data,
                                 ingest_config=IngestConfig(projection="tsne", importance_examples=4, batch_size=4,
                                                            max_new_tokens=2, max_length=48))
    _train(folder, AutoModelForCausalLM.from_pretrained(folder), tokenizer,
           training_items(encode_completions(tokenizer, data, max_length=48)), callback, epochs=1, output=tmp_path)
    assert store.scalar("SELECT count(*) FROM generations") == 8
    assert set(store.query("SELECT DISTINCT method FROM projections").method) == {"pca"}
