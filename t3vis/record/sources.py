"""Where a checkpoint's examples and model come from, as paths and options: what ``t3vis ingest`` is given."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class DataSource:
    """Where the examples come from; see :func:`t3vis.data.loading.load_examples` for each field.

    The split named by ``IngestConfig.split`` also picks the split of a ``datasets`` DatasetDict folder.
    """

    path: str | Path
    text_columns: tuple[str, ...] | None = None  # sequence classification
    label_column: str | None = None
    label_names: tuple[str, ...] | None = None
    id_column: str | None = None
    encoding: str = "utf-8"
    file_format: str | None = None
    limit: int | None = None
    article_column: str | None = None  # extractive summarization: the document ...
    summary_column: str | None = None  # ... and its reference summary
    words_column: str | None = None  # token classification, a table: the word lists ...
    tags_column: str | None = None  # ... and the tag lists (tag names: label_names)
    tag_column: int = -1  # token classification, a CoNLL file: the column of the tags
    prompt_column: str | None = None  # generation: the prompt ...
    completion_column: str | None = None  # ... and the reference completion
    messages_column: str | None = None  # generation: chat conversations, rendered with the tokenizer's template
    tokenizer: str | Path | None = None  # generation: where the chat template comes from (the model's tokenizer)

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", _expanded(self.path))
        object.__setattr__(self, "tokenizer", _expanded(self.tokenizer))


@dataclass(frozen=True)
class ModelSource:
    """Which model to run; see :func:`t3vis.model.access.load_model` for each field."""

    path: str | Path
    tokenizer: str | Path | None = None
    base_model: str | Path | None = None  # an adapter folder's base model, when not the one it names
    num_labels: int | None = None
    device: str | None = None
    trust_remote_code: bool = False

    def __post_init__(self) -> None:
        for name in ("path", "tokenizer", "base_model"):
            object.__setattr__(self, name, _expanded(getattr(self, name)))


def _expanded(path):
    """``~/x`` as the home folder's ``x`` (a quoted CLI argument, a Python string); anything else as given (a hub
    name stays a string)."""
    return Path(path).expanduser() if isinstance(path, (str, Path)) and str(path).startswith("~") else path
