"""Fine-tune MiniLM as a BertSum-style extractive summarizer on CNN/DailyMail, recorded by t3vis; then explore it.

    python examples/bertsum_cnndm.py --data ../shared/data/cnn_dailymail_validation_sample1000.csv \\
        --eval-docs 100 --epochs 2 --store store/bertsum.duckdb
    streamlit run streamlit_app.py      # then choose store/bertsum.duckdb in the sidebar

Any CSV/JSONL/Parquet with an article and a summary column works (``article``/``highlights`` are detected; see
``t3vis.data.documents.load_documents``). The last ``--eval-docs`` documents are held out: after each epoch
the callback ingests a checkpoint over them (3-sentence summaries, ROUGE beside Lead-3 and the oracle, head
importance for the summarization loss, head functions), and it records every training sentence's probability
of its oracle label at every epoch (the sentence-level Data Map). Copy this script and change what you need:
it is plain ``transformers.Trainer`` code with one callback.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from transformers import AutoTokenizer, Trainer, TrainingArguments

from t3vis.data.documents import DocumentSet, load_documents
from t3vis.model.pretrained import minilm_path
from t3vis.model.summarizer import ExtractiveSummarizer
from t3vis.record.callback import T3visCallback
from t3vis.record.ingest_config import IngestConfig
from t3vis.record.trainer_data import SummarizationCollator, SummarizationDataset
from t3vis.store.database import Store


def split_documents(documents: DocumentSet, held_out: int) -> tuple[DocumentSet, DocumentSet]:
    """(training documents, the last ``held_out`` documents)."""
    def part(rows: np.ndarray) -> DocumentSet:
        return DocumentSet(
            example_ids=documents.example_ids[rows], sentences=[documents.sentences[i] for i in rows],
            references=[documents.references[i] for i in rows], oracle=[documents.oracle[i] for i in rows],
            extra=documents.extra.iloc[rows].reset_index(drop=True), article_column=documents.article_column,
            summary_column=documents.summary_column, source=documents.source,
        )

    index = np.arange(len(documents))
    return part(index[:-held_out]), part(index[-held_out:])


def join_documents(first: DocumentSet, second: DocumentSet, *, id_offset: int) -> DocumentSet:
    """Two document sets as one; the second's ids are shifted by ``id_offset`` to stay unique."""
    return DocumentSet(
        example_ids=np.concatenate([first.example_ids, second.example_ids + id_offset]),
        sentences=first.sentences + second.sentences, references=first.references + second.references,
        oracle=first.oracle + second.oracle, extra=pd.concat([first.extra, second.extra], ignore_index=True),
        article_column=first.article_column, summary_column=first.summary_column,
        source=f"{first.source} + {second.source}",
    )


def train_summarizer(store: Store, train: DocumentSet, held_out: DocumentSet, *, run_id: str, epochs: int,
                     output_dir: Path, encoder: str | Path | None = None, batch_size: int = 8,
                     learning_rate: float = 5e-5, max_length: int = 512) -> T3visCallback:
    """Fine-tune a summarizer around ``encoder`` (default: the packaged MiniLM) with the t3vis callback."""
    encoder = str(encoder or minilm_path())
    tokenizer = AutoTokenizer.from_pretrained(encoder)
    torch.manual_seed(0)
    model = ExtractiveSummarizer.from_encoder(encoder)
    callback = T3visCallback(
        store, run_id=run_id, eval_examples=held_out, train_examples=train, dataset=Path(train.source).name,
        checkpoint_dir=output_dir / f"{run_id}-checkpoints",  # weights kept, so the app's live views can load them
        ingest_config=IngestConfig(projection="tsne", importance_examples=48, attention_examples=100, batch_size=8),
    )
    steps = (len(train) + batch_size - 1) // batch_size * epochs
    args = TrainingArguments(
        output_dir=str(output_dir / f"{run_id}-trainer"), num_train_epochs=epochs,
        per_device_train_batch_size=batch_size, learning_rate=learning_rate, warmup_steps=max(1, steps // 10),
        weight_decay=0.01, report_to=[], save_strategy="no", logging_steps=20, seed=0,
    )
    trainer = Trainer(model=model, args=args,
                      train_dataset=SummarizationDataset(train, tokenizer, max_length=max_length),
                      data_collator=SummarizationCollator(tokenizer), processing_class=tokenizer,
                      callbacks=[callback])
    trainer.train()
    callback.flush(600)  # the checkpoints' writes are queued while training runs
    return callback


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="CSV/JSONL/Parquet with articles and summaries")
    parser.add_argument("--extra-train", type=Path, help="another file of training documents (e.g. the train sample)")
    parser.add_argument("--eval-docs", type=int, default=100, help="the last N documents are held out")
    parser.add_argument("--limit", type=int, help="use only the first N documents of --data")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--encoder", help="encoder folder or hub name (default: the packaged all-MiniLM-L6-v2)")
    parser.add_argument("--run", default="bertsum")
    parser.add_argument("--store", type=Path, default=Path("store/bertsum.duckdb"))
    args = parser.parse_args()

    documents = load_documents(args.data, limit=args.limit)
    train, held_out = split_documents(documents, args.eval_docs)
    if args.extra_train:
        train = join_documents(train, load_documents(args.extra_train), id_offset=int(documents.example_ids.max()) + 1)
    print(f"{len(train)} training documents, {len(held_out)} held out")
    store = Store(args.store, create=True)
    callback = train_summarizer(store, train, held_out, run_id=args.run, epochs=args.epochs,
                                output_dir=args.store.parent, encoder=args.encoder)
    for summary in callback.summaries:
        scores = ", ".join(f"{name} {value:.3f}" for name, value in summary.scores.items())
        print(f"{summary.checkpoint}: {scores}")
    print(f"Explore it: streamlit run streamlit_app.py, then open {args.store} in the sidebar.")


if __name__ == "__main__":
    main()
