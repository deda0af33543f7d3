"""The generation task end to end on the real SmolLM2-135M-Instruct (slow): GSM8K as chat conversations rendered
with SmolLM2's own chat template, LoRA fine-tuning with a plain Trainer and the callback, a checkpoint the app can
load again (its stored loss equals a live recomputation)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from transformers import AutoModelForCausalLM, DataCollatorForSeq2Seq, Trainer, TrainingArguments

from helpers import SHARED_DATA
from t3vis.data.completions import encode_completions, load_completions, training_items
from t3vis.errors import ModelError
from t3vis.model.language_models import completion_token_scores, load_language_model
from t3vis.record.callback import T3visCallback
from t3vis.record.ingest_config import IngestConfig
from t3vis.record.recorded_checkpoint import load_recorded_checkpoint
from t3vis.store.database import Store

GSM8K = SHARED_DATA / "gsm8k_train.jsonl"
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not GSM8K.exists(), reason=f"{GSM8K} is not here (the shared GSM8K data)")]


@pytest.fixture(scope="module")
def smollm2():
    pytest.importorskip("gguf", reason="converting SmolLM2's GGUF needs the gguf package (t3vis[generation])")
    from t3vis.model.gguf_checkpoints import smollm2_checkpoint

    try:
        return smollm2_checkpoint()
    except ModelError as exc:
        pytest.skip(f"SmolLM2 is not at hand: {exc}")


def test_a_lora_fine_tuning_of_smollm2_on_gsm8k_chats_is_recorded_and_reloads(tmp_path, smollm2):
    peft = pytest.importorskip("peft")
    rows = [json.loads(line) for line in GSM8K.read_text().splitlines()[:8]]
    chats = [{"messages": [{"role": "user", "content": row["question"]},
                           {"role": "assistant", "content": row["answer"]}]} for row in rows]
    path = tmp_path / "gsm8k_chat.jsonl"
    path.write_text("".join(json.dumps(chat) + "\n" for chat in chats))
    bundle = load_language_model(smollm2, device="cpu")
    tokenizer = bundle.tokenizer
    data = load_completions(path, tokenizer=tokenizer)
    assert data.format == "chat" and data.prompts[0].endswith("<|im_start|>assistant\n")
    assert data.answers == [row["answer"].split("####")[-1].strip().replace(",", "") for row in rows]
    train = load_completions(path, tokenizer=tokenizer, limit=8)
    evaluation = load_completions(path, tokenizer=tokenizer, limit=4)
    config = IngestConfig(projection="pca", importance_examples=2, attention_examples=2, batch_size=4,
                          max_new_tokens=16, max_length=192, max_completion_tokens=48)
    encoded = encode_completions(tokenizer, train, max_length=192, max_completion_tokens=48)
    model = peft.get_peft_model(AutoModelForCausalLM.from_pretrained(smollm2),
                                peft.LoraConfig(r=4, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))
    store = Store(tmp_path / "gsm8k.duckdb", create=True)
    callback = T3visCallback(store, run_id="smollm2-lora", train_examples=train, eval_examples=evaluation,
                             ingest_config=config, checkpoint_dir=tmp_path / "weights")
    Trainer(model=model, processing_class=tokenizer, data_collator=DataCollatorForSeq2Seq(tokenizer, padding=True),
            train_dataset=training_items(encoded), callbacks=[callback],
            args=TrainingArguments(output_dir=str(tmp_path / "out"), num_train_epochs=1, per_device_train_batch_size=4,
                                   learning_rate=1e-4, report_to=[], save_strategy="no", use_cpu=True,
                                   disable_tqdm=True, logging_strategy="no")).train()
    callback.flush(300)
    assert callback.problems == [], callback.problems

    assert store.scalar("SELECT count(*) FROM token_dynamics") == int(encoded.completion_lengths.sum())
    assert store.scalar("SELECT count(*) FROM data_map") == len(train)
    # a pretrained model already predicts most of a GSM8K solution's tokens, teacher forced
    assert store.scalar("SELECT avg(token_accuracy) FROM training_dynamics") > 0.4
    generations = store.query("SELECT * FROM generations ORDER BY example_id")
    assert len(generations) == len(evaluation) and generations.generation.str.len().gt(0).all()
    assert generations.reference_answer.tolist() == evaluation.answers
    assert generations.perplexity.between(1, 100).all()
    importance = store.query("SELECT * FROM head_importance")
    assert len(importance) == 30 * 9 and importance.importance.gt(0).any()

    reloaded = load_recorded_checkpoint(store, "smollm2-lora", "epoch-1")
    again = encode_completions(reloaded.tokenizer, evaluation, max_length=192, max_completion_tokens=48)
    live = completion_token_scores(reloaded, again.input_ids, again.labels, batch_size=4).loss
    np.testing.assert_allclose(generations.loss, live, rtol=1e-4)
