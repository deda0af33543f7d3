"""A real ``transformers.Trainer`` recording into a store from another process while this process follows the
store as the app does: for tests/integration/test_follow_delay.py and bench/follow_training.py.

The training process runs a tiny random BERT with the ``T3visCallback`` (checkpoint at each epoch end) and
prints a line the moment each write's transaction has committed. This process opens the Runs & checkpoints page
with AppTest once the run exists (as a person opens the app on a training that has started), with "Follow
training" on; only then does the first epoch start, so that every checkpoint comes while the page is open.
From there this process does what the follow fragment's timer does: every ``POLL_SECONDS`` one look
(``follow.check``) and, when it finds new data, a rerun of the page. A checkpoint has appeared when the rerun's
sidebar lists it; its delay is from its commit to the end of that rerun.
"""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import textwrap
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from streamlit.testing.v1 import AppTest

from helpers import PROJECT, write_topic_csv
from t3vis.fixtures.tiny_models import save_tiny_model
from t3vis.store.database import Store
from t3vis_app import follow

TRAINER = textwrap.dedent("""
    import json, os, sys, time
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, Trainer, TrainerCallback
    from transformers import TrainingArguments
    import torch
    from t3vis.data.loading import load_examples
    from t3vis.record.callback import T3visCallback
    from t3vis.record.ingest import IngestConfig
    from t3vis.store.database import Store

    store_path, model_dir, data, out, go = sys.argv[1:6]
    epochs, pace = int(sys.argv[6]), float(sys.argv[7])
    torch.set_num_threads(1)  # the other core is the app's

    def report(**event):
        print(json.dumps({**event, "at": time.time()}), flush=True)

    class TimedStore(Store):
        # reports the moment each write's transaction has committed
        def write_examples(self, run, split, rows, split_tables=None):
            super().write_examples(run, split, rows, split_tables)
            report(committed="examples", name=split)

        def write_checkpoint(self, run, checkpoint, results):
            super().write_checkpoint(run, checkpoint, results)
            report(committed="checkpoint", name=checkpoint.checkpoint)

        def write_training_dynamics(self, run, split, epoch, rows, token_rows=None):
            super().write_training_dynamics(run, split, epoch, rows, token_rows)
            report(committed="dynamics", name=str(epoch))

    class Pace(TrainerCallback):
        # starts the first epoch once the app is open (the run is in the store by then), and spreads the epochs
        # out in time as a longer training would (it runs before the t3vis callback's epoch end)
        def on_epoch_begin(self, args, state, control, **kwargs):
            deadline = time.monotonic() + 120
            while not os.path.exists(go) and time.monotonic() < deadline:
                time.sleep(0.05)

        def on_epoch_end(self, args, state, control, **kwargs):
            time.sleep(pace)

    class Items(torch.utils.data.Dataset):
        def __init__(self, tokenizer, examples):
            self.items = [dict(tokenizer(text), labels=int(label))
                          for text, label in zip(examples.texts, examples.labels)]

        def __len__(self):
            return len(self.items)

        def __getitem__(self, index):
            return self.items[index]

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir)
    examples = load_examples(data)
    callback = T3visCallback(TimedStore(store_path, create=True), run_id="live", eval_examples=examples,
                             train_examples=examples, ingest_config=IngestConfig(projection="pca", importance_examples=8))
    trainer = Trainer(
        model=model,
        args=TrainingArguments(output_dir=out, num_train_epochs=epochs, per_device_train_batch_size=4,
                               save_strategy="no", logging_strategy="no", report_to=[], use_cpu=True,
                               disable_tqdm=True, seed=0),
        train_dataset=Items(tokenizer, examples),
        processing_class=tokenizer,
        callbacks=[Pace(), callback],
    )
    trainer.train()  # returns once the queued writes are in the store
    report(done=True, problems=callback.problems, failures=callback.writer.failures)
""")


@dataclass(frozen=True)
class Appearance:
    """One checkpoint: when its transaction committed (training process) and when the followed page showed it."""

    checkpoint: str
    committed: float  # time.time()
    shown: float  # time.time()

    @property
    def delay(self) -> float:
        return self.shown - self.committed


@dataclass
class FollowedTraining:
    """What following a training saw."""

    appearances: list[Appearance] = field(default_factory=list)  # the checkpoints committed after the page opened
    at_opening: list[str] = field(default_factory=list)  # checkpoints the page showed when it opened
    looks: int = 0  # looks at the store (follow.check calls)
    reruns: int = 0  # reruns of the page they asked for
    slowest_look: float = 0.0  # seconds of the longest look
    selected: str | None = None  # the sidebar's checkpoint at the end
    trainer: dict = field(default_factory=dict)  # the training process's last report: problems, failures


def _read_events(stream, events: queue.Queue) -> None:
    for line in stream:
        if line.startswith('{"'):  # the reports (the Trainer prints its summary as a Python dict)
            events.put(json.loads(line))


def _sidebar_checkpoints(app: AppTest) -> tuple[list[str], str | None]:
    for widget in app.sidebar.selectbox:
        if widget.key == "w.checkpoint":
            return list(widget.options), widget.value
    return [], None


def follow_a_training(folder: Path, *, epochs: int = 4, pace: float = 2.0, poll: float = follow.POLL_SECONDS,
                      timeout: float = 240.0) -> FollowedTraining:
    """Train in another process into ``folder/live.duckdb`` and follow it from this one; see the module's doc."""
    folder.mkdir(parents=True, exist_ok=True)
    model_dir = save_tiny_model(folder / "model", num_labels=3)
    data = write_topic_csv(folder / "topics.csv")
    store_path, go = folder / "live.duckdb", folder / "go"  # go: the page is open, the training may start
    process = subprocess.Popen(
        [sys.executable, "-c", TRAINER, str(store_path), str(model_dir), str(data), str(folder / "out"), str(go),
         str(epochs), str(pace)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=PROJECT)
    events: queue.Queue = queue.Queue()
    reader = threading.Thread(target=_read_events, args=(process.stdout, events), daemon=True)
    reader.start()
    committed: dict[str, float] = {}
    result = FollowedTraining()
    deadline = time.monotonic() + timeout

    def take_events() -> None:
        while not events.empty():
            event = events.get()
            if event.get("committed") == "checkpoint":
                committed[event["name"]] = event["at"]
            elif event.get("done"):
                result.trainer = event

    try:
        while not (store_path.is_file() and Store(store_path).runs().shape[0]):  # the run has started
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the training process wrote no run: {process.stderr.read()[-3000:]}")
            time.sleep(0.1)
        app = AppTest.from_file(str(PROJECT / "pages" / "overview.py"), default_timeout=120)
        app.session_state["store_path"] = str(store_path)
        app.session_state[follow.FOLLOW] = True
        app.run()
        if app.exception:
            raise RuntimeError(f"the page failed: {app.exception}")
        opened = time.time()
        shown = {name: opened for name in _sidebar_checkpoints(app)[0]}
        go.touch()
        store = Store(store_path)
        next_look = time.monotonic() + poll
        while not (result.trainer and set(committed) <= set(shown)):
            if time.monotonic() > deadline:
                raise RuntimeError(f"gave up: committed {sorted(committed)}, shown {sorted(shown)}")
            if process.poll() is not None and not result.trainer and events.empty() and not reader.is_alive():
                raise RuntimeError(f"the training process failed: {process.stderr.read()[-3000:]}")
            time.sleep(max(0.0, next_look - time.monotonic()))
            next_look += poll
            take_events()
            started = time.monotonic()
            new_data = follow.check(app.session_state, store)  # the fragment's look
            result.looks += 1
            result.slowest_look = max(result.slowest_look, time.monotonic() - started)
            if new_data:  # the fragment's st.rerun(scope="app")
                app.run()
                result.reruns += 1
                if app.exception:
                    raise RuntimeError(f"the page failed on a rerun: {app.exception}")
                now = time.time()
                for name in _sidebar_checkpoints(app)[0]:
                    shown.setdefault(name, now)
            take_events()
        result.selected = _sidebar_checkpoints(app)[1]
        result.at_opening = [name for name, at in shown.items() if at == opened]
        result.appearances = [Appearance(name, committed[name], shown[name])
                              for name in sorted(committed, key=committed.get) if name not in result.at_opening]
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
    return result
