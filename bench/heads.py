"""The Attention Head view on the demo model: instance-scale latency, and importance vs real ablation.

    python bench/heads.py [--store store/demo.duckdb] [--examples 200] [--repeats 10]

1. Instance scale: one example of 128 tokens (demo evaluation questions joined until 128 word
   pieces) through ``instance_heads`` (one forward with attention recorded, one backward to the
   head mask) and ``instance_pattern_frame`` (every head's pattern pooled for the grid): the work
   the head view does when the instance toggle is on. Median over repeats, CPU.
2. Validation: on N evaluation examples, each head's first-order importance (|dL/dm|, as stored at
   ingest) against the actual change of mean loss when that head alone is masked; the Spearman
   rank correlation over all heads, against |change| (what the estimate approximates) and
   against the signed increase.

Builds the demo store (``t3vis demo``) when the store is missing. Last line:
``BENCH heads instance_ms=... spearman_vs_ablation=...``. Goal: instance under 400 ms.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from t3vis.demo.build import DEFAULT_DEMO_PATH, DEMO_RUN, build_demo
from t3vis.analysis.instance_heads import instance_heads, instance_pattern_frame
from t3vis.analysis.validation import ablation_loss_increase, importance_on, spearman
from t3vis.queries.checkpoint_reads import checkpoint_weights, stored_examples
from t3vis.model.access import load_model
from t3vis.store.database import Store


def text_of_tokens(tokenizer, texts: list[str], n_tokens: int) -> str:
    """Join texts until the encoding reaches n_tokens (special tokens included), then cut to exactly that."""
    joined = ""
    for text in texts:
        joined = f"{joined} {text}".strip()
        if len(tokenizer(joined)["input_ids"]) >= n_tokens:
            break
    ids = tokenizer(joined, truncation=True, max_length=n_tokens)["input_ids"]
    return tokenizer.decode(ids[1:-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", default=str(DEFAULT_DEMO_PATH))
    parser.add_argument("--examples", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if not Path(args.store).is_file():
        print(f"building the demo store at {args.store} ...", flush=True)
        build_demo(args.store)
    store = Store(args.store, create=False)
    checkpoint = store.checkpoints(DEMO_RUN).checkpoint.iloc[-1]
    run = store.run(DEMO_RUN)
    bundle = load_model(checkpoint_weights(store, DEMO_RUN, checkpoint), label_names=run.label_names, device="cpu")
    examples = stored_examples(store, DEMO_RUN, "validation")
    print(f"model: {DEMO_RUN}/{checkpoint}, torch threads {torch.get_num_threads()}", flush=True)

    text = text_of_tokens(bundle.tokenizer, examples.texts, 128)
    times = []
    for repeat in range(args.repeats + 1):
        started = time.perf_counter()
        analysis = instance_heads(bundle, text, label=0)
        instance_pattern_frame(analysis.attentions)
        if repeat:  # the first call warms up
            times.append((time.perf_counter() - started) * 1000)
    instance_ms = statistics.median(times)
    print(f"instance scale at {len(analysis.tokens)} tokens: median {instance_ms:.0f} ms "
          f"(min {min(times):.0f}, max {max(times):.0f})", flush=True)

    rng = np.random.default_rng(0)
    chosen = np.sort(rng.choice(len(examples), size=min(args.examples, len(examples)), replace=False))
    from dataclasses import replace

    subset = replace(examples, example_ids=examples.example_ids[chosen], texts=[examples.texts[i] for i in chosen],
                     labels=examples.labels[chosen], extra=examples.extra.iloc[chosen])
    started = time.perf_counter()
    importance = importance_on(bundle, subset)
    ablation = ablation_loss_increase(bundle, subset)
    rho = spearman(importance, np.abs(ablation))
    rho_signed = spearman(importance, ablation)
    print(f"importance vs ablation on {len(subset)} examples ({time.perf_counter() - started:.0f} s): "
          f"Spearman {rho:.3f} against |loss change| (what the first-order estimate approximates), "
          f"{rho_signed:.3f} against the signed loss increase", flush=True)
    top = np.argsort(-importance.reshape(-1))[:5]
    for index in top:
        layer, head = divmod(int(index), bundle.num_heads)
        print(f"  L{layer}·H{head}: importance {importance[layer, head]:.4f}, "
              f"loss increase when masked {ablation[layer, head]:+.4f}")
    print(f"BENCH heads instance_ms={instance_ms:.0f} spearman_vs_ablation={rho:.3f} "
          f"spearman_vs_signed_increase={rho_signed:.3f}")


if __name__ == "__main__":
    main()
