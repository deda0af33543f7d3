"""A million examples: the Projection page, the projection, and ingestion on several processes.

    python bench/scale.py [--sizes 100000,1000000] [--parts app,tsne,distributed] [--repeats 3]

Parts (all by default, side by side in one run):

- ``app``: for each size a synthetic store (t3vis.fixtures.synthetic_store, the shapes of a real recording)
  is written, then
  - server: the Projection page runs in Streamlit's AppTest; a label filter is changed and the rerun is
    timed (DuckDB filtering, the view's image and hover cells, the table's page: everything the script does);
  - browser: ``streamlit run`` serves the app and headless Chromium (/usr/bin/chromium) opens the page in a
    fresh browser; the time from navigation until the chart's canvas shows the points (the image: its hover
    cells and the Data table come a moment later, t3vis_app/deferred.py, and are timed too: until the mouse
    over the chart shows a cell's tooltip, and until the table shows), then from a filter change until it
    shows the filtered points; in turn with each fresh-browser page, a bare Streamlit page of
    the same widgets (``bench/browser_floor.py``'s ``widgets_first``: the table comes a moment later), the floor
    of that time on this machine;
  - memory: the peak resident set of the ``streamlit run`` server process over all of the above.
- ``tsne``: hidden-state-like points (64-D, 40 Gaussian clusters) of each size laid out as ingestion does
  (t-SNE fitted on :data:`t3vis.record.projection.TSNE_FIT_POINTS` points, the others placed with
  openTSNE's ``transform``): seconds, CPU seconds, k-NN preservation (share of each point's 10
  nearest neighbours in 64-D kept among its 10 nearest in 2-D, 2,000 random points) and cluster agreement
  (share of its 10 nearest in 2-D from its own cluster).
- ``distributed``: ``bench/distributed_ingest.py`` (the same ingestion on 1 and on 2 processes).

Last line: ``BENCH scale server_ms_1m=... browser_ms_1m=... rss_mb_1m=... tsne_s_100k=... tsne_s_1m=...
knn_preservation_100k=...`` (and the other numbers measured). Goals at 1M: server <= 1 s per filter change,
browser <= 3 s to draw, the server under 4 GB; t-SNE of 1M points <= 30 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT / "tests"))
sys.path.insert(0, str(PROJECT / "bench"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def size_name(n: int) -> str:
    return f"{n // 1_000_000}m" if n % 1_000_000 == 0 else f"{n // 1000}k"


# -- projection ---------------------------------------------------------------------------------------

def tsne_numbers(n: int) -> dict[str, float]:
    """Seconds, CPU seconds and k-NN preservation of ingestion's t-SNE of ``n`` clustered points."""
    from projection_scale import cluster_agreement, clustered_points, knn_preservation
    from t3vis.record.projection import tsne

    features, clusters = clustered_points(n, seed=1, with_clusters=True)
    cpu = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    coords = tsne(features, seed=0)
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu_seconds = (after.ru_utime - cpu.ru_utime) + (after.ru_stime - cpu.ru_stime)
    knn = knn_preservation(features, coords)
    agreement = cluster_agreement(coords, clusters)
    print(f"t-SNE of {n:,} points: {seconds:.0f} s ({cpu_seconds:.0f} CPU s), k-NN preservation {knn:.3f}, "
          f"cluster agreement of the 10 nearest in 2-D {agreement:.3f}", flush=True)
    return {f"tsne_s_{size_name(n)}": seconds, f"tsne_cpu_s_{size_name(n)}": cpu_seconds,
            f"knn_preservation_{size_name(n)}": knn, f"cluster_agreement_{size_name(n)}": agreement}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--parts", default="app,tsne,distributed")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    parts = set(args.parts.split(","))
    numbers: dict[str, float] = {}
    if "app" in parts:
        from scale_app import app_numbers
        for n in sizes:
            numbers.update(app_numbers(n, repeats=args.repeats))
    if "tsne" in parts:
        for n in sizes:
            numbers.update(tsne_numbers(n))
    if "distributed" in parts:
        from distributed_ingest import measure
        measured = measure()
        print(f"ingestion of {measured['n_examples']:,} sentences: {measured['seconds_1proc']:.1f} s on 1 process, "
              f"{measured['seconds_2proc']:.1f} s on 2 (ratio {measured['ratio']:.2f})", flush=True)
        numbers.update({f"distributed_{key}": value for key, value in measured.items()
                        if isinstance(value, (int, float))})
    head = ["server_ms_1m", "browser_ms_1m", "rss_mb_1m", "tsne_s_100k", "tsne_s_1m", "knn_preservation_100k"]
    keys = [key for key in head if key in numbers] + sorted(key for key in numbers if key not in head)
    print("BENCH scale " + " ".join(f"{key}={_format(numbers[key])}" for key in keys))


def _format(value: float) -> str:
    return f"{value:.3f}" if abs(value) < 10 else f"{value:.0f}"


if __name__ == "__main__":
    main()
