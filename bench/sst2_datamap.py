"""Real data: a Data Map of the packaged MiniLM fine-tuned on SST-2 training sentences.

    python bench/sst2_datamap.py [--train-size 3000] [--epochs 3]

Fine-tunes all-MiniLM-L6-v2 on the first N sentences of ../shared/data/sst2_train.tsv with
``T3visCallback`` (training dynamics; the SST-2 validation split ingested at the last epoch),
then prints the Data Map: how many examples fall in each region, with their mean confidence,
variability and correctness, and a few examples of each region.

Last line: ``BENCH sst2_datamap easy=... ambiguous=... hard=... other=... train_s=... dev_accuracy=...``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch
from transformers import DataCollatorWithPadding, Trainer, TrainingArguments

from t3vis.record.callback import T3visCallback
from t3vis.data.loading import load_examples
from t3vis.demo.build import TokenisedExamples
from t3vis.record.ingest import IngestConfig
from t3vis.model.access import load_model
from t3vis.store.database import Store
from t3vis.model.pretrained import minilm_path

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-size", type=int, default=3000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--store", type=Path, help="keep the store here (default: a temporary file)")
    args = parser.parse_args()
    if not (DATA / "sst2_train.tsv").is_file():
        sys.exit(f"{DATA} lacks sst2_train.tsv: this benchmark needs the shared SST-2 data.")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    train = load_examples(DATA / "sst2_train.tsv", limit=args.train_size, label_names=["negative", "positive"])
    dev = load_examples(DATA / "sst2_dev.tsv", label_names=["negative", "positive"])
    with tempfile.TemporaryDirectory() as scratch:
        store = Store(args.store or Path(scratch) / "sst2.duckdb", create=True)
        torch.manual_seed(0)
        bundle = load_model(minilm_path(), label_names=("negative", "positive"), device="cpu")
        callback = T3visCallback(store, run_id="minilm-sst2", eval_examples=dev, train_examples=train,
                                 ingest_every=10**9,  # only at the end (below): dynamics are what this measures
                                 ingest_config=IngestConfig(projection="pca", max_length=128))
        trainer = Trainer(
            model=bundle.model.train(),
            args=TrainingArguments(output_dir=str(Path(scratch) / "out"), num_train_epochs=args.epochs,
                                   per_device_train_batch_size=32, learning_rate=3e-5, save_strategy="no",
                                   logging_strategy="epoch", report_to=[], use_cpu=True, seed=0),
            train_dataset=TokenisedExamples(bundle.tokenizer, train, 128),
            data_collator=DataCollatorWithPadding(bundle.tokenizer),
            processing_class=bundle.tokenizer,
            callbacks=[callback],
        )
        started = time.perf_counter()
        trainer.train()
        train_seconds = time.perf_counter() - started
        callback._ingest(trainer.model, trainer.state, name="final")
        regions = store.query("""
            SELECT region, count(*) AS n, round(avg(confidence), 3) AS confidence,
                   round(avg(variability), 3) AS variability, round(avg(correctness), 3) AS correctness,
                   round(avg(forgetting_events), 2) AS forgetting
            FROM data_map GROUP BY region ORDER BY region""")
        print(regions.to_string(index=False))
        examples = store.query("""
            SELECT region, e.label_name, round(confidence, 2) AS conf, round(variability, 2) AS var, e.text
            FROM data_map d JOIN examples e USING (run_id, split, example_id)
            QUALIFY row_number() OVER (PARTITION BY region ORDER BY confidence) <= 3""")
        print(examples.to_string(index=False, max_colwidth=70))
        dev_accuracy = store.scalar("SELECT avg(correct::INT) FROM predictions WHERE checkpoint = 'final'")
        counts = dict(zip(regions.region, regions.n))
    print(f"BENCH sst2_datamap easy={counts.get('easy-to-learn', 0)} ambiguous={counts.get('ambiguous', 0)} "
          f"hard={counts.get('hard-to-learn', 0)} other={counts.get('other', 0)} train_s={train_seconds:.0f} "
          f"dev_accuracy={dev_accuracy:.3f}")


if __name__ == "__main__":
    main()
