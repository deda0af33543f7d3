"""A writer process ingests checkpoints while a reader process queries the same store in a loop."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from t3vis.store.database import Store

WRITER = textwrap.dedent("""
    import sys
    from t3vis.data.loading import load_examples
    from t3vis.record.ingest import IngestConfig, ingest_checkpoint
    from t3vis.model.access import load_model
    from t3vis.store.database import Store

    store_path, model_dir, data, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    store = Store(store_path, create=True)
    bundle = load_model(model_dir, device="cpu")
    examples = load_examples(data)
    for step in range(1, count + 1):
        ingest_checkpoint(store, bundle, examples, run_id="live", checkpoint=f"step-{step}", step=step,
                          config=IngestConfig(projection="pca", importance_examples=-1, batch_size=2))
""")

READER = textwrap.dedent("""
    import json, sys, time
    from t3vis.store.database import Store

    store_path, expected, n_examples, heads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    store = Store(store_path, create=False)
    queries, partial, errors, seen = 0, 0, [], 0
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        try:
            rows = store.query('''
                SELECT c.checkpoint,
                       (SELECT count(*) FROM predictions p WHERE p.run_id = c.run_id AND p.checkpoint = c.checkpoint) AS p,
                       (SELECT count(*) FROM projections j WHERE j.run_id = c.run_id AND j.checkpoint = c.checkpoint) AS j,
                       (SELECT count(*) FROM head_importance h WHERE h.run_id = c.run_id AND h.checkpoint = c.checkpoint) AS h
                FROM checkpoints c''')
        except Exception as error:  # any error reaching the reader fails the test
            errors.append(repr(error))
            continue
        queries += 1
        partial += int(((rows.p != n_examples) | (rows.j != n_examples) | (rows.h != heads)).sum())
        seen = len(rows)
        if seen == expected:
            break
        time.sleep(0.005)
    print(json.dumps({"queries": queries, "partial": partial, "errors": errors, "seen": seen}))
""")


def test_reader_never_errors_nor_sees_a_partial_checkpoint(tmp_path, tiny_model_dir, tiny_bundle, topic_csv):
    store_path = tmp_path / "live.duckdb"
    Store(store_path, create=True).initialise()  # the app opens an existing store
    checkpoints, heads = 4, tiny_bundle.num_layers * tiny_bundle.num_heads
    reader = subprocess.Popen([sys.executable, "-c", READER, str(store_path), str(checkpoints), "15", str(heads)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    writer = subprocess.run([sys.executable, "-c", WRITER, str(store_path), str(tiny_model_dir), str(topic_csv),
                             str(checkpoints)], capture_output=True, text=True, timeout=240)
    out, err = reader.communicate(timeout=240)
    assert writer.returncode == 0, writer.stderr[-2000:]
    assert reader.returncode == 0, err[-2000:]
    report = json.loads(out.strip().splitlines()[-1])
    assert report["errors"] == []
    assert report["partial"] == 0
    assert report["seen"] == checkpoints
    assert report["queries"] > 20, "the reader kept querying while the writer worked"
