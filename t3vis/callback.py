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
(the row's index in the training set). Identical token sequences are given their ids in turn.
"""

from __future__ import annotations

import hashlib
import warnings
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch
from transformers import PreTrainedModel, TrainerCallback

from t3vis.data_loading import ExampleSet
from t3vis.dynamics import DynamicsRecorder
from t3vis.encoding import encode
from t3vis.errors import ModelError
from t3vis.ingest import IngestConfig, IngestSummary, examples_table, ingest_checkpoint
from t3vis.model_access import ModelBundle, model_max_length, using_t3vis_attention
from t3vis.progress import Progress, no_progress
from t3vis.store import DEFAULT_STORE_PATH, RunInfo, Store


def _token_key(ids) -> bytes:
    """A fingerprint of one example's real token ids."""
    return hashlib.blake2b(np.asarray(ids, dtype=np.int64).tobytes(), digest_size=12).digest()


class TokenIndex:
    """Maps the token ids of a training row back to its example id; duplicates take their ids in turn."""

    def __init__(self, token_rows, example_ids: np.ndarray):
        self._ids: dict[bytes, list[int]] = defaultdict(list)
        for ids, example_id in zip(token_rows, example_ids):
            self._ids[_token_key(ids)].append(int(example_id))
        self._turn: dict[bytes, int] = defaultdict(int)
        self.unmatched = 0

    def new_epoch(self) -> None:
        self._turn.clear()
        self.unmatched = 0

    def lookup(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None) -> np.ndarray:
        """Example ids (B,) of a padded batch input_ids (B, T); -1 where a row matches no example."""
        rows = input_ids.cpu().numpy()
        mask = np.ones_like(rows, dtype=bool) if attention_mask is None else attention_mask.cpu().numpy().astype(bool)
        found = np.full(len(rows), -1, dtype=np.int64)
        for index, (row, real) in enumerate(zip(rows, mask)):
            key = _token_key(row[real])
            candidates = self._ids.get(key)
            if not candidates:
                self.unmatched += 1
                continue
            found[index] = candidates[self._turn[key] % len(candidates)]
            self._turn[key] += 1
        return found


@contextmanager
def _evaluating(model: PreTrainedModel) -> Iterator[PreTrainedModel]:
    """Eval mode and t3vis attention for the duration; the training state is restored in ``finally``."""
    was_training = model.training
    model.eval()
    try:
        with using_t3vis_attention(model):
            yield model
    finally:
        model.train(was_training)


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
        task: str | None = None,
        train_split: str = "train",
        checkpoint_dir: str | Path | None = None,
        model_name: str | None = None,
        progress: Progress = no_progress,
    ):
        if ingest_every != "epoch" and not (isinstance(ingest_every, int) and ingest_every > 0):
            raise ValueError(f"ingest_every must be 'epoch' or a positive number of steps, not {ingest_every!r}")
        self.store = store if isinstance(store, Store) else Store(store)
        self.run_id = run_id
        self.eval_examples = eval_examples
        self.train_examples = train_examples
        self.ingest_every = ingest_every
        self.ingest_config = ingest_config
        self.label_names = None if label_names is None else tuple(label_names)
        self.task = task
        self.train_split = train_split
        self.checkpoint_dir = None if checkpoint_dir is None else Path(checkpoint_dir)
        self.model_name = model_name
        self.progress = progress
        self.summaries: list[IngestSummary] = []
        self._recorder: DynamicsRecorder | None = None
        self._index: TokenIndex | None = None
        self._hook = None
        self._batches: list[tuple[torch.Tensor, torch.Tensor | None, torch.Tensor, torch.Tensor]] = []
        self._tokenizer = None

    # -- the forward hook: keeps each training batch's tokens, logits and labels -----------------

    def _keep_training_batch(self, module, args, kwargs, output) -> None:
        if not module.training or self._recorder is None:
            return
        input_ids, labels = kwargs.get("input_ids"), kwargs.get("labels")
        logits = getattr(output, "logits", None)
        if input_ids is None or labels is None or logits is None:
            return  # not a classification training step (e.g. a custom loss without labels)
        mask = kwargs.get("attention_mask")
        self._batches.append((input_ids.detach(), None if mask is None else mask.detach(), logits.detach(),
                              labels.detach()))

    # -- Trainer events ------------------------------------------------------------------------

    def on_train_begin(self, args, state, control, model=None, processing_class=None, train_dataloader=None,
                       **kwargs):
        self._tokenizer = processing_class or self._tokenizer
        if self._tokenizer is None:
            raise ModelError("T3visCallback needs the tokenizer: pass processing_class=tokenizer to the Trainer.")
        run = self._run_info(model)
        self._index = self._index_training_set(train_dataloader)
        self._write_train_examples(run, train_dataloader)
        self._recorder = DynamicsRecorder(self.store, run, split=self.train_split)
        self._remove_hook()
        self._hook = model.register_forward_hook(self._keep_training_batch, with_kwargs=True)

    def on_epoch_begin(self, args, state, control, **kwargs):
        self._batches.clear()

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if isinstance(self.ingest_every, int) and state.global_step % self.ingest_every == 0:
            self._ingest(model, state, name=f"step-{state.global_step}")

    def on_epoch_end(self, args, state, control, model=None, **kwargs):
        self._flush_epoch()
        if self.ingest_every == "epoch":
            self._ingest(model, state, name=f"epoch-{self._recorder.epoch}")

    def on_train_end(self, args, state, control, **kwargs):
        try:
            if self._batches:
                self._flush_epoch()  # training stopped mid-epoch (max_steps): keep what was seen
        finally:
            self._remove_hook()

    def _remove_hook(self) -> None:
        if self._hook is not None:
            self._hook.remove()
            self._hook = None

    # -- work ----------------------------------------------------------------------------------

    def _flush_epoch(self) -> None:
        """Map the epoch's training rows to example ids and write them (one transaction)."""
        self._index.new_epoch()
        for input_ids, mask, logits, labels in self._batches:
            ids = self._index.lookup(input_ids, mask)
            matched = torch.from_numpy(ids >= 0)
            self._recorder.log_batch(ids[matched.numpy()], logits.cpu()[matched], labels.cpu()[matched])
        self._batches.clear()
        if self._index.unmatched:
            warnings.warn(f"{self._index.unmatched} training rows matched no training example by their tokens "
                          "(does the collator change tokens?); they were left out of the training dynamics.")
        self._recorder.end_epoch()

    def _ingest(self, model: PreTrainedModel, state, *, name: str) -> None:
        if self.eval_examples is None:
            return
        path = self._save_weights(model, name)
        with _evaluating(model):
            bundle = self._bundle(model)
            summary = ingest_checkpoint(
                self.store, bundle, self.eval_examples, run_id=self.run_id, checkpoint=name,
                step=state.global_step, epoch=state.epoch, task=self.task, path=path,
                extra_metrics=_last_logged(state), config=self.ingest_config, progress=self.progress,
            )
        self.summaries.append(summary)

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
            max_length=model_max_length(model, self._tokenizer), classifier_was_initialised=False,
        )

    def _run_info(self, model: PreTrainedModel) -> RunInfo:
        config = model.config
        names = self.label_names
        if names is None:
            names = tuple(config.id2label[index] for index in range(config.num_labels))
            generic = all(name == f"LABEL_{index}" for index, name in enumerate(names))
            source = self.eval_examples or self.train_examples
            if generic and source is not None and len(source.label_names) == config.num_labels:
                names = tuple(source.label_names)
        max_length = model_max_length(model, self._tokenizer)
        if self.ingest_config.max_length:
            max_length = min(max_length, self.ingest_config.max_length)
        return RunInfo(
            run_id=self.run_id,
            model=self.model_name or str(getattr(config, "_name_or_path", "") or type(model).__name__),
            task=self.task, label_names=tuple(str(name) for name in names),
            num_layers=int(config.num_hidden_layers), num_heads=int(config.num_attention_heads),
            max_length=max_length, config={"recorded_by": "T3visCallback", "ingest_every": self.ingest_every},
        )

    def _index_training_set(self, train_dataloader) -> TokenIndex:
        dataset = getattr(train_dataloader, "dataset", None)
        if dataset is None or not hasattr(dataset, "__len__"):
            raise ModelError("T3visCallback needs a map-style training dataset (with len()) to tell examples "
                             "apart; iterable datasets are not supported.")
        rows = [_item_tokens(dataset[index]) for index in range(len(dataset))]
        return TokenIndex(rows, np.arange(len(rows)))

    def _write_train_examples(self, run: RunInfo, train_dataloader) -> None:
        examples = self.train_examples
        if examples is None:
            return
        dataset = train_dataloader.dataset
        if len(examples) != len(dataset):
            raise ModelError(f"train_examples has {len(examples)} rows but the training dataset has "
                             f"{len(dataset)}; they must be the same examples in the same order.")
        encoded = encode(self._tokenizer, examples.texts, examples.text_pairs, max_length=run.max_length)
        rows = examples_table(examples, encoded, run.label_names)
        rows = rows.set_column(0, "example_id", pa.array(np.arange(len(examples)), type=pa.int64()))  # ids are training-set row indices
        self.store.write_examples(run, self.train_split, rows)


def _item_tokens(item) -> list[int]:
    if not isinstance(item, dict) or "input_ids" not in item:
        raise ModelError("T3visCallback needs training items that hold 'input_ids' (a tokenised dataset), "
                         "to recognise each example in shuffled batches.")
    ids = np.asarray(item["input_ids"].tolist() if isinstance(item["input_ids"], torch.Tensor) else item["input_ids"])
    mask = item.get("attention_mask")
    if mask is not None:  # a dataset padded in advance: only real tokens identify the example
        ids = ids[np.asarray(mask.tolist() if isinstance(mask, torch.Tensor) else mask, dtype=bool)]
    return ids.tolist()


def _last_logged(state) -> dict:
    """Numbers the Trainer logged at the current step."""
    values: dict = {}
    for entry in state.log_history:
        if entry.get("step") == state.global_step:
            values.update({key: value for key, value in entry.items() if isinstance(value, (int, float))})
    return values
