"""A Trainer run recorded by T3visCallback, for tests/integration/test_distributed.py: run as one process, or under
``torchrun --nproc_per_node=2`` (gloo on the CPU), where every process runs this same file.

    python tests/distributed_training.py MODEL_DIR EVAL_CSV OUT_DIR
    python tests/distributed_training.py tagger TAGGER_DIR OUT_DIR
    python tests/distributed_training.py summarizer SUMMARIZER_DIR OUT_DIR

One launch runs three trainings into stores under OUT_DIR: ``frozen`` (learning rate 0: every epoch's gold
probability is the initial model's; a checkpoint per epoch), ``learning`` (learning rate > 0; a checkpoint every
3 steps) and ``refused`` (the store already holds the run with other labels: the main process refuses it). Then
one gather in which process 1 fails. Each process writes what it saw to OUT_DIR/rank<r>.json.

``tagger``: one training of a token classifier with learning rate 0 into OUT_DIR/tagger.duckdb (a checkpoint per
epoch, each computed by both processes on their shares of the evaluation sentences); each process writes what it
saw to OUT_DIR/tagger-rank<r>.json. ``summarizer``: the same for an extractive summarizer (its documents' sentences).
"""

from __future__ import annotations

import json
import os
import sys
import warnings
from pathlib import Path

import numpy as np
import torch
from transformers import (AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding, Trainer,
                          TrainingArguments)

TOPICS = {0: "match goal team coach league", 1: "shares bank market profit merger", 2: "planet genome theory lab"}
N_TRAIN = 43  # 11 batches of 4 on one process: two processes get a padded batch (repeated examples) at the end


def training_texts(n: int = N_TRAIN, seed: int = 0) -> tuple[list[str], list[int]]:
    """Random topic sentences with their labels; rows 5 and 6 are the same text with the same label."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, size=n)
    words = {label: text.split() for label, text in TOPICS.items()}
    texts = [" ".join(rng.choice(words[label], size=rng.integers(2, 7))) for label in labels]
    texts[5] = texts[6] = "duplicate text here"
    labels[5] = labels[6] = 1
    return texts, labels.tolist()


class TokenDataset(torch.utils.data.Dataset):
    def __init__(self, tokenizer, texts, labels):
        self.items = [dict(tokenizer(text), labels=label) for text, label in zip(texts, labels)]

    def __len__(self):
        return len(self.items)

    def __getitem__(self, index):
        return self.items[index]


def train(model_dir: Path, eval_csv: Path, store: Path, *, run_id: str, learning_rate: float, ingest_every="epoch",
          label_names=("a", "b", "c"), epochs: int = 2):
    """One recorded training; returns the callback."""
    from t3vis.data.loading import load_examples
    from t3vis.record.callback import T3visCallback
    from t3vis.record.ingest import IngestConfig

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir)
    texts, labels = training_texts()
    callback = T3visCallback(store, run_id=run_id, label_names=label_names, eval_examples=load_examples(eval_csv),
                             ingest_every=ingest_every, checkpoint_dir=store.parent / f"{run_id}-checkpoints",
                             ingest_config=IngestConfig(projection="pca", batch_size=4, importance_examples=8,
                                                        attention_examples=12, layers="all"))
    trainer = Trainer(
        model=model,
        args=TrainingArguments(output_dir=str(store.parent / f"{run_id}-out"), num_train_epochs=epochs,
                               per_device_train_batch_size=4, learning_rate=learning_rate, save_strategy="no",
                               report_to=[], logging_strategy="no", use_cpu=True, seed=0,
                               ddp_backend="gloo" if "WORLD_SIZE" in os.environ else None),
        train_dataset=TokenDataset(tokenizer, texts, labels),
        data_collator=DataCollatorWithPadding(tokenizer),
        processing_class=tokenizer,
        callbacks=[callback],
    )
    trainer.train()
    return callback


def train_tagger(model_dir: Path, store: Path, *, run_id: str = "ner"):
    """One recorded training of a token classifier on the synthetic news sentences, learning rate 0; returns the
    callback."""
    from transformers import AutoModelForTokenClassification, DataCollatorForTokenClassification

    from t3vis.fixtures.tagging_store import synthetic_sentences
    from t3vis.record.ingest import IngestConfig
    from t3vis.record.trainer_data import TaggingDataset

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    train, evaluation = synthetic_sentences(16, seed=1), synthetic_sentences(20, seed=2, first_id=1000)
    return _train_frozen(AutoModelForTokenClassification.from_pretrained(model_dir), tokenizer, store, run_id,
                         train=train, evaluation=evaluation, batch_size=4,
                         ingest_config=IngestConfig(projection="pca", batch_size=4, importance_examples=8,
                                                    attention_examples=12, layers="all"),
                         dataset=TaggingDataset(train, tokenizer, max_length=64),
                         collator=DataCollatorForTokenClassification(tokenizer))


def train_summarizer(model_dir: Path, store: Path, *, run_id: str = "bertsum"):
    """One recorded training of an extractive summarizer on synthetic news documents, learning rate 0; returns the
    callback."""
    from t3vis.fixtures.summarization_store import synthetic_documents
    from t3vis.model.summarizer import ExtractiveSummarizer
    from t3vis.record.ingest import IngestConfig
    from t3vis.record.trainer_data import SummarizationCollator, SummarizationDataset

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    train, evaluation = synthetic_documents(8, seed=1), synthetic_documents(10, seed=2, first_id=1000)
    return _train_frozen(ExtractiveSummarizer.from_pretrained(model_dir), tokenizer, store, run_id,
                         train=train, evaluation=evaluation, batch_size=2,
                         ingest_config=IngestConfig(projection="pca", batch_size=2, importance_examples=4,
                                                    attention_examples=6),
                         dataset=SummarizationDataset(train, tokenizer, max_length=64),
                         collator=SummarizationCollator(tokenizer))


def _train_frozen(model, tokenizer, store: Path, run_id: str, *, train, evaluation, ingest_config, dataset, collator,
                  batch_size: int):
    """Two epochs of ``model`` on ``train`` at learning rate 0, recorded by a T3visCallback into ``store`` (gloo
    when launched by torchrun); returns the callback."""
    from t3vis.record.callback import T3visCallback

    callback = T3visCallback(store, run_id=run_id, eval_examples=evaluation, train_examples=train,
                             checkpoint_dir=store.parent / f"{run_id}-checkpoints", ingest_config=ingest_config)
    Trainer(
        model=model,
        args=TrainingArguments(output_dir=str(store.parent / f"{run_id}-out"), num_train_epochs=2,
                               per_device_train_batch_size=batch_size, learning_rate=0.0, save_strategy="no",
                               report_to=[], logging_strategy="no", use_cpu=True, seed=0,
                               ddp_backend="gloo" if "WORLD_SIZE" in os.environ else None),
        train_dataset=dataset, data_collator=collator, processing_class=tokenizer, callbacks=[callback],
    ).train()
    return callback


TASK_TRAININGS = {"tagger": train_tagger, "summarizer": train_summarizer}


def task_main(task: str, model_dir: Path, out: Path) -> None:
    """One recorded training of ``task`` (a key of TASK_TRAININGS) into OUT/<task>.duckdb; what this process saw
    goes to OUT/<task>-rank<r>.json."""
    import torch.distributed as dist

    from t3vis.record.distributed import current_shard

    warnings.simplefilter("ignore")
    callback = TASK_TRAININGS[task](model_dir, out / f"{task}.duckdb")
    if callback._store is not None:
        callback.flush(60)
    shard = current_shard()
    seen = {"shard": [shard.rank, shard.world_size], "problems": callback.problems,
            "opened_store": callback._store is not None, "summaries": len(callback.summaries)}
    (out / f"{task}-rank{shard.rank}.json").write_text(json.dumps(seen))
    if dist.is_initialized():
        dist.destroy_process_group()


def main(model_dir: Path, eval_csv: Path, out: Path) -> None:
    import torch.distributed as dist

    from t3vis.record.distributed import current_shard, gather_results

    warnings.simplefilter("ignore")
    seen = {}
    for name, options in {"frozen": dict(learning_rate=0.0), "learning": dict(learning_rate=5e-3, ingest_every=3),
                          "refused": dict(learning_rate=0.0, label_names=("x", "y", "z"), epochs=1)}.items():
        store = out / ("frozen.duckdb" if name == "refused" else f"{name}.duckdb")  # refused: frozen's run, new labels
        callback = train(model_dir, eval_csv, store, run_id="frozen" if name == "refused" else name, **options)
        seen[name] = {"problems": callback.problems, "recording": callback._recording,
                      "opened_store": callback._store is not None}
    shard = current_shard()
    seen["shard"] = [shard.rank, shard.world_size]

    def fail_on_process_1():
        if shard.rank == 1:
            raise RuntimeError("out of memory on purpose")
        return shard.rank

    try:
        seen["gathered"] = gather_results(fail_on_process_1, shard, what="the test gather")
    except Exception as exc:
        seen["gather_error"] = str(exc)
    (out / f"rank{shard.rank}.json").write_text(json.dumps(seen))
    if dist.is_initialized():
        dist.destroy_process_group()


if __name__ == "__main__":
    if sys.argv[1] in TASK_TRAININGS:
        task_main(sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]))
    else:
        main(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]))
