"""The tasks t3vis records: their names (``runs.task``) and what each one is, shared by every layer.

A task is one seam with three sides, each keyed by the task's name:

- :class:`TaskSpec` (here): the facts every layer reads — what one output unit of the model is,
  how a unit's logits become probabilities, the metrics of a checkpoint, what a Data Map point is.
- :class:`t3vis.record.task.RecordingTask`: how examples are loaded and encoded, how a model is loaded,
  what a checkpoint's outputs per example and per unit, loss and metrics are, and what the callback
  keeps of each training batch for the training dynamics.
- :class:`t3vis.queries.task_frames.TaskFrames`: how the store's rows of the task become the app's
  example frames (attributes, layout, details of one example).

Sequence classification is the first implementation, extractive summarization the second, token
classification the third, generation (a causal language model fine-tuned on prompt → completion pairs) the
fourth.
"""

from __future__ import annotations

from dataclasses import dataclass

SEQUENCE_CLASSIFICATION = "sequence-classification"  # one label per example (or text pair)
EXTRACTIVE_SUMMARIZATION = "extractive-summarization"  # one binary label per sentence of a document (BertSum)
TOKEN_CLASSIFICATION = "token-classification"  # one tag per word of a sentence (named entities, POS, chunks)
GENERATION = "generation"  # a causal language model's completion of a prompt (supervised fine-tuning)

SUMMARY_LABELS = ("not in summary", "in summary")  # the label names of a sentence

SOFTMAX = "softmax"  # a unit's logits (K,) are one distribution over the labels
SIGMOID = "sigmoid"  # each unit has one logit: the probability of the positive label


@dataclass(frozen=True)
class TaskSpec:
    """What a task is, as every layer needs to know it.

    ``unit`` is what the model gives one output for (and one row of predictions and training
    dynamics): the whole ``example``, or each ``sentence`` of a document. ``per_unit_tables`` says
    whether the results sit in the long per-unit tables (``units``, ``unit_predictions``, training
    dynamics with a ``unit``) or in the per-example ones (``predictions``).
    """

    name: str
    title: str  # for people: "Sequence classification"
    example: str  # what one example is: "text", "document"
    unit: str  # what one output is: "example", "sentence", "word"
    output: str  # SOFTMAX or SIGMOID: how a unit's logits become probabilities
    metrics: tuple[str, ...]  # the numbers a checkpoint records per split (checkpoints.metrics)
    data_map_point: str  # what one point of the Data Map is: an example or a unit
    fixed_labels: tuple[str, ...] | None = None  # the label names when the task fixes them

    @property
    def per_unit_tables(self) -> bool:
        return self.unit != "example"


SPECS = {
    SEQUENCE_CLASSIFICATION: TaskSpec(
        name=SEQUENCE_CLASSIFICATION, title="Sequence classification", example="text", unit="example",
        output=SOFTMAX, metrics=("accuracy", "loss"), data_map_point="example",
    ),
    EXTRACTIVE_SUMMARIZATION: TaskSpec(
        name=EXTRACTIVE_SUMMARIZATION, title="Extractive summarization", example="document", unit="sentence",
        output=SIGMOID, metrics=("rouge1", "rouge2", "rougeL", "loss", "accuracy"), data_map_point="sentence",
        fixed_labels=SUMMARY_LABELS,
    ),
    TOKEN_CLASSIFICATION: TaskSpec(
        name=TOKEN_CLASSIFICATION, title="Token classification", example="sentence", unit="word", output=SOFTMAX,
        metrics=("f1", "precision", "recall", "accuracy", "loss"), data_map_point="word",
    ),
    # A unit is one token of the reference completion (teacher forced); a Data Map point is a whole example: its
    # gold probability is exp(mean log-probability of its completion tokens), its correctness the share of them
    # predicted right. "accuracy" is that token accuracy, "score" the greedy generation's exact match (GSM8K's
    # final answer) or ROUGE-L.
    GENERATION: TaskSpec(
        name=GENERATION, title="Generation (prompt → completion)", example="prompt", unit="token", output=SOFTMAX,
        metrics=("loss", "perplexity", "score", "exact_match", "rougeL", "accuracy"), data_map_point="example",
        fixed_labels=(),
    ),
}
TASKS = tuple(SPECS)


def task_spec(name: str | None) -> TaskSpec:
    """The spec of a task by its name; None (a store from before tasks) is sequence classification."""
    if name is None:
        return SPECS[SEQUENCE_CLASSIFICATION]
    try:
        return SPECS[name]
    except KeyError:
        raise ValueError(f"Unknown task {name!r}; t3vis records {', '.join(TASKS)}.") from None
