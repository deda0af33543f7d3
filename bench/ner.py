"""Token classification, measured: MiniLM fine-tuned on CoNLL-2003 with 5% of entity words mislabelled.

    python bench/ner.py [--train-sentences 4000] [--epochs 3] [--noise 0.05] [--store PATH]

1. Data: the first ``--train-sentences`` sentences of ``../shared/data/conll2003_train.txt``; ``--noise`` (5%) of
   their entity words (gold tag other than O), drawn with the seed, get another entity type (B-/I- kept:
   B-PER becomes B-LOC, B-ORG or B-MISC). Validation: all of ``conll2003_valid.txt`` (3,250 sentences).
2. Training: ``examples/conll_ner.py``'s ``train_tagger``: the packaged all-MiniLM-L6-v2 with a token
   classification head, ``transformers.Trainer`` with ``T3visCallback``: per-word dynamics from the training
   passes, a checkpoint ingested over the validation sentences after each epoch.
3. Entity F1 (strict IOB2, seqeval) of the last checkpoint on the validation sentences.
4. Label-error finding: over the training words, the AUROC of the word-level Data Map's confidence (low =
   suspect) for the corrupted words, beside the AUROC of the last epoch's training loss alone; the same over
   the entity words only (the words that could be corrupted).

Last line: ``BENCH ner f1=... auroc_noise=... auroc_last_loss=... train_sentences=...``.
Goals: F1 >= 0.80 and AUROC >= 0.9.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

PROJECT = Path(__file__).resolve().parents[1]
SHARED = PROJECT.parent / "shared" / "data"
sys.path.insert(0, str(PROJECT / "examples"))

from conll_ner import first_sentences, train_tagger  # noqa: E402
from t3vis.analysis.validation import auroc  # noqa: E402
from t3vis.data.tagging import TaggedSentences, entity_types, load_tagged  # noqa: E402
from t3vis.record.ingest_config import IngestConfig  # noqa: E402
from t3vis.store.database import Store  # noqa: E402

RUN = "minilm-conll-noisy"


def corrupt(sentences: TaggedSentences, share: float, seed: int) -> tuple[TaggedSentences, set[tuple[int, int]]]:
    """Give ``share`` of the entity words another entity type; returns the noisy sentences and the
    (sentence row, word) of each corrupted word."""
    names = list(sentences.tag_names)
    kinds = entity_types(names)
    rng = np.random.default_rng(seed)
    entity_words = [(row, word) for row, tags in enumerate(sentences.tags) for word, tag in enumerate(tags)
                    if names[tag] != "O"]
    chosen = rng.choice(len(entity_words), size=int(round(share * len(entity_words))), replace=False)
    tags = [np.array(row, copy=True) for row in sentences.tags]
    corrupted = set()
    for index in chosen:
        row, word = entity_words[index]
        prefix, kind = names[tags[row][word]].split("-", 1)
        other = str(rng.choice([k for k in kinds if k != kind]))
        tags[row][word] = names.index(f"{prefix}-{other}")
        corrupted.add((row, word))
    return replace(sentences, tags=tags), corrupted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-sentences", type=int, default=4000)
    parser.add_argument("--validation-sentences", type=int, default=None, help="default: all 3,250")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--noise", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--store", type=Path, default=None, help="default: a new folder under store/bench-ner-*")
    args = parser.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    for name in ("conll2003_train.txt", "conll2003_valid.txt"):
        if not (SHARED / name).exists():
            sys.exit(f"{SHARED / name} is not here: this benchmark needs the shared CoNLL-2003 data.")

    started = time.perf_counter()
    clean = first_sentences(load_tagged(SHARED / "conll2003_train.txt"), args.train_sentences)
    noisy, corrupted = corrupt(clean, args.noise, args.seed)
    validation = first_sentences(load_tagged(SHARED / "conll2003_valid.txt", tag_names=clean.tag_names),
                                 args.validation_sentences)
    n_words = sum(len(words) for words in noisy.words)
    print(f"{len(noisy)} training sentences, {n_words} words, {len(corrupted)} entity words corrupted; "
          f"{len(validation)} validation sentences", flush=True)

    folder = args.store or PROJECT / "store" / f"bench-ner-{time.strftime('%Y%m%d-%H%M%S')}"
    folder.mkdir(parents=True, exist_ok=True)
    store = Store(folder / "ner.duckdb", create=True)
    config = IngestConfig(projection="tsne", importance_examples=256, attention_examples=512, batch_size=64,
                          unit_points=5000)
    trained = time.perf_counter()
    callback = train_tagger(store, noisy, validation, run_id=RUN, epochs=args.epochs, output_dir=folder,
                            ingest_config=config)
    train_s = time.perf_counter() - trained
    if callback.problems:
        print("recording problems:", *callback.problems, sep="\n  ")
    for summary in callback.summaries:
        print(f"{summary.checkpoint}: " + ", ".join(f"{k} {v:.4f}" for k, v in summary.scores.items())
              + f", word accuracy {summary.accuracy:.4f} ({sum(summary.seconds.values()):.0f} s to ingest)", flush=True)
    f1 = callback.summaries[-1].scores["f1"]

    # Label-error finding over the training words: row index = example id of the training dynamics.
    last_epoch = store.scalar("SELECT max(epoch) FROM training_dynamics WHERE run_id = ?", [RUN])
    words = store.query(
        """SELECT d.example_id, d.unit, d.confidence, t.loss AS last_loss, u.label
           FROM data_map d
           JOIN training_dynamics t ON t.run_id = d.run_id AND t.split = d.split AND t.example_id = d.example_id
                                   AND t.unit = d.unit AND t.epoch = ?
           JOIN units u ON u.run_id = d.run_id AND u.split = d.split AND u.example_id = d.example_id AND u.unit = d.unit
           WHERE d.run_id = ? AND d.split = 'train' ORDER BY d.example_id, d.unit""", [last_epoch, RUN])
    is_noise = np.array([(int(r), int(w)) in corrupted for r, w in zip(words.example_id, words.unit)])
    entity = words.label.to_numpy() != 0
    auroc_noise = auroc(-words.confidence.to_numpy(), is_noise)
    auroc_loss = auroc(words.last_loss.to_numpy(), is_noise)
    auroc_noise_entities = auroc(-words.confidence.to_numpy()[entity], is_noise[entity])
    print(f"{len(words)} training words with dynamics ({is_noise.sum()} corrupted): Data Map confidence AUROC "
          f"{auroc_noise:.4f} (entity words only {auroc_noise_entities:.4f}), last-epoch loss AUROC {auroc_loss:.4f}")
    print(f"training and recording {train_s / 60:.1f} min, in all {(time.perf_counter() - started) / 60:.1f} min; "
          f"store {folder / 'ner.duckdb'}")
    print(f"BENCH ner f1={f1:.4f} auroc_noise={auroc_noise:.4f} auroc_last_loss={auroc_loss:.4f} "
          f"auroc_noise_entities={auroc_noise_entities:.4f} train_sentences={len(noisy)}")


if __name__ == "__main__":
    main()
