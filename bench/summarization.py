"""The paper's case study, measured: MiniLM fine-tuned as BertSum on CNN/DailyMail, recorded by T3visCallback.

    python bench/summarization.py [--train-docs 500] [--epochs 2] [--store PATH] [--measure-only]

1. Data: ``../shared/data/cnn_dailymail_validation_sample1000.csv``: its last 100 documents are held out
   for evaluation; training takes the first ``--train-docs`` (500) of the other 900 and the 100-article train
   sample (``cnn_dailymail_train_sample100.csv``). Sentences by pysbd, oracle labels by greedy ROUGE.
2. Training: ``examples/bertsum_cnndm.py``'s ``train_summarizer``: the packaged all-MiniLM-L6-v2 as a BertSum-style
   summarizer (512 tokens), ``transformers.Trainer`` with ``T3visCallback``: per-sentence dynamics from the training passes, a checkpoint ingested over the held-out
   documents after each epoch (predicted summaries, ROUGE, Lead-3 and oracle, projections, head importance for
   the summarization loss, aggregate attention and head functions).
3. ROUGE-1/2/L (F1, rouge-score, stemmed) of the model's 3-sentence summaries, of Lead-3 and of the oracle on the
   held-out documents.
4. Instance view at 512 tokens (CPU): one document through every head's attention, LRP and Input×Gradient of a
   sentence score (median of 3 after a warm-up).
5. The case study's question: across the heads, the Spearman correlation between head importance and each head
   function (same token, same sentence, adjacent, special, self), and the dominant function of the 5 most
   important heads (the function where the head is furthest above the median head, in units of the spread).
6. Browser: the app serves the store; in the Attention heads view at instance scale on a 512-token document,
   the time from clicking a head to its 512 x 512 attention matrix being drawn.

Last line: ``BENCH summarization rouge1=... rouge1_lead3=... rouge1_oracle=... instance_ms_512=...
attention_browser_ms_512=... top5_functions=...``. Goal: the model within 2 ROUGE-1 points of Lead-3 or above.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT / "tests"))
SHARED = PROJECT.parent / "shared" / "data"

sys.path.insert(0, str(PROJECT / "examples"))

from app_browser import CHROMIUM, chromium_page, serve_app, wait_until_idle  # noqa: E402
from bertsum_cnndm import join_documents, split_documents, train_summarizer  # noqa: E402
from t3vis.analysis.document_view import document_attentions  # noqa: E402
from t3vis.analysis.validation import spearman  # noqa: E402
from t3vis.attribution import METHODS  # noqa: E402
from t3vis.attribution.base import prepare_document  # noqa: E402
from t3vis.data.documents import DocumentSet, load_documents  # noqa: E402
from t3vis.model.summarizer_loading import load_summarizer  # noqa: E402
from t3vis.queries.checkpoint_reads import checkpoint_weights, stored_documents  # noqa: E402
from t3vis.queries.explore import HEAD_FUNCTIONS  # noqa: E402
from t3vis.store.database import Store  # noqa: E402

RUN = "bertsum-minilm-cnn"


def prepare_data(train_docs: int) -> tuple[DocumentSet, DocumentSet, float]:
    started = time.perf_counter()
    validation = load_documents(SHARED / "cnn_dailymail_validation_sample1000.csv")
    train, held_out = split_documents(validation, 100)
    train, _ = split_documents(train, max(len(train) - train_docs, 0)) if train_docs < len(train) else (train, None)
    train = join_documents(train, load_documents(SHARED / "cnn_dailymail_train_sample100.csv"), id_offset=10_000)
    return train, held_out, time.perf_counter() - started


def rouge_table(store: Store, checkpoint: str) -> pd.DataFrame:
    return store.query(
        """SELECT 'model (' || ? || ')' AS system, avg(rouge1) AS rouge1, avg(rouge2) AS rouge2, avg(rougeL) AS rougeL
           FROM document_scores WHERE run_id = ? AND checkpoint = ?
           UNION ALL
           SELECT system, avg(rouge1), avg(rouge2), avg(rougeL) FROM baseline_scores
           WHERE run_id = ? AND split = 'validation' GROUP BY system ORDER BY system""",
        [checkpoint, RUN, checkpoint, RUN])


def instance_timing(store: Store, checkpoint: str, repeats: int = 3) -> tuple[float, int]:
    folder = checkpoint_weights(store, RUN, checkpoint)
    bundle = load_summarizer(folder, device="cpu")
    documents = stored_documents(store, RUN, "validation")
    longest = int(np.argmax([sum(len(s) for s in sentences) for sentences in documents.sentences]))
    sentences = documents.sentences[longest]

    def once() -> float:
        started = time.perf_counter()
        example = prepare_document(bundle, sentences)
        document_attentions(bundle, example)
        METHODS["lrp"].attribute(bundle, example, 0)
        METHODS["input_x_gradient"].attribute(bundle, example, 0)
        return (time.perf_counter() - started) * 1000

    once()  # warm-up
    example = prepare_document(bundle, sentences)
    return statistics.median(once() for _ in range(repeats)), len(example.tokens)


def head_functions_vs_importance(store: Store, checkpoint: str) -> tuple[dict[str, float], list[str]]:
    heads = store.query(
        f"""SELECT h.layer, h.head, h.importance, {', '.join('a.' + name for name in HEAD_FUNCTIONS)}
            FROM head_importance h JOIN attention_patterns a USING (run_id, checkpoint, split, layer, head)
            WHERE h.run_id = ? AND h.checkpoint = ? ORDER BY h.importance DESC""", [RUN, checkpoint])
    correlations = {name: spearman(heads.importance.to_numpy(), heads[name].to_numpy()) for name in HEAD_FUNCTIONS}
    standardised = {name: (heads[name] - heads[name].median()) / (heads[name].std() or 1.0) for name in HEAD_FUNCTIONS}
    dominant = []
    for row in range(min(5, len(heads))):
        name = max(HEAD_FUNCTIONS, key=lambda function: standardised[function].iloc[row])
        dominant.append(f"L{heads['layer'].iloc[row]}H{heads['head'].iloc[row]}:{name.removeprefix('attn_')}")
    return correlations, dominant


def browser_attention_ms(store_path: Path, store: Store) -> float:
    """Click a head in the instance-scale grid of a 512-token document; time until its matrix image is drawn."""
    longest = store.scalar("SELECT example_id FROM examples WHERE run_id = ? AND split = 'validation' "
                           "ORDER BY n_tokens DESC, example_id LIMIT 1", [RUN])
    with serve_app(store_path) as url, chromium_page(height=2400) as page:
        page.goto(f"{url}/heads?run={RUN}&split=validation&example={longest}&scale=instance&heads=importance")
        cells = page.locator("[data-testid=stVegaLiteChart]").first.locator("g.mark-rect").first.locator("path")
        cells.first.wait_for(timeout=240_000)
        wait_until_idle(page, timeout_ms=240_000)
        started = time.perf_counter()
        cells.nth(4 * 12 + 3).click()  # layer 4, head 3
        page.locator("[data-testid=stVegaLiteChart] svg image").first.wait_for(timeout=120_000)
        elapsed = (time.perf_counter() - started) * 1000
        wait_until_idle(page)
        page.screenshot(path=str(store_path.parent / "summarization-attention-512.png"), full_page=True)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-docs", type=int, default=500,
                        help="documents of the validation sample to train on (with the 100 of the train sample)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--store", type=Path, default=None,
                        help="default: a new bench-out/summarization-<time>/summarization.duckdb")
    parser.add_argument("--no-browser", action="store_true")
    parser.add_argument("--measure-only", action="store_true",
                        help="reuse the store of an earlier run (its training numbers are in its checkpoints): only "
                             "ROUGE, the instance timing, the head functions and the browser timing are measured")
    args = parser.parse_args()
    if args.store is None:
        args.store = PROJECT / "bench-out" / f"summarization-{time.strftime('%Y%m%d-%H%M%S')}" / "summarization.duckdb"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if not (SHARED / "cnn_dailymail_validation_sample1000.csv").is_file():
        sys.exit(f"{SHARED} lacks the CNN/DailyMail samples: this benchmark needs ../shared/data beside the project.")
    if args.store.exists() and not args.measure_only:
        sys.exit(f"{args.store} exists: remove it (and its -checkpoints folder), pass another --store, or pass "
                 "--measure-only to measure it again.")
    args.store.parent.mkdir(parents=True, exist_ok=True)
    total = time.perf_counter()

    if args.measure_only:
        store = Store(args.store)
    else:
        train, held_out, prepare_s = prepare_data(args.train_docs)
        sentences = sum(map(len, train.sentences))
        print(f"data: {len(train)} training documents ({sentences} sentences), {len(held_out)} held out; "
              f"sentence splitting and oracle labels {prepare_s:.0f} s", flush=True)
        store = Store(args.store, create=True)
        started = time.perf_counter()
        callback = train_summarizer(store, train, held_out, run_id=RUN, epochs=args.epochs,
                                    output_dir=args.store.parent)
        if callback.problems:
            print("recording problems:", callback.problems, flush=True)
        print(f"training and recording: {(time.perf_counter() - started) / 60:.1f} min", flush=True)
    checkpoint = store.checkpoints(RUN).checkpoint.iloc[-1]
    table = rouge_table(store, checkpoint)
    print(table.round(4).to_string(index=False), flush=True)
    scores = {row.system.split(" ")[0]: row for row in table.itertuples()}

    instance_ms, n_tokens = instance_timing(store, checkpoint)
    print(f"instance view: {instance_ms:.0f} ms for attention + LRP + Input×Gradient at {n_tokens} tokens",
          flush=True)
    correlations, dominant = head_functions_vs_importance(store, checkpoint)
    print("Spearman(importance, function) across heads: " + json.dumps({k: round(v, 3) for k, v in
                                                                      correlations.items()}))
    print("5 most important heads and their dominant function: " + ", ".join(dominant), flush=True)
    browser_ms = float("nan")
    if not args.no_browser and CHROMIUM.exists():
        browser_ms = browser_attention_ms(args.store, store)
        print(f"browser: head click to its 512-token attention matrix drawn in {browser_ms:.0f} ms", flush=True)
    print(f"whole benchmark: {(time.perf_counter() - total) / 60:.1f} min")
    functions = "|".join(item.split(":")[1] for item in dominant)
    print(f"BENCH summarization rouge1={scores['model'].rouge1:.4f} rouge1_lead3={scores['lead-3'].rouge1:.4f} "
          f"rouge1_oracle={scores['oracle'].rouge1:.4f} rouge2={scores['model'].rouge2:.4f} "
          f"rougeL={scores['model'].rougeL:.4f} instance_ms_512={instance_ms:.0f} "
          f"attention_browser_ms_512={browser_ms:.0f} top5_functions={functions} "
          f"spearman_same_sentence={correlations['attn_same_sentence']:.3f}")


if __name__ == "__main__":
    main()
