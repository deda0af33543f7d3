"""Generation as a recording task: a causal language model fine-tuned on prompt → completion pairs.

Data: :func:`t3vis.data.completions.load_completions` (prompt/completion, question/answer, Alpaca or chat
columns); the loss is on the completion tokens only (prompt labels -100, as TRL's ``completion_only_loss``). A unit
is a token of the reference completion, scored teacher forced; a Data Map point is a training example. The callback
recognises each training row by its token ids, as for sequence classification, and scores each completion token of
a training pass right away on the pass's own logits (gold log-probability, rank, argmax), keeping a few numbers per
token and never an epoch's (T, V) logits. TRL's SFTTrainer (1.x) computes its loss with a fused LM head that returns
each label's log-probability and whether it was the top token instead of logits: those are recorded (the rank and
the argmax id stay NULL).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from transformers import PreTrainedModel

from t3vis.data.completions import IGNORED, CompletionSet, load_completions
from t3vis.errors import DataError, ModelError
from t3vis.model.access import ModelBundle
from t3vis.model.adapters import unwrapped
from t3vis.model.language_models import load_language_model
from t3vis.model.token_scores import score_tokens, scored_positions
from t3vis.record.classification_task import TokenIndex, _item_tokens
from t3vis.record.dynamics import DynamicsRecorder
from t3vis.record.generation import compute_generation_checkpoint, ingest_generation_checkpoint
from t3vis.record.ingest import CheckpointRecord, IngestSummary, extra_json_lines
from t3vis.record.kept_batches import KeptBatches
from t3vis.record.sources import DataSource, ModelSource
from t3vis.store.database import RunInfo, Store
from t3vis.store.generation_rows import completion_token_rows
from t3vis.store.rows import example_rows
from t3vis.tasks import GENERATION, SPECS

_LANGUAGE_MODEL_CLASSES = ("ForCausalLM", "LMHeadModel")  # LlamaForCausalLM, GPT2LMHeadModel, ...


class CompletionCapture(KeptBatches):
    """Keeps, per training batch, its tokens (to find the examples) and the scores of its completion tokens (K,)
    computed on the pass's logits as it happens; maps rows to example ids per epoch."""

    missing_hint = ("no training forward pass gave logits with completion labels for the training examples (a "
                    "loss computed outside the model, or a fused loss that returns no logits?)")

    def __init__(self, index: TokenIndex):
        self.index = index
        self._batches: list[dict] = []

    def keep(self, kwargs: dict, output) -> None:
        input_ids, labels = kwargs.get("input_ids"), kwargs.get("labels")
        if input_ids is None or labels is None:
            return
        labels = labels.detach()
        logits = getattr(output, "logits", None)
        if logits is not None and logits.dim() == 3 and logits.shape[:2] == labels.shape:
            rows, positions = scored_positions(labels, IGNORED)  # (K,) each: logits at t score label t + 1
            gold = labels[rows, positions + 1]  # (K,)
            scores = score_tokens(logits.detach()[rows, positions], gold)  # (K, V) -> (K,) values on the CPU
            kept = {"log_probability": scores.log_probability, "rank": scores.rank, "predicted": scores.predicted,
                    "correct": scores.rank == 1}
        elif _fused_shape(output, labels):  # TRL's fused LM head: the label log-probabilities, no logits
            rows, positions = output.label_mask.nonzero(as_tuple=True)  # (K,): log_probs[b, t] scores label t + 1
            gold = labels[rows, positions + 1]
            top1 = getattr(output, "is_top1", None)
            unknown = torch.full((len(rows),), -1, dtype=torch.long)
            kept = {"log_probability": output.log_probs.detach()[rows, positions].double().cpu(), "rank": unknown,
                    "predicted": unknown, "correct": (top1[rows, positions].cpu() if top1 is not None
                                                      else torch.zeros(len(rows), dtype=torch.bool))}
        else:
            return
        rows = rows.cpu()
        tokens = torch.arange(len(rows)) - torch.searchsorted(rows, rows)  # (K,) position among its row's tokens
        mask = kwargs.get("attention_mask")
        self._batches.append({"input_ids": input_ids.detach().cpu(),
                              "mask": None if mask is None else mask.detach().cpu(),
                              "rows": rows, "tokens": tokens, "gold": gold.cpu(), **kept})

    def flush(self, recorder: DynamicsRecorder) -> list[str]:
        self.index.new_epoch()
        try:
            for kept in self._batches:
                ids = self.index.lookup(kept["input_ids"], kept["mask"], None)  # (B,)
                rows = kept["rows"].numpy()
                matched = ids[rows] >= 0  # (K,)
                recorder.log_completion_rows(ids[rows][matched], kept["tokens"].numpy()[matched],
                                             *(kept[name].numpy()[matched]
                                               for name in ("gold", "log_probability", "rank", "predicted",
                                                            "correct")))
        finally:
            self._batches.clear()
        if not self.index.unmatched:
            return []
        return [f"{self.index.unmatched} training rows matched no training example by their tokens (does the "
                "collator change tokens?); they were left out of the training dynamics."]


class GenerationTask:
    """Any ``AutoModelForCausalLM`` (or a peft model over one, or TRL's SFTTrainer's) on prompt → completion pairs."""

    spec = SPECS[GENERATION]
    shards_checkpoints = False  # the main process scores and generates alone (generation is not sharded)

    def recognises(self, model: PreTrainedModel) -> bool:
        return type(unwrapped(model)).__name__.endswith(_LANGUAGE_MODEL_CLASSES)

    def encoder(self, model: PreTrainedModel) -> PreTrainedModel:
        return model

    def run_label_names(self, model: PreTrainedModel, given, data) -> tuple[str, ...]:
        return ()  # a language model's outputs are its vocabulary

    def load_data(self, source: DataSource, *, split: str | None) -> CompletionSet:
        return load_completions(source.path, prompt_column=source.prompt_column,
                                completion_column=source.completion_column, messages_column=source.messages_column,
                                id_column=source.id_column, limit=source.limit, file_format=source.file_format,
                                encoding=source.encoding,
                                tokenizer=None if source.tokenizer is None else _TokenizerOnDemand(source.tokenizer))

    def load_model(self, source: ModelSource, data_source: DataSource, data: CompletionSet) -> ModelBundle:
        return load_language_model(source.path, tokenizer=source.tokenizer, device=source.device,
                                   trust_remote_code=source.trust_remote_code, base_model=source.base_model)

    def load_checkpoint(self, path: str, *, label_names: tuple[str, ...], device: str | None = None,
                        base_model: str | None = None) -> ModelBundle:
        return load_language_model(path, device=device, base_model=base_model)

    def compute_checkpoint(self, bundle: ModelBundle, data: CompletionSet, *, first_of_split: bool = True,
                           **details) -> CheckpointRecord | None:
        return compute_generation_checkpoint(bundle, data, with_split_tables=first_of_split, **details)

    def ingest(self, store: Store | None, bundle: ModelBundle, data: CompletionSet, **details) -> IngestSummary | None:
        return ingest_generation_checkpoint(store, bundle, data, **details)

    def training_capture(self, train_dataset, train_examples) -> CompletionCapture:
        if train_dataset is None or not hasattr(train_dataset, "__len__"):
            raise ModelError("T3visCallback needs a map-style training dataset (with len()) to tell examples "
                             "apart; iterable datasets are not supported.")
        rows = [_item_tokens(train_dataset[index]) for index in range(len(train_dataset))]
        return CompletionCapture(TokenIndex(rows, np.arange(len(rows)), np.zeros(len(rows), dtype=np.int64)))

    def training_examples(self, run: RunInfo, data: CompletionSet, train_dataset, tokenizer):
        if len(data) != len(train_dataset):
            raise DataError(f"train_examples has {len(data)} pairs but the training dataset has {len(train_dataset)}; "
                            "they must be the same pairs in the same order.")
        items = [train_dataset[index] for index in range(len(train_dataset))]
        tokens = [_item_tokens(item) for item in items]
        completions = [_item_completion(item, len(ids)) for item, ids in zip(items, tokens)]
        ids = np.arange(len(data), dtype=np.int64)  # the dynamics know a training example by its row index
        n_tokens = np.array([len(row) for row in tokens])
        examples = example_rows(ids, data.prompts, None, None, n_tokens=n_tokens, n_tokens_full=n_tokens,
                                extra_json=extra_json_lines(data.extra), references=data.completions)
        texts = [tokenizer.batch_decode([[token] for token in completion]) for completion in completions]
        return examples, {"units": completion_token_rows(ids, completions, texts, [len(c) for c in completions])}


def _fused_shape(output, labels: torch.Tensor) -> bool:
    """Whether ``output`` is TRL's fused LM head's (log_probs and label_mask (B, T - 1) for labels (B, T))."""
    mask, log_probs = getattr(output, "label_mask", None), getattr(output, "log_probs", None)
    return mask is not None and log_probs is not None and tuple(mask.shape) == (labels.shape[0], labels.shape[1] - 1)


def _item_completion(item: dict, n_tokens: int) -> list[int]:
    """The completion token ids of a training item: its labelled tokens (labels != -100), or TRL's
    ``completion_mask`` tokens."""
    ids = _item_tokens(item)
    labels = item.get("labels")
    if labels is not None:
        labels = labels.tolist() if isinstance(labels, torch.Tensor) else list(labels)
        mask = item.get("attention_mask")
        if mask is not None:
            keep = mask.tolist() if isinstance(mask, torch.Tensor) else list(mask)
            labels = [label for label, real in zip(labels, keep) if real]
        return [int(label) for label in labels if label != IGNORED]
    completion_mask = item.get("completion_mask")
    if completion_mask is not None:
        mask = completion_mask.tolist() if isinstance(completion_mask, torch.Tensor) else list(completion_mask)
        return [int(token) for token, flag in zip(ids, mask) if flag]
    raise ModelError("T3visCallback needs each training item's 'labels' (-100 on the prompt, the token ids on the "
                     "completion) or TRL's 'completion_mask', to know which tokens are the completion.")


class _TokenizerOnDemand:
    """A tokenizer loaded the first time it is used: chat data needs one for its template, other data none."""

    def __init__(self, where: str | Path):
        self._where = where
        self._tokenizer = None

    def __getattr__(self, name: str):
        if self._tokenizer is None:
            from t3vis.model.tokenizers import _load_tokenizer

            self._tokenizer = _load_tokenizer(str(self._where), None, trust_remote_code=False)
        return getattr(self._tokenizer, name)
