"""Latency of the SQL console's example queries on a large store.

    python bench/sql.py [--examples 100000] [--checkpoints 10] [--repeats 5]

A synthetic store (t3vis.fixtures.synthetic_store) of N evaluation examples x C checkpoints (predictions,
one projection layer, head importance, attention) and N training examples x 4 epochs of dynamics
is written; each example query of the console (t3vis.queries.example_queries) is run through the sandboxed
read-only path (t3vis.queries.sql_console.run_query, a fresh connection each time, as in the app) and timed.

Last line: ``BENCH sql p50_ms=... max_ms=...`` over all queries' median times. Goal: each under 200 ms.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from t3vis.queries.example_queries import EXAMPLE_QUERIES
from t3vis.queries.sql_console import run_query
from t3vis.fixtures.synthetic_store import SyntheticConfig, build_synthetic_store


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=100_000)
    parser.add_argument("--checkpoints", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        store = build_synthetic_store(Path(folder) / "big.duckdb", SyntheticConfig(
            n_examples=args.examples, n_train=args.examples, n_checkpoints=args.checkpoints, layers=(6,)))
        print(f"store of {args.examples:,} examples x {args.checkpoints} checkpoints written in "
              f"{time.perf_counter() - started:.0f} s ({(Path(folder) / 'big.duckdb').stat().st_size / 2**20:.0f} MiB)",
              flush=True)
        medians = []
        for query in EXAMPLE_QUERIES:
            times, rows = [], 0
            for _ in range(args.repeats):
                result = run_query(store, query.sql)
                times.append(result.seconds * 1000)
                rows = len(result.frame)
            medians.append(statistics.median(times))
            print(f"  {query.title:<58} {medians[-1]:7.0f} ms (max {max(times):.0f}), {rows} rows", flush=True)
    print(f"BENCH sql p50_ms={statistics.median(medians):.0f} max_ms={max(medians):.0f}")


if __name__ == "__main__":
    main()
