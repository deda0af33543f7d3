"""A store filled with seeded synthetic rows: for app tests, browser tests and scale benchmarks.

No model runs here. The rows have the shapes and the structure of a real recording (one
cluster per label in every projection, clusters that tighten over checkpoints, a few
mislabelled examples that stay off their cluster and low on the Data Map), so that the app's
views can be exercised at 50,000 examples in seconds. Everything goes through
:class:`t3vis.store.Store`'s write methods, like a real ingestion.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from t3vis.dynamics import dynamics_rows
from t3vis.store import CheckpointInfo, CheckpointResults, RunInfo, Store

WORDS = {
    "sports": "team match goal coach season league striker final score referee".split(),
    "business": "shares market profit bank merger investor revenue tax salary company".split(),
    "science": "telescope genome experiment theory vaccine particle energy cell climate physics".split(),
    "health": "doctor injury diet sleep vitamin heart fever clinic therapy muscle".split(),
}


@dataclass(frozen=True)
class SyntheticConfig:
    """Size and shape of a synthetic store."""

    n_examples: int = 400  # evaluation examples (split "validation")
    n_train: int = 400  # training examples with dynamics (split "train"); 0 for none
    n_checkpoints: int = 3
    layers: tuple[int, ...] = (3, 6)
    num_layers: int = 6
    num_heads: int = 12
    epochs: int = 4
    flipped_fraction: float = 0.1
    bins: int = 8
    seed: int = 0
    run_id: str = "synthetic"
    label_names: tuple[str, ...] = tuple(WORDS)  # label i's texts use the words of the i-th topic (cycling)
    checkpoint_names: tuple[str, ...] = ()  # one per checkpoint; empty: epoch-1, epoch-2, ...
    text_prefix: str = "what about the"  # each text is this prefix, then topic words


def _texts(rng: np.random.Generator, labels: np.ndarray, prefix: str) -> list[str]:
    topics = list(WORDS)
    texts = []
    for label in labels:
        words = WORDS[topics[label % len(topics)]]
        picked = rng.choice(words, size=int(rng.integers(5, 14)))
        texts.append(prefix + " " + " ".join(picked) + "?")
    return texts


def _examples_table(rng, labels: np.ndarray, names: list[str], flipped: np.ndarray, prefix: str) -> pa.Table:
    shown = np.where(flipped, (labels + 1) % len(names), labels)  # the (possibly wrong) gold label
    texts = _texts(rng, labels, prefix)
    n_tokens = np.array([len(text.split()) + 2 for text in texts], dtype=np.int32)
    extra = [json.dumps({"flipped": bool(f), "source": "synthetic"}) for f in flipped]
    return pa.table({
        "example_id": pa.array(np.arange(len(labels)), type=pa.int64()),
        "text": texts,
        "text_pair": pa.array([None] * len(labels), type=pa.string()),
        "label": pa.array(shown.astype(np.int32)),
        "label_name": [names[label] for label in shown],
        "n_tokens": pa.array(n_tokens),
        "n_tokens_full": pa.array(n_tokens),
        "truncated": pa.array(np.zeros(len(labels), dtype=bool)),
        "extra": extra,
    })


def _list_column(matrix: np.ndarray) -> pa.Array:
    return pa.FixedSizeListArray.from_arrays(pa.array(matrix.reshape(-1), type=pa.float32()), matrix.shape[1]).cast(
        pa.list_(pa.float32()))


def _predictions(rng, true: np.ndarray, gold: np.ndarray, k: int, skill: float) -> pa.Table:
    logits = rng.normal(0, 1, size=(len(true), k))  # (N, K)
    logits[np.arange(len(true)), true] += skill
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)  # (N, K)
    pred = probs.argmax(1)
    gold_prob = probs[np.arange(len(gold)), gold]
    return pa.table({
        "example_id": pa.array(np.arange(len(true)), type=pa.int64()),
        "logits": _list_column(logits),
        "probs": _list_column(probs),
        "pred": pa.array(pred.astype(np.int32)),
        "gold_prob": pa.array(gold_prob, type=pa.float32()),
        "confidence": pa.array(probs.max(1), type=pa.float32()),
        "loss": pa.array(-np.log(gold_prob), type=pa.float32()),
        "correct": pa.array(pred == gold),
    })


def _projections(rng, true: np.ndarray, layers, spread: float) -> pa.Table:
    centres = np.array([[np.cos(a), np.sin(a)] for a in np.linspace(0, 2 * np.pi, 5)[:-1]]) * 30  # (4, 2)
    parts = []
    for layer in layers:
        tightness = spread * (1.5 - layer / (2 * max(layers)))
        points = centres[true % len(centres)] + rng.normal(0, tightness, size=(len(true), 2))  # (N, 2)
        parts.append(pa.table({
            "layer": pa.array(np.full(len(true), layer, dtype=np.int32)),
            "method": ["tsne"] * len(true),
            "pooling": ["cls"] * len(true),
            "example_id": pa.array(np.arange(len(true)), type=pa.int64()),
            "x": pa.array(points[:, 0], type=pa.float32()),
            "y": pa.array(points[:, 1], type=pa.float32()),
        }))
    return pa.concat_tables(parts)


def _heads(rng, config: SyntheticConfig, n: int) -> tuple[pa.Table, pa.Table]:
    layers, heads = config.num_layers, config.num_heads
    importance = rng.gamma(1.0, 1.0, size=(layers, heads))  # (L, H)
    norm = np.linalg.norm(importance, axis=1, keepdims=True)
    layer_ids = np.repeat(np.arange(layers), heads).astype(np.int32)
    head_ids = np.tile(np.arange(heads), layers).astype(np.int32)
    importance_table = pa.table({
        "layer": layer_ids, "head": head_ids,
        "importance": importance.reshape(-1),
        "importance_layer_norm": (importance / norm).reshape(-1),
        "importance_global": (importance / importance.max()).reshape(-1),
        "n_examples": pa.array(np.full(layers * heads, n, dtype=np.int32)),
    })
    patterns = rng.dirichlet(np.ones(config.bins), size=(layers * heads, config.bins))  # (L*H, bins, bins)
    count = layers * heads
    attention_table = pa.table({
        "layer": layer_ids, "head": head_ids,
        "bins": pa.array(np.full(count, config.bins, dtype=np.int32)),
        "pattern": _list_column(patterns.reshape(count, -1)),
        **{name: pa.array(rng.uniform(0, 0.5, count), type=pa.float32())
           for name in ("attn_cls", "attn_sep", "attn_self", "attn_prev", "attn_next")},
        "entropy": pa.array(rng.uniform(0.5, 3, count), type=pa.float32()),
        "n_examples": pa.array(np.full(count, n, dtype=np.int32)),
    })
    return importance_table, attention_table


def build_synthetic_store(path: str | Path, config: SyntheticConfig = SyntheticConfig()) -> Store:
    """Write a synthetic run into the store at ``path`` (created when missing); returns the store."""
    rng = np.random.default_rng(config.seed)
    names = list(config.label_names)
    k = len(names)
    if config.checkpoint_names and len(config.checkpoint_names) != config.n_checkpoints:
        raise ValueError(f"checkpoint_names holds {len(config.checkpoint_names)} names for n_checkpoints="
                         f"{config.n_checkpoints}")
    checkpoint_names = config.checkpoint_names or tuple(f"epoch-{i + 1}" for i in range(config.n_checkpoints))
    store = Store(path, create=True)
    run = RunInfo(run_id=config.run_id, model="synthetic", label_names=tuple(names), num_layers=config.num_layers,
                  num_heads=config.num_heads, max_length=128, task="synthetic topics")

    true = rng.integers(0, k, config.n_examples)
    flipped = rng.random(config.n_examples) < config.flipped_fraction
    gold = np.where(flipped, (true + 1) % k, true)
    examples = _examples_table(rng, true, names, flipped, config.text_prefix)
    for index in range(config.n_checkpoints):
        skill = 1.0 + 1.5 * index
        predictions = _predictions(rng, true, gold, k, skill)
        importance, attention = _heads(rng, config, config.n_examples)
        accuracy = float(np.mean(predictions.column("correct").to_numpy(zero_copy_only=False)))
        store.write_checkpoint(
            run,
            CheckpointInfo(run_id=run.run_id, checkpoint=checkpoint_names[index], step=100 * (index + 1),
                           epoch=float(index + 1), metrics={"validation": {"accuracy": accuracy}}),
            CheckpointResults(split="validation", examples=examples if index == 0 else None, tables={
                "predictions": predictions,
                "projections": _projections(rng, true, config.layers, spread=12.0 / (1 + index)),
                "head_importance": importance,
                "attention_patterns": attention,
            }),
        )

    if config.n_train:
        train_true = rng.integers(0, k, config.n_train)
        train_flipped = rng.random(config.n_train) < config.flipped_fraction
        train_gold = np.where(train_flipped, (train_true + 1) % k, train_true)
        store.write_examples(run, "train", _examples_table(rng, train_true, names, train_flipped, config.text_prefix))
        for epoch in range(config.epochs):
            logits = rng.normal(0, 1, size=(config.n_train, k))
            logits[np.arange(config.n_train), train_true] += 0.5 + 1.5 * epoch * rng.uniform(0.2, 1.2, config.n_train)
            rows = dynamics_rows(np.arange(config.n_train), logits, train_gold)
            store.write_training_dynamics(run, "train", epoch, rows)
    return store
