"""Recording a ``transformers.Trainer`` run: one callback.

    trainer = Trainer(..., callbacks=[T3visCallback("store/t3vis.duckdb", run_id="sst2",
                                                    eval_examples=load_examples("dev.tsv"))])

During training it records, for every training example and epoch, the gold-label probability
and correctness *from the training forward passes themselves* (a forward hook keeps the
logits of each training batch; nothing runs an extra pass). At each epoch end, or every N
steps, it ingests a checkpoint over the evaluation examples (predictions, projections, head
importance, aggregate attention). Every write is one short transaction, so the app can stay
open on the same store in another process and sees each checkpoint once it is complete.

What a training batch's rows are, and which example each belongs to, is the task's business:
the callback finds the model's task (:func:`t3vis.record.task.task_of_model`) and lets its
:class:`~t3vis.record.task.TrainingCapture` keep each batch and log it at the epoch's end. A
classifier's rows are recognised by their token ids (:class:`~t3vis.record.classification_task.TokenIndex`:
batches are shuffled and the Trainer drops an id column); a summarizer's collator passes the ids.

Recording never fails or stalls training: every store write goes through a
:class:`~t3vis.store.background_writer.BackgroundWriter` (a queue and a thread that waits out readers
holding the store), checkpoints are computed from memory (the previous layout included), and
anything that cannot be recorded is reported as a :class:`RecordingWarning` and listed in
``callback.problems`` (a write that failed on the writer's thread too). At the end of training the
callback waits for the queue to drain (``flush_timeout``).

Under ``torchrun`` or ``accelerate launch`` (DDP) every process has the callback and its dataloader's shard
of each epoch. Each keeps its own training batches; at the epoch's end they are gathered on the main
process (rank 0), which maps them to example ids (a padded last batch repeats examples: an example seen
twice keeps one row) and queues the write. Checkpoints are computed by every process on its share of
the evaluation batches and gathered likewise; the main process projects and queues the write (a task
whose checkpoints are not sharded, ``shards_checkpoints = False``, is computed by the main process alone
while the others go on to the next step's gradient exchange). Only the main process opens the store.
Whether recording is on is agreed by all processes at the start of training, so they always call the same
collectives.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, replace
from pathlib import Path

import pyarrow as pa
import torch
from transformers import PreTrainedModel, TrainerCallback

from t3vis.data.loading import ExampleSet
from t3vis.errors import ModelError, StoreError, StoreLockedError
from t3vis.model.access import ModelBundle, eval_mode, model_max_length, using_t3vis_attention
from t3vis.model.families import family_of_model
from t3vis.progress import Progress, no_progress
from t3vis.record.classification_task import TokenIndex
from t3vis.record.distributed import SINGLE, Shard, agree, current_shard, gather_results, launched_as_main
from t3vis.record.dynamics import DynamicsRecorder
from t3vis.record.ingest import IngestConfig, IngestSummary, _jsonable
from t3vis.record.layouts import layouts_of
from t3vis.record.projection import MIN_TSNE_POINTS
from t3vis.record.task import RecordingTask, TrainingCapture, task_of_model
from t3vis.store.background_writer import BackgroundWriter, RecordingWarning
from t3vis.store.database import DEFAULT_STORE_PATH, RunInfo, Store

__all__ = ["T3visCallback", "TokenIndex"]


class T3visCallback(TrainerCallback):
    """Records training dynamics and checkpoints of a ``transformers.Trainer`` run into a t3vis store.

    Parameters
    ----------
    store : Store or path
        The store (created when missing). Default ``store/t3vis.duckdb``. Under a distributed launch only the
        main process opens it.
    run_id : str
        Name of the run in the store.
    eval_examples : ExampleSet, optional
        Examples to ingest checkpoints over (usually the validation split). None: dynamics only.
    train_examples : ExampleSet, optional
        The training examples, row for row in the order of the training dataset, so that the
        store holds their texts for the Data Map. Without them the texts are decoded from tokens.
    ingest_every : "epoch" or int
        Ingest a checkpoint at each epoch end, or every N optimisation steps.
    ingest_config : IngestConfig
        How checkpoints are recorded (layers, projection, importance sample, ...).
    label_names : sequence of str, optional
        Default: the model's id2label, else the eval examples' names.
    checkpoint_dir : path, optional
        Also save the weights (safetensors) and tokenizer of each ingested checkpoint into
        ``checkpoint_dir/<name>``, so the app can load them; the store records the folder,
        relative to the store's own folder when it lies inside it.
    model_name : str, optional
        The base model's name in the ``runs`` table; default: the config's ``_name_or_path``.
    flush_timeout : float
        Seconds to wait at the end of training for queued writes (held up by readers of the
        store) to finish; after that they go on in the background while the process lives.
    """

    def __init__(
        self,
        store: Store | str | Path = DEFAULT_STORE_PATH,
        *,
        run_id: str,
        eval_examples: ExampleSet | None = None,
        train_examples: ExampleSet | None = None,
        ingest_every: str | int = "epoch",
        ingest_config: IngestConfig = IngestConfig(),
        label_names=None,
        dataset: str | None = None,
        train_split: str = "train",
        checkpoint_dir: str | Path | None = None,
        model_name: str | None = None,
        progress: Progress = no_progress,
        flush_timeout: float = 600.0,
    ):
        if ingest_every != "epoch" and not (isinstance(ingest_every, int) and ingest_every > 0):
            raise ValueError(f"ingest_every must be 'epoch' or a positive number of steps, not {ingest_every!r}")
        self._store = store if isinstance(store, Store) else None
        self._store_path = None if isinstance(store, Store) else Path(store).expanduser()
        if self._store is None and launched_as_main():  # the other processes of a launch never touch the file
            self._store = Store(self._store_path, create=True)  # a path that cannot hold a store is refused now
        self.run_id = run_id
        self.eval_examples = eval_examples
        self.train_examples = train_examples
        self.ingest_every = ingest_every
        self.ingest_config = _projection_for(ingest_config, eval_examples)
        self.label_names = None if label_names is None else tuple(label_names)
        self.dataset = dataset
        self.train_split = train_split
        self.checkpoint_dir = None if checkpoint_dir is None else Path(checkpoint_dir).expanduser()
        self.model_name = model_name
        self.progress = progress
        self.flush_timeout = flush_timeout
        self.problems: list[str] = []  # what could not be recorded (also warned), failed writes included
        self._problems_lock = threading.Lock()  # the writer's thread reports its failures too
        self.writer = BackgroundWriter(on_failure=self._problem)
        self.summaries: list[IngestSummary] = []
        self._previous_layouts: dict[str, pa.Table] = {}
        self._recording = False  # agreed by every process of a distributed launch at the start of training
        self._shard: Shard = SINGLE
        self._epoch = 0  # epochs flushed
        self._run: RunInfo | None = None
        self._recorder: DynamicsRecorder | None = None  # the main process's
        self._task: RecordingTask | None = None  # found from the model at the start of training
        self._capture: TrainingCapture | None = None
        self._hook = None
        self._tokenizer = None
        self._eval_split_written = False

    @property
    def store(self) -> Store:
        """The store, opened on first use (only ever by the main process of a distributed launch)."""
        if self._store is None:
            self._store = Store(self._store_path, create=True)
        return self._store

    # -- the forward hook: the task's capture keeps what the dynamics need of each training batch ----

    def _keep_training_batch(self, module, args, kwargs, output) -> None:
        if not (module.training and self._recording and self._capture is not None):
            return
        try:
            self._capture.keep(kwargs, output)
        except Exception as exc:  # recording must never fail training: stop listening, say why
            self._remove_hook()
            self._capture.clear()
            self._problem(f"t3vis stopped recording training dynamics: a training batch could not be kept ({exc}).")

    # -- Trainer events ------------------------------------------------------------------------

    def on_train_begin(self, args, state, control, model=None, processing_class=None, train_dataloader=None,
                       **kwargs):
        self._tokenizer = processing_class or self._tokenizer
        self._shard = shard = current_shard()
        self._recording = False
        try:
            if self._tokenizer is None:
                raise ModelError("T3visCallback needs the tokenizer: pass processing_class=tokenizer to the Trainer.")
            family_of_model(model)  # refuses an architecture t3vis cannot record correctly
            self._task = task_of_model(model)
            run = self._run_info(model)
            if shard.is_main:
                self._check_run(run)
            self._capture = self._task.training_capture(getattr(train_dataloader, "dataset", None),
                                                        self.train_examples)
            ready = True
        except Exception as exc:  # recording must never fail training
            self._problem(f"{exc} Training goes on without t3vis recording.")
            ready = False
        try:  # every process records, or none: they must all call the same collectives
            ready_everywhere = agree(ready, shard)
        except Exception as exc:  # recording must never fail training
            self._problem(f"t3vis could not agree with the other processes on recording ({exc}); training goes on "
                          "without t3vis recording.")
            return
        if not all(ready_everywhere):
            if ready:
                failed = ", ".join(str(rank) for rank, flag in enumerate(ready_everywhere) if not flag)
                self._problem(f"t3vis recording could not start on process {failed} (see its warning); training "
                              "goes on without t3vis recording on every process.")
            return
        self._run = run
        self._recording = True
        if shard.is_main:
            self._write_train_examples(run, train_dataloader)
            self._recorder = DynamicsRecorder(self.store, run, split=self.train_split, writer=self.writer)
        self._epoch = 0
        self._remove_hook()
        self._hook = model.register_forward_hook(self._keep_training_batch, with_kwargs=True)

    def on_epoch_begin(self, args, state, control, **kwargs):
        if self._capture is not None:
            self._capture.clear()

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if self._recording and isinstance(self.ingest_every, int) and state.global_step % self.ingest_every == 0:
            self._ingest(model, state, name=f"step-{state.global_step}")

    def on_epoch_end(self, args, state, control, model=None, **kwargs):
        if not self._recording:
            return
        completed = self._epoch + 1
        self._flush_epoch()
        if self.ingest_every == "epoch":
            self._ingest(model, state, name=f"epoch-{completed}")

    def on_train_end(self, args, state, control, **kwargs):
        try:
            # training stopped mid-epoch (max_steps): keep what was seen, if any process saw anything
            if self._recording and any(agree(self._capture.pending > 0, self._shard)):
                self._flush_epoch()
        except Exception as exc:  # recording must never fail training, not even at its end
            self._problem(f"t3vis could not record the last, partial epoch: {exc}")
        finally:
            self._remove_hook()
        if self._shard.is_main:
            self.flush(self.flush_timeout)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait for the queued writes; True when all are in the store. Warns when ``timeout`` passed first."""
        if self.writer.flush(timeout):
            return True
        self._problem(f"{self.writer.pending} t3vis writes are still waiting for the store {self.store.path}, "
                      "held by another process; they are written when it frees, while this process runs.")
        return False

    def _problem(self, message: str) -> None:
        """List ``message`` in :attr:`problems` and warn it; called by the training loop's thread and the writer's."""
        with self._problems_lock:
            self.problems.append(message)
        warnings.warn(message, RecordingWarning, stacklevel=3)

    def _remove_hook(self) -> None:
        if self._hook is not None:
            self._hook.remove()
            self._hook = None

    # -- work ----------------------------------------------------------------------------------

    def _flush_epoch(self) -> None:
        """Log the epoch's kept training batches (mapped to example ids by the task) and queue their write;
        under a distributed launch, the main process does it with every process's batches."""
        epoch, self._epoch = self._epoch, self._epoch + 1
        if self._shard.distributed and not self._gather_batches():
            return
        try:
            for problem in self._capture.flush(self._recorder):
                self._problem(problem)
            if not self._recorder.end_epoch(epoch):
                self._problem(f"t3vis recorded no training dynamics in epoch {epoch}: {self._capture.missing_hint}. "
                              "The Data Map of this run will be empty.")
        except Exception as exc:  # recording must never fail training
            self._capture.clear()
            self._problem(f"t3vis could not record the training dynamics of this epoch: {exc}")

    def _gather_batches(self) -> bool:
        """Send this process's kept batches to the main process, which takes them all, interleaved in step order
        (so that an example a padded batch repeats keeps its latest row); True on the main process."""
        try:
            batches = gather_results(self._capture.take_batches, self._shard, what="gathering the training batches")
        except Exception as exc:  # recording must never fail training; this process took part all the same
            self._problem(f"t3vis could not record the training dynamics of this epoch: {exc}")
            return False
        if batches is None:
            return False
        for step in range(max(len(kept) for kept in batches)):
            self._capture.add_batches([kept[step] for kept in batches if step < len(kept)])
        return True

    def _ingest(self, model: PreTrainedModel, state, *, name: str) -> None:
        if self.eval_examples is None:
            return
        shard = self._shard
        sharded = shard.distributed and self._task.shards_checkpoints
        if not (shard.is_main or sharded):
            return  # the main process computes this task's checkpoints alone
        try:
            details = dict(run_id=self.run_id, checkpoint=name, step=state.global_step, epoch=state.epoch,
                           dataset=self.dataset, extra_metrics=_last_logged(state), config=self.ingest_config,
                           progress=self.progress if shard.is_main else no_progress,
                           previous=self._previous_layouts, **({"shard": shard} if sharded else {}))
            # all three restored in finally; a mixed-precision run's checkpoint is recorded in its weights' precision
            with eval_mode(model), using_t3vis_attention(model), without_mixed_precision(model):
                record = self._task.compute_checkpoint(self._bundle(model), self.eval_examples,
                                                       first_of_split=not self._eval_split_written, **details)
            self._eval_split_written = True
            if record is None:
                return  # the main process projects and writes it
            # Saved after the computation, which every process of a launch must reach without waiting for this.
            path = self._save_weights(model, name)
            if path is not None:
                record = replace(record, checkpoint=replace(record.checkpoint, path=path))
        except Exception as exc:  # recording must never fail training
            self._problem(f"t3vis could not record checkpoint {name}: {exc}")
            return
        self._previous_layouts = layouts_of(record)
        self.writer.submit(f"checkpoint {name}", lambda: record.write(self.store))
        self.summaries.append(record.summary)

    def _save_weights(self, model: PreTrainedModel, name: str) -> str | None:
        if self.checkpoint_dir is None:
            return None
        folder = self.checkpoint_dir / name
        model.save_pretrained(folder)
        self._tokenizer.save_pretrained(folder)
        store_folder = self.store.path.resolve().parent
        try:
            return str(folder.resolve().relative_to(store_folder))
        except ValueError:
            return str(folder.resolve())

    def _bundle(self, model: PreTrainedModel) -> ModelBundle:
        run = self._run
        return ModelBundle(
            model=model, tokenizer=self._tokenizer, name=run.model, label_names=run.label_names,
            num_layers=run.num_layers, num_heads=run.num_heads,
            max_length=model_max_length(self._task.encoder(model), self._tokenizer),
            classifier_was_initialised=False, task=run.task,
        )

    def _run_info(self, model: PreTrainedModel) -> RunInfo:
        config = model.config
        names = self._task.run_label_names(model, self.label_names, self.eval_examples or self.train_examples)
        max_length = model_max_length(self._task.encoder(model), self._tokenizer)
        if self.ingest_config.max_length:
            max_length = min(max_length, self.ingest_config.max_length)
        return RunInfo(
            run_id=self.run_id,
            task=self._task.spec.name,
            model=self.model_name or str(getattr(config, "_name_or_path", "") or type(model).__name__),
            dataset=self.dataset, label_names=tuple(str(name) for name in names),
            num_layers=int(config.num_hidden_layers), num_heads=int(config.num_attention_heads),
            max_length=max_length, config=self._recording_options(max_length),
        )

    def _recording_options(self, max_length: int) -> dict:
        """``runs.config`` of a recorded run: how the checkpoints are ingested and, for prompt → completion pairs,
        the data's layout (the app encodes an example again as the run did)."""
        data = self.eval_examples if self.eval_examples is not None else self.train_examples
        options = {**_jsonable(asdict(self.ingest_config)), "max_length": max_length}
        return {"recorded_by": "T3visCallback", "ingest_every": self.ingest_every, **options,
                **({"format": data.format} if isinstance(getattr(data, "format", None), str) else {})}

    def _check_run(self, run: RunInfo) -> None:
        """Refuse, before training, a run name the store already uses for another model or labels."""
        try:
            existing = self.store.run(run.run_id)
        except StoreLockedError:
            return  # cannot look now; the write would report it
        if existing is not None and existing.task != run.task:
            raise StoreError(f"Run {run.run_id!r} already exists in {self.store.path} with task {existing.task!r}; "
                             f"this model's task is {run.task!r}. Choose another run_id.")
        if existing is not None and (existing.label_names, existing.num_layers, existing.num_heads) != \
                (run.label_names, run.num_layers, run.num_heads):
            raise StoreError(f"Run {run.run_id!r} already exists in {self.store.path} with labels "
                             f"{list(existing.label_names)} and {existing.num_layers}x{existing.num_heads} heads; "
                             f"this model has labels {list(run.label_names)} and {run.num_layers}x{run.num_heads}. "
                             "Choose another run_id.")

    def _write_train_examples(self, run: RunInfo, train_dataloader) -> None:
        """The training examples' texts (and per-split tables), keyed as the dynamics key them."""
        if self.train_examples is None:
            return
        try:
            rows, tables = self._task.training_examples(run, self.train_examples, train_dataloader.dataset,
                                                        self._tokenizer)
        except Exception as exc:  # recording must never fail training
            self._problem(f"{exc} The training texts are not recorded.")
            return
        self.writer.submit("the training examples",
                           lambda: self.store.write_examples(run, self.train_split, rows, tables or None))


def _projection_for(config: IngestConfig, eval_examples) -> IngestConfig:
    """The config with PCA instead of t-SNE when the evaluation set is too small for t-SNE: the checkpoints are
    recorded all the same (laid out by PCA), with a warning, instead of failing."""
    if config.projection != "tsne" or eval_examples is None or len(eval_examples) >= MIN_TSNE_POINTS:
        return config
    warnings.warn(f"t-SNE needs at least {MIN_TSNE_POINTS} evaluation examples and eval_examples has "
                  f"{len(eval_examples)}: the checkpoints are laid out by PCA (ingest_config.projection='pca').",
                  RecordingWarning, stacklevel=3)
    return replace(config, projection="pca")


@contextmanager
def without_mixed_precision(model: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """The model's own forward, in the precision of its weights, for the block; restored in ``finally``.

    A Trainer with ``bf16=True`` or ``fp16=True`` (accelerate's native AMP) replaces ``model.forward`` by one
    that runs under ``torch.autocast``, and keeps the original as ``model._original_forward``: a checkpoint
    computed through it would get half-precision predictions, attention and head importance, unlike the same
    weights ingested later by ``t3vis ingest`` or analysed live by the app. Any autocast around the block is off
    too.
    """
    wrapped = model.__dict__.get("forward")
    original = model.__dict__.get("_original_forward")
    swap = wrapped is not None and original is not None
    if swap:
        model.forward = original
    try:
        device = next(model.parameters()).device.type
        if torch.amp.is_autocast_available(device):
            with torch.autocast(device_type=device, enabled=False):
                yield model
        else:
            yield model
    finally:
        if swap:
            model.forward = wrapped


def _last_logged(state) -> dict:
    """Numbers the Trainer logged at the current step."""
    values: dict = {}
    for entry in state.log_history:
        if entry.get("step") == state.global_step:
            values.update({key: value for key, value in entry.items() if isinstance(value, (int, float))})
    return values
