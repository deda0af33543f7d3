"""Benchmark: the cost of recording training dynamics, the demo's build time, and what it finds.

    python bench/dynamics.py [--train-size 2000] [--epochs 2] [--pairs 3]

1. The same short fine-tuning of the packaged MiniLM on the demo corpus, in one process, with
   and without ``T3visCallback`` recording training dynamics (checkpoint ingestion off): ``--pairs``
   pairs of runs, the order alternating from pair to pair (plain first, then recorded first, ...), so
   that a drift of the machine's speed counts against both. Each pair gives an overhead; the headline
   is their median, printed with the lowest and highest (the spread says how far to trust it).
2. ``build_demo`` with its defaults (fine-tuning, dynamics, an ingested checkpoint per epoch).
3. On the demo store: training examples ranked by Data Map confidence, lowest first; the AUROC
   of that ranking for the deliberately flipped labels.

Last line: ``BENCH dynamics overhead_pct=... demo_build_s=... flipped_auroc=...``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from transformers import DataCollatorWithPadding, Trainer, TrainingArguments

from t3vis.analysis.validation import auroc
from t3vis.record.callback import T3visCallback
from t3vis.demo.build import DEMO_RUN, DemoConfig, TokenisedExamples, build_demo
from t3vis.demo.corpus import DemoCorpusConfig, demo_corpus
from t3vis.model.access import load_model
from t3vis.store.database import Store
from t3vis.model.pretrained import minilm_path


def train_once(train, *, record: bool, epochs: int, folder: Path) -> float:
    """Seconds of ``trainer.train()`` for a fresh MiniLM, with or without the dynamics callback."""
    torch.manual_seed(0)
    bundle = load_model(minilm_path(), label_names=tuple(train.label_names), device="cpu")
    callbacks = [T3visCallback(Store(folder / f"dyn-{time.time_ns()}.duckdb", create=True), run_id="bench")] if record else []
    trainer = Trainer(
        model=bundle.model.train(),
        args=TrainingArguments(output_dir=str(folder / "out"), num_train_epochs=epochs, per_device_train_batch_size=16,
                               learning_rate=5e-5, save_strategy="no", logging_strategy="no", report_to=[],
                               use_cpu=True, seed=0, disable_tqdm=True),
        train_dataset=TokenisedExamples(bundle.tokenizer, train, 64),
        data_collator=DataCollatorWithPadding(bundle.tokenizer),
        processing_class=bundle.tokenizer,
        callbacks=callbacks,
    )
    started = time.perf_counter()
    trainer.train()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-size", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--pairs", type=int, default=3, help="pairs of runs with and without recording")
    parser.add_argument("--no-demo", action="store_true", help="measure the recording's cost only (no demo build)")
    args = parser.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    train, _ = demo_corpus(DemoCorpusConfig(train_size=args.train_size))
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        overheads = []
        for pair in range(args.pairs):
            order = ("plain", "recorded") if pair % 2 == 0 else ("recorded", "plain")
            seconds = {}
            for which in order:
                seconds[which] = train_once(train, record=which == "recorded", epochs=args.epochs, folder=folder)
            overheads.append(100 * (seconds["recorded"] - seconds["plain"]) / seconds["plain"])
            print(f"  pair {pair + 1}: {seconds['plain']:.1f} s plain, {seconds['recorded']:.1f} s recorded "
                  f"({overheads[-1]:+.1f}%)", flush=True)
        overhead = float(np.median(overheads))
        print(f"fine-tuning {args.train_size} examples x {args.epochs} epochs, {args.pairs} pairs: dynamics "
              f"recording costs {overhead:+.1f}% (median; lowest {min(overheads):+.1f}%, highest "
              f"{max(overheads):+.1f}%)", flush=True)

        if args.no_demo:
            print(f"BENCH dynamics overhead_pct={overhead:.1f} "
                  f"overhead_spread_pct={max(overheads) - min(overheads):.1f}")
            return
        result = build_demo(folder / "demo.duckdb", config=DemoConfig())
        print(f"demo built in {result.seconds:.0f} s, final validation accuracy {result.final_accuracy:.3f}", flush=True)
        store = Store(result.path, create=False)
        data_map = store.query(
            """SELECT d.confidence, d.region, (e.extra->>'flipped')::BOOLEAN AS flipped
               FROM data_map d JOIN examples e USING (run_id, split, example_id) WHERE run_id = ?""", [DEMO_RUN])
        score = auroc(-data_map.confidence.to_numpy(), data_map.flipped.to_numpy())
        print(data_map.groupby(["region", "flipped"]).size().to_string(), flush=True)
    print(f"BENCH dynamics overhead_pct={overhead:.1f} overhead_spread_pct={max(overheads) - min(overheads):.1f} "
          f"demo_build_s={result.seconds:.0f} flipped_auroc={score:.3f}")


if __name__ == "__main__":
    main()
