"""Fine-tune MiniLM as a named-entity tagger on CoNLL-2003, recorded by t3vis; then explore it.

    python examples/conll_ner.py --train ../shared/data/conll2003_train.txt \\
        --validation ../shared/data/conll2003_valid.txt --train-sentences 4000 --epochs 3 --store store/ner.duckdb
    streamlit run streamlit_app.py      # then choose store/ner.duckdb in the sidebar

Any CoNLL column file (``-DOCSTART-`` lines, blank lines between sentences, the tags in the last column) or
JSONL/Parquet/``datasets`` folder with word and tag lists works (see ``t3vis.data.tagging.load_tagged``).
After each epoch the callback ingests a checkpoint over the validation sentences (per-word predictions,
entity-level precision, recall and F1 per type, layouts of sentences and of a sample of words, head
importance for the tagging loss, head functions), and it records every training word's probability of its
gold tag at every epoch (the word-level Data Map). Copy this script and change what you need: it is plain
``transformers.Trainer`` code with one callback.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import torch
from transformers import AutoModelForTokenClassification, AutoTokenizer, DataCollatorForTokenClassification, \
    Trainer, TrainingArguments

from t3vis.data.tagging import TaggedSentences, load_tagged
from t3vis.model.pretrained import minilm_path
from t3vis.record.callback import T3visCallback
from t3vis.record.ingest_config import IngestConfig
from t3vis.record.trainer_data import TaggingDataset
from t3vis.store.database import Store


def first_sentences(sentences: TaggedSentences, n: int | None) -> TaggedSentences:
    """The first ``n`` sentences (all when n is None)."""
    if n is None or n >= len(sentences):
        return sentences
    return replace(sentences, example_ids=sentences.example_ids[:n], words=sentences.words[:n],
                   tags=sentences.tags[:n], extra=sentences.extra.iloc[:n].reset_index(drop=True))


def train_tagger(store: Store, train: TaggedSentences, validation: TaggedSentences, *, run_id: str, epochs: int,
                 output_dir: Path, encoder: str | Path | None = None, batch_size: int = 32,
                 learning_rate: float = 1e-4, max_length: int = 128,
                 ingest_config: IngestConfig | None = None) -> T3visCallback:
    """Fine-tune a token classifier on ``encoder`` (default: the packaged MiniLM) with the t3vis callback."""
    encoder = str(encoder or minilm_path())
    tokenizer = AutoTokenizer.from_pretrained(encoder)
    names = list(train.tag_names)
    torch.manual_seed(0)
    model = AutoModelForTokenClassification.from_pretrained(
        encoder, num_labels=len(names), id2label=dict(enumerate(names)),
        label2id={name: index for index, name in enumerate(names)})
    callback = T3visCallback(
        store, run_id=run_id, eval_examples=validation, train_examples=train, dataset=Path(train.source).name,
        checkpoint_dir=output_dir / f"{run_id}-checkpoints",  # weights kept, so the app's live views can load them
        ingest_config=ingest_config or IngestConfig(projection="tsne", importance_examples=256,
                                                    attention_examples=512, batch_size=64, unit_points=5000),
    )
    steps = (len(train) + batch_size - 1) // batch_size * epochs
    args = TrainingArguments(
        output_dir=str(output_dir / f"{run_id}-trainer"), num_train_epochs=epochs,
        per_device_train_batch_size=batch_size, learning_rate=learning_rate, warmup_steps=max(1, steps // 10),
        weight_decay=0.01, report_to=[], save_strategy="no", logging_steps=50, seed=0,
    )
    trainer = Trainer(model=model, args=args, train_dataset=TaggingDataset(train, tokenizer, max_length=max_length),
                      data_collator=DataCollatorForTokenClassification(tokenizer), processing_class=tokenizer,
                      callbacks=[callback])
    trainer.train()
    callback.flush(600)  # the checkpoints' writes are queued while training runs
    return callback


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", type=Path, required=True, help="CoNLL file (or table) of training sentences")
    parser.add_argument("--validation", type=Path, required=True, help="the sentences each checkpoint is ingested over")
    parser.add_argument("--train-sentences", type=int, help="use only the first N training sentences")
    parser.add_argument("--validation-sentences", type=int, help="use only the first N validation sentences")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--encoder", help="encoder folder or hub name (default: the packaged all-MiniLM-L6-v2)")
    parser.add_argument("--run", default="conll-ner")
    parser.add_argument("--store", type=Path, default=Path("store/ner.duckdb"))
    args = parser.parse_args()

    train = first_sentences(load_tagged(args.train), args.train_sentences)
    validation = first_sentences(load_tagged(args.validation, tag_names=train.tag_names), args.validation_sentences)
    print(f"{len(train)} training sentences ({sum(map(len, train.words))} words), {len(validation)} validation "
          f"sentences; tags {list(train.tag_names)}")
    store = Store(args.store, create=True)
    callback = train_tagger(store, train, validation, run_id=args.run, epochs=args.epochs,
                            output_dir=args.store.parent, encoder=args.encoder)
    for summary in callback.summaries:
        scores = ", ".join(f"{name} {value:.3f}" for name, value in summary.scores.items())
        print(f"{summary.checkpoint}: {scores}, word accuracy {summary.accuracy:.3f}")
    print(f"Explore it: streamlit run streamlit_app.py, then open {args.store} in the sidebar.")


if __name__ == "__main__":
    main()
