"""How a checkpoint is recorded: :class:`IngestConfig`, apart from the computation so that the CLI can
build its options (and answer ``t3vis info``) without importing torch."""

from __future__ import annotations

from dataclasses import dataclass, field

from t3vis.record.projection import METHODS, TSNE_FIT_POINTS


@dataclass(frozen=True)
class IngestConfig:
    """How a checkpoint is recorded. Each field's ``help`` is shown by the CLI."""

    split: str = field(default="validation", metadata={"help": "name of the split the examples belong to"})
    layers: tuple[int, ...] | str | None = field(
        default=None,
        metadata={"help": "hidden layers to project: 0 = embeddings, 1..L = Transformer layers, or 'all'; "
                          "default: the last"},
    )
    pooling: str = field(default="cls", metadata={
        "help": "'cls' (the pooled token: an encoder's first, a decoder's last real token) or 'mean' (over real "
                "tokens)"})
    projection: str = field(default="tsne", metadata={"help": "'tsne' (openTSNE), 'pca' (fast) or 'none'"})
    batch_size: int = field(default=32, metadata={"help": "examples per forward pass"})
    max_length: int | None = field(
        default=None, metadata={"help": "truncate texts to this many tokens; default: the model's limit"}
    )
    importance_examples: int = field(
        default=256,
        metadata={"help": "examples (whole batches, drawn at random) for head importance; 0 = skip, -1 = all"},
    )
    attention_examples: int = field(
        default=512,
        metadata={"help": "examples (whole batches, drawn at random, the importance batches first) averaged into "
                          "the aggregate attention patterns; -1 = all"},
    )
    attention_bins: int = field(default=16, metadata={"help": "size of the aggregate attention pattern grid"})
    unit_points: int = field(
        default=20_000,
        metadata={"help": "units (a document's sentences) laid out in 2-D per checkpoint, drawn at random when the "
                          "split has more; 0 = none"},
    )
    tsne_fit_points: int = field(
        default=TSNE_FIT_POINTS,
        metadata={"help": "above this many points t-SNE is fitted on a random sample of this size and the other "
                          "points are placed into it (openTSNE's transform)"},
    )
    seed: int = field(default=0, metadata={"help": "seed for the importance sample and t-SNE"})
    max_new_tokens: int = field(
        default=64,
        metadata={"help": "generation task: tokens of each example's greedy generation at most (scored against the "
                          "reference: exact match of a final answer, else ROUGE-L); 0 = no generation"},
    )
    max_completion_tokens: int | None = field(
        default=None,
        metadata={"help": "generation task: cut reference completions to this many tokens (the end of turn or EOS "
                          "included); default: only the token limit cuts"},
    )

    def __post_init__(self) -> None:
        if isinstance(self.layers, str) and self.layers != "all":
            raise ValueError(f"layers must be a tuple of layer numbers, 'all' or None, not {self.layers!r}")
        if self.pooling not in ("cls", "mean"):
            raise ValueError(f"pooling must be 'cls' or 'mean', not {self.pooling!r}")
        if self.projection not in (*METHODS, "none"):
            raise ValueError(f"projection must be one of {(*METHODS, 'none')}, not {self.projection!r}")
        if self.batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if self.max_new_tokens < 0:
            raise ValueError("max_new_tokens must be 0 (no generation) or more")
        if self.max_completion_tokens is not None and self.max_completion_tokens < 1:
            raise ValueError("max_completion_tokens must be at least 1")
        if self.tsne_fit_points < 10:
            raise ValueError("tsne_fit_points must be at least 10")
