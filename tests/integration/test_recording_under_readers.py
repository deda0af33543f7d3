"""Recording never fails or stalls a training run because of readers of the store.

A real ``transformers.Trainer`` trains with ``T3visCallback`` while another process holds the
store with overlapping 20 s SQL-console queries (read-only connections, which keep any writer
out) and a third process reads it in a loop as the app does. The callback's store gives up waiting
for the lock after LOCK_TIMEOUT seconds, far less than the readers hold it, so its writes time out and
are retried. Training must run at its own pace, the writes must wait for the readers, and in the end
every checkpoint and every dynamics row must be in the store.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap
import time

import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer, Trainer, TrainerCallback, TrainingArguments

from t3vis.record.callback import T3visCallback
from t3vis.data.loading import load_examples
from t3vis.record.ingest import IngestConfig
from t3vis.store.database import Store
from t3vis.store.files import LOCK_HELD, lock_state

HOLD_SECONDS = 40  # the console process keeps a read-only connection open this long, without a gap
LOCK_TIMEOUT = 8  # the callback's store waits this long for the lock, then its background writer retries

CONSOLE = textwrap.dedent("""
    import json, os, sys, threading, time
    from t3vis.queries.sql_console import QueryRefused, run_query
    from t3vis.store.database import Store

    os.nice(19)  # the test is about the store's lock, not about the CPU the queries take from training

    store, hold = Store(sys.argv[1]), float(sys.argv[2])
    slow = "SELECT sum(hash(a.range * b.range)) FROM range(1000000) a, range(1000000) b"  # runs until stopped
    results, errors = [], []
    started = time.monotonic()

    def console(delay):
        time.sleep(delay)
        while time.monotonic() - started <= hold - 20 + 0.5:
            try:
                run_query(store, slow, timeout=20, threads=1)
                results.append("finished")
            except QueryRefused as refused:
                results.append("stopped" if "longer than 20 s" in str(refused) else "refused: " + str(refused))
            except Exception as error:
                errors.append(repr(error))

    threads = [threading.Thread(target=console, args=(delay,)) for delay in (0, 10)]  # overlapping queries
    for thread in threads:
        thread.start()
    print("holding", flush=True)
    for thread in threads:
        thread.join()
    released = time.monotonic()  # the system-wide monotonic clock: the test compares it with its own
    print(json.dumps({"results": results, "errors": errors, "seconds": released - started, "released": released}),
          flush=True)
""")

APP_LOOP = textwrap.dedent("""
    import json, os, sys, time
    from t3vis.store.database import Store

    os.nice(19)
    store, seconds = Store(sys.argv[1]), float(sys.argv[2])
    queries, errors, deadline = 0, [], time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            store.query("SELECT count(*) FROM checkpoints")
            store.query("SELECT region, count(*) FROM data_map GROUP BY region")
            queries += 1
        except Exception as error:
            errors.append(repr(error))
        time.sleep(0.2)
    print(json.dumps({"queries": queries, "errors": errors}), flush=True)
""")


def _report(output: str) -> dict:
    """The JSON line a reader process printed last."""
    start = output.rfind('{"')  # DuckDB may have drawn a progress bar on the same line
    assert start >= 0, f"no report in {output[-1000:]!r}"
    return json.loads(output[start:].strip())


class Items(torch.utils.data.Dataset):
    def __init__(self, tokenizer, examples):
        self.items = [dict(tokenizer(text), labels=int(label)) for text, label in zip(examples.texts, examples.labels)]

    def __len__(self):
        return len(self.items)

    def __getitem__(self, index):
        return self.items[index]


class LoopTimer(TrainerCallback):
    """Notes when the training loop reaches its end (before the t3vis callback flushes its queue)."""

    def on_train_end(self, args, state, control, **kwargs):
        self.loop_ended = time.monotonic()


@pytest.mark.slow
def test_training_runs_at_its_own_pace_while_readers_hold_the_store(tmp_path, tiny_model_dir, topic_csv, caplog):
    path = tmp_path / "live.duckdb"
    Store(path, create=True).initialise()
    console = subprocess.Popen([sys.executable, "-c", CONSOLE, str(path), str(HOLD_SECONDS)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert console.stdout.readline().strip() == "holding", console.stderr.read()
    deadline = time.monotonic() + 60  # the first console query has opened the store (its worker process started)
    while lock_state(path, exclusive=True) != LOCK_HELD:
        assert time.monotonic() < deadline, "the console never held the store"
        time.sleep(0.1)
    app = subprocess.Popen([sys.executable, "-c", APP_LOOP, str(path), str(HOLD_SECONDS + 10)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir)
    examples = load_examples(topic_csv)
    caplog.set_level(logging.INFO, logger="t3vis.store.background_writer")
    callback = T3visCallback(Store(path, lock_timeout=LOCK_TIMEOUT), run_id="live", eval_examples=examples,
                             train_examples=examples,
                             ingest_config=IngestConfig(projection="pca", importance_examples=8))
    timer = LoopTimer()
    trainer = Trainer(
        model=model,
        args=TrainingArguments(output_dir=str(tmp_path / "out"), num_train_epochs=3, per_device_train_batch_size=4,
                               save_strategy="no", report_to=[], use_cpu=True, disable_tqdm=True),
        train_dataset=Items(tokenizer, examples),
        processing_class=tokenizer,
        callbacks=[timer, callback],
    )
    started = time.monotonic()
    trainer.train()  # returns once the queued writes are in the store
    finished = time.monotonic()

    console_out, console_err = console.communicate(timeout=120)
    assert console.returncode == 0, console_err[-2000:]
    console_report = _report(console_out)
    app_report = _report(app.communicate(timeout=120)[0])
    assert console_report["errors"] == [] and app_report["errors"] == []
    assert console_report["results"] and set(console_report["results"]) == {"stopped"}, console_report
    assert app_report["queries"] > 20

    # the loop did not wait for the readers: it ended long before they let go of the store ...
    released = console_report["released"]  # when the console's last query ended and let go of the store
    assert timer.loop_ended < released - 10, (f"the training loop ended only {released - timer.loop_ended:.0f} s "
                                              "before the readers let go: it waited for them")
    # ... while the writes did wait: they finished only after the console let go
    assert finished > released - 1.0, f"the writes finished {released - finished:.0f} s before the readers let go"
    assert callback.problems == [] and callback.writer.failures == []
    waits = [record.getMessage() for record in caplog.records if "after waiting" in record.getMessage()]
    assert waits, "no write timed out on the lock and was retried"  # the retry path ran, and the write landed

    store = Store(path)
    assert store.checkpoints("live").checkpoint.tolist() == ["epoch-1", "epoch-2", "epoch-3"]
    assert store.scalar("SELECT count(*) FROM predictions") == 3 * len(examples)
    assert store.scalar("SELECT count(*) FROM training_dynamics") == 3 * len(examples)
    assert store.scalar("SELECT count(*) FROM examples WHERE split = 'train'") == len(examples)
