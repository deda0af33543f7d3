"""Recording a ``transformers.Trainer`` run: one callback.

    trainer = Trainer(..., callbacks=[T3visCallback("store/t3vis.duckdb", run_id="sst2",
                                                    eval_examples=load_examples("dev.tsv"))])

During training it records, for every training example and epoch, the gold-label probability
and correctness *from the training forward passes themselves* (a forward hook keeps the
logits of each training batch; nothing runs an extra pass). At each epoch end, or every N
steps, it ingests a checkpoint over the evaluation examples (predictions, projections, head
importance, aggregate attention). Every write is one short transaction, so the app can stay
open on the same store in another process and sees each checkpoint once it is complete.

Batches are shuffled, accumulated and loaded by worker processes, and the Trainer drops
dataset columns the model does not take (such as an id). The callback therefore recognises
each training row by its token ids: before training it indexes the training set by the tokens
of each example, and at the end of the epoch maps every logged row back to its example id
(the row's index in the training set). Rows are matched on tokens and gold label, so that two
identical texts with different labels keep their own ids; identical examples take their ids in
turn. The gold labels come from the training items themselves, so recording works when the
model call carries no ``labels`` (``label_smoothing_factor > 0``, ``compute_loss_func``).

Recording never fails or stalls training: every store write goes through a
:class:`~t3vis.store.background_writer.BackgroundWriter` (a queue and a thread that waits out readers
holding the store), checkpoints are computed from memory (the previous layout included), and
anything that cannot be recorded is reported as a :class:`RecordingWarning`. At the end of
training the callback waits for the queue to drain (``flush_timeout``).
"""

from __future__ import annotations

import hashlib
import warnings
from collections import defaultdict
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch
from transformers import PreTrainedModel, TrainerCallback

from t3vis.data.loading import ExampleSet
from t3vis.record.dynamics import DynamicsRecorder
from t3vis.model.encoding import encode
from t3vis.store.background_writer import BackgroundWriter, RecordingWarning
from t3vis.errors import ModelError, StoreError, StoreLockedError
from t3vis.record.ingest import IngestConfig, IngestSummary, compute_checkpoint, examples_table, label_names_for
from t3vis.model.access import ModelBundle, eval_mode, model_max_length, using_t3vis_attention
from t3vis.progress import Progress, no_progress
from t3vis.store.database import DEFAULT_STORE_PATH, RunInfo, Store
from t3vis.model.summarizer import MODEL_TYPE as SUMMARIZER_TYPE
from t3vis.record.summarization import compute_summarizer_checkpoint, document_examples_table, split_tables
from t3vis.tasks import EXTRACTIVE_SUMMARIZATION, SEQUENCE_CLASSIFICATION, SUMMARY_LABELS


def _token_key(ids) -> bytes:
    """A fingerprint of one example's real token ids."""
    return hashlib.blake2b(np.asarray(ids, dtype=np.int64).tobytes(), digest_size=12).digest()


class TokenIndex:
    """Maps a training row (token ids, and gold label when known) back to its example id.

    Identical examples (same tokens and label) take their ids in turn. A row whose label is
    unknown (the model call carried no labels) is matched on its tokens alone.
    """

    def __init__(self, token_rows, example_ids: np.ndarray, labels: np.ndarray):
        self.labels = np.asarray(labels, dtype=np.int64)  # (N,) gold label of each example id
        self._by_tokens_and_label: dict[tuple[bytes, int], list[int]] = defaultdict(list)
        self._by_tokens: dict[bytes, list[int]] = defaultdict(list)
        for ids, example_id, label in zip(token_rows, example_ids, self.labels):
            key = _token_key(ids)
            self._by_tokens_and_label[(key, int(label))].append(int(example_id))
            self._by_tokens[key].append(int(example_id))
        self._turn: dict = defaultdict(int)
        self.unmatched = 0

    def new_epoch(self) -> None:
        self._turn.clear()
        self.unmatched = 0

    def lookup(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None,
               labels: torch.Tensor | None = None) -> np.ndarray:
        """Example ids (B,) of a padded batch input_ids (B, T) with labels (B,) or None; -1 where nothing matches."""
        rows = input_ids.cpu().numpy()
        mask = np.ones_like(rows, dtype=bool) if attention_mask is None else attention_mask.cpu().numpy().astype(bool)
        gold = None if labels is None else labels.cpu().numpy().reshape(-1)
        found = np.full(len(rows), -1, dtype=np.int64)
        for index, (row, real) in enumerate(zip(rows, mask)):
            tokens = _token_key(row[real])
            if gold is None:
                key, candidates = tokens, self._by_tokens.get(tokens)
            else:
                key = (tokens, int(gold[index]))
                candidates = self._by_tokens_and_label.get(key)
            if not candidates:
                self.unmatched += 1
                continue
            found[index] = candidates[self._turn[key] % len(candidates)]
            self._turn[key] += 1
        return found


class T3visCallback(TrainerCallback):
    """Records training dynamics and checkpoints of a ``transformers.Trainer`` run into a t3vis store.

    Parameters
    ----------
    store : Store or path
        The store (created when missing). Default ``store/t3vis.duckdb``.
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
        self.store = store if isinstance(store, Store) else Store(store, create=True)
        self.run_id = run_id
        self.eval_examples = eval_examples
        self.train_examples = train_examples
        self.ingest_every = ingest_every
        self.ingest_config = ingest_config
        self.label_names = None if label_names is None else tuple(label_names)
        self.dataset = dataset
        self.train_split = train_split
        self.checkpoint_dir = None if checkpoint_dir is None else Path(checkpoint_dir)
        self.model_name = model_name
        self.progress = progress
        self.flush_timeout = flush_timeout
        self.writer = BackgroundWriter()
        self.summaries: list[IngestSummary] = []
        self.problems: list[str] = []  # what could not be recorded (also warned)
        self._previous_layouts: pa.Table | None = None
        self._recorder: DynamicsRecorder | None = None
        self._index: TokenIndex | None = None
        self._hook = None
        self._batches: list[tuple[torch.Tensor, torch.Tensor | None, torch.Tensor, torch.Tensor]] = []
        self._tokenizer = None
        self._summarizing = False  # the model is an extractive summarizer: dynamics per sentence
        self._eval_split_written = False

    # -- the forward hook: keeps each training batch's tokens, logits and labels -----------------

    def _keep_training_batch(self, module, args, kwargs, output) -> None:
        if not module.training or self._recorder is None:
            return
        if self._summarizing:  # ids, sentence logits, oracle labels, sentence mask: all passed by the collator
            names = ("example_ids", "labels", "sentence_mask")
            if all(kwargs.get(name) is not None for name in names) and getattr(output, "logits", None) is not None:
                self._batches.append((kwargs["example_ids"].detach(), output.logits.detach(),
                                      kwargs["labels"].detach(), kwargs["sentence_mask"].detach()))
            return
        input_ids = kwargs.get("input_ids")
        logits = getattr(output, "logits", None)
        if input_ids is None or logits is None:
            return
        labels, mask = kwargs.get("labels"), kwargs.get("attention_mask")
        # No labels in the call (label smoothing, compute_loss_func): the index supplies them.
        self._batches.append((input_ids.detach(), None if mask is None else mask.detach(), logits.detach(),
                              None if labels is None else labels.detach()))

    # -- Trainer events ------------------------------------------------------------------------

    def on_train_begin(self, args, state, control, model=None, processing_class=None, train_dataloader=None,
                       **kwargs):
        self._tokenizer = processing_class or self._tokenizer
        try:
            if self._tokenizer is None:
                raise ModelError("T3visCallback needs the tokenizer: pass processing_class=tokenizer to the Trainer.")
            self._summarizing = getattr(model.config, "model_type", None) == SUMMARIZER_TYPE
            run = self._run_info(model)
            self._check_run(run)
            if not self._summarizing:  # a summarizer's batches carry their example ids
                self._index = self._index_training_set(train_dataloader)
        except Exception as exc:  # recording must never fail training
            self._problem(f"{exc} Training goes on without t3vis recording.")
            return
        self._write_train_examples(run, train_dataloader)
        self._recorder = DynamicsRecorder(self.store, run, split=self.train_split, writer=self.writer)
        self._remove_hook()
        self._hook = model.register_forward_hook(self._keep_training_batch, with_kwargs=True)

    def on_epoch_begin(self, args, state, control, **kwargs):
        self._batches.clear()

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if self._recorder is not None and isinstance(self.ingest_every, int) \
                and state.global_step % self.ingest_every == 0:
            self._ingest(model, state, name=f"step-{state.global_step}")

    def on_epoch_end(self, args, state, control, model=None, **kwargs):
        if self._recorder is None:
            return
        completed = self._recorder.epoch + 1
        self._flush_epoch()
        if self.ingest_every == "epoch":
            self._ingest(model, state, name=f"epoch-{completed}")

    def on_train_end(self, args, state, control, **kwargs):
        try:
            if self._recorder is not None and self._batches:
                self._flush_epoch()  # training stopped mid-epoch (max_steps): keep what was seen
        finally:
            self._remove_hook()
        self.flush(self.flush_timeout)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait for the queued writes; True when all are in the store. Warns when ``timeout`` passed first."""
        if self.writer.flush(timeout):
            return True
        self._problem(f"{self.writer.pending} t3vis writes are still waiting for the store {self.store.path}, "
                      "held by another process; they are written when it frees, while this process runs.")
        return False

    def _problem(self, message: str) -> None:
        self.problems.append(message)
        warnings.warn(message, RecordingWarning, stacklevel=3)

    def _remove_hook(self) -> None:
        if self._hook is not None:
            self._hook.remove()
            self._hook = None

    # -- work ----------------------------------------------------------------------------------

    def _flush_epoch(self) -> None:
        """Map the epoch's training rows to example ids and queue their write."""
        if self._summarizing:
            return self._flush_summarizer_epoch()
        try:
            self._index.new_epoch()
            for input_ids, mask, logits, labels in self._batches:
                ids = self._index.lookup(input_ids, mask, labels)
                matched = ids >= 0
                ids = ids[matched]
                self._recorder.log_batch(ids, logits.cpu()[torch.from_numpy(matched)], self._index.labels[ids])
            self._batches.clear()
            if self._index.unmatched:
                self._problem(f"{self._index.unmatched} training rows matched no training example by their tokens "
                              "and label (does the collator change tokens?); they were left out of the training "
                              "dynamics.")
            epoch = self._recorder.epoch
            if not self._recorder.end_epoch():
                self._problem(f"t3vis recorded no training dynamics in epoch {epoch}: no training forward pass gave "
                              "logits for the training examples. The Data Map of this run will be empty.")
        except Exception as exc:  # recording must never fail training
            self._batches.clear()
            self._problem(f"t3vis could not record the training dynamics of this epoch: {exc}")

    def _flush_summarizer_epoch(self) -> None:
        try:
            for example_ids, logits, labels, mask in self._batches:
                self._recorder.log_units(example_ids, logits, labels, mask)
            self._batches.clear()
            epoch = self._recorder.epoch
            if not self._recorder.end_epoch():
                self._problem(f"t3vis recorded no training dynamics in epoch {epoch}: no training batch carried "
                              "example_ids, labels and sentence_mask (use t3vis.record.trainer_data's "
                              "SummarizationDataset and SummarizationCollator).")
        except Exception as exc:  # recording must never fail training
            self._batches.clear()
            self._problem(f"t3vis could not record the training dynamics of this epoch: {exc}")

    def _ingest(self, model: PreTrainedModel, state, *, name: str) -> None:
        if self.eval_examples is None:
            return
        try:
            path = self._save_weights(model, name)
            details = dict(run_id=self.run_id, checkpoint=name, step=state.global_step, epoch=state.epoch,
                           dataset=self.dataset, path=path, extra_metrics=_last_logged(state),
                           config=self.ingest_config, progress=self.progress, previous=self._previous_layouts)
            with eval_mode(model), using_t3vis_attention(model):  # both restored in finally
                if self._summarizing:
                    record = compute_summarizer_checkpoint(self._bundle(model), self.eval_examples,
                                                           with_split_tables=not self._eval_split_written, **details)
                    self._eval_split_written = True
                else:
                    record = compute_checkpoint(self._bundle(model), self.eval_examples, **details)
        except Exception as exc:  # recording must never fail training
            self._problem(f"t3vis could not record checkpoint {name}: {exc}")
            return
        self._previous_layouts = record.results.tables.get("projections")
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
        run = self._recorder.run
        return ModelBundle(
            model=model, tokenizer=self._tokenizer, name=run.model, label_names=run.label_names,
            num_layers=run.num_layers, num_heads=run.num_heads,
            max_length=model_max_length(getattr(model, "encoder", model) if self._summarizing else model,
                                        self._tokenizer),
            classifier_was_initialised=False, task=run.task,
        )

    def _run_info(self, model: PreTrainedModel) -> RunInfo:
        config = model.config
        names = SUMMARY_LABELS if self._summarizing else self.label_names
        if names is None:
            source = self.eval_examples or self.train_examples
            names = label_names_for(tuple(str(config.id2label[index]) for index in range(config.num_labels)),
                                    None if source is None else source.label_names)
        max_length = model_max_length(model.encoder if self._summarizing else model, self._tokenizer)
        if self.ingest_config.max_length:
            max_length = min(max_length, self.ingest_config.max_length)
        return RunInfo(
            run_id=self.run_id,
            task=EXTRACTIVE_SUMMARIZATION if self._summarizing else SEQUENCE_CLASSIFICATION,
            model=self.model_name or str(getattr(config, "_name_or_path", "") or type(model).__name__),
            dataset=self.dataset, label_names=tuple(str(name) for name in names),
            num_layers=int(config.num_hidden_layers), num_heads=int(config.num_attention_heads),
            max_length=max_length, config={"recorded_by": "T3visCallback", "ingest_every": self.ingest_every},
        )

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

    def _index_training_set(self, train_dataloader) -> TokenIndex:
        dataset = getattr(train_dataloader, "dataset", None)
        if dataset is None or not hasattr(dataset, "__len__"):
            raise ModelError("T3visCallback needs a map-style training dataset (with len()) to tell examples "
                             "apart; iterable datasets are not supported.")
        items = [dataset[index] for index in range(len(dataset))]
        rows = [_item_tokens(item) for item in items]
        if self.train_examples is not None and len(self.train_examples) == len(items):
            labels = np.asarray(self.train_examples.labels, dtype=np.int64)
        else:
            labels = np.array([_item_label(item) for item in items], dtype=np.int64)
        return TokenIndex(rows, np.arange(len(rows)), labels)

    def _write_train_examples(self, run: RunInfo, train_dataloader) -> None:
        examples = self.train_examples
        if examples is None:
            return
        dataset = train_dataloader.dataset
        if self._summarizing:
            return self._write_train_documents(run, dataset)
        if len(examples) != len(dataset):
            self._problem(f"train_examples has {len(examples)} rows but the training dataset has {len(dataset)}; "
                          "they must be the same examples in the same order. The training texts are not recorded.")
            return
        encoded = encode(self._tokenizer, examples.texts, examples.text_pairs, max_length=run.max_length)
        rows = examples_table(examples, encoded, run.label_names)
        rows = rows.set_column(0, "example_id", pa.array(np.arange(len(examples)), type=pa.int64()))  # ids are training-set row indices
        self.writer.submit("the training examples", lambda: self.store.write_examples(run, self.train_split, rows))


    def _write_train_documents(self, run: RunInfo, dataset) -> None:
        """The training documents and their sentences, keyed by the documents' own example ids."""
        documents = self.train_examples
        encoded = getattr(dataset, "encoded", None)
        if encoded is None or len(encoded) != len(documents):
            self._problem("train_examples must be the DocumentSet the SummarizationDataset was made from; the "
                          "training documents are not recorded.")
            return
        rows = document_examples_table(documents, encoded)
        units = split_tables(documents, encoded, no_progress, with_baselines=False)
        self.writer.submit("the training documents",
                           lambda: self.store.write_examples(run, self.train_split, rows, units))


def _item_tokens(item) -> list[int]:
    if not isinstance(item, dict) or "input_ids" not in item:
        raise ModelError("T3visCallback needs training items that hold 'input_ids' (a tokenised dataset), "
                         "to recognise each example in shuffled batches.")
    ids = np.asarray(item["input_ids"].tolist() if isinstance(item["input_ids"], torch.Tensor) else item["input_ids"])
    mask = item.get("attention_mask")
    if mask is not None:  # a dataset padded in advance: only real tokens identify the example
        ids = ids[np.asarray(mask.tolist() if isinstance(mask, torch.Tensor) else mask, dtype=bool)]
    return ids.tolist()


def _item_label(item) -> int:
    label = item.get("labels", item.get("label")) if isinstance(item, dict) else None
    if label is None:
        raise ModelError("T3visCallback needs the gold label of each training item ('labels' or 'label'), or "
                         "train_examples with the labels in the order of the training dataset.")
    label = label.item() if isinstance(label, torch.Tensor) else label
    if isinstance(label, (list, tuple, np.ndarray)):
        raise ModelError("T3visCallback records sequence classification: each training item needs one label.")
    return int(label)


def _last_logged(state) -> dict:
    """Numbers the Trainer logged at the current step."""
    values: dict = {}
    for entry in state.log_history:
        if entry.get("step") == state.global_step:
            values.update({key: value for key, value in entry.items() if isinstance(value, (int, float))})
    return values
