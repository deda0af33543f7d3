"""A checkpoint's forward pass, shared out between the processes of a launch and put back together.

Every task's pass goes the same way. The examples are cut into length-sorted batches, and a random
sample of them runs with gradients to the head mask (head importance), a sample, those first, with
their attention summed (:class:`BatchPlan`, the same on every process). Under ``torchrun`` /
``accelerate launch`` each process runs its :class:`~t3vis.record.distributed.Shard` of the batches
(every world_size-th) and keeps a :class:`ShardPart`: the rows of the examples it ran, in its own
order, tagged with their positions in the split, and its :class:`HeadSums`. :func:`gathered_pass`
sends every part to the main process, which puts the rows back in example order and adds the sums
(:func:`merged_parts`): what one process running every batch would have computed. Without a launch
the one process's part is the whole pass.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import torch

from t3vis.model.access import AttentionProbe, ModelBundle, run_with_probe
from t3vis.model.encoding import length_sorted_batches
from t3vis.record.attention_summary import AttentionAccumulator, token_kinds
from t3vis.record.distributed import Shard, gather_results
from t3vis.record.head_importance import head_mask_gradient
from t3vis.record.ingest_config import IngestConfig
from t3vis.store.rows import attention_rows, importance_rows


def sampled_batches(batches: list[np.ndarray], wanted: int, seed: int, *, first: set[int] = frozenset()) -> set[int]:
    """Indices of randomly drawn batches holding at least ``wanted`` examples (all when wanted < 0).

    The batches in ``first`` are taken before any other (e.g. attention reuses the importance
    batches, whose forward pass computes attention probabilities anyway).
    """
    if wanted < 0:
        return set(range(len(batches)))
    chosen: set[int] = set()
    covered = 0
    rest = [int(i) for i in np.random.default_rng(seed).permutation(len(batches)) if int(i) not in first]
    for index in [*sorted(first), *rest]:
        if covered >= wanted:
            break
        chosen.add(int(index))
        covered += len(batches[index])
    return chosen


@dataclass(frozen=True)
class BatchPlan:
    """A split's batches, which of them serve head importance and attention, and which this process runs."""

    batches: list[np.ndarray]  # each (B,): positions in the split of its examples, longest batches first
    with_gradient: set[int]  # batches run with gradients to the head mask
    with_attention: set[int]  # batches whose attention probabilities are summed
    mine: list[int]  # the batches this process runs, in order

    @classmethod
    def of(cls, lengths: np.ndarray, config: IngestConfig, shard: Shard) -> BatchPlan:
        """The plan for examples of ``lengths`` (N,) tokens: every process draws the same samples."""
        batches = length_sorted_batches(lengths, config.batch_size)
        with_gradient = sampled_batches(batches, config.importance_examples, config.seed)
        # Aggregate attention needs the probabilities, hence the slower explicit attention: a sample suffices.
        with_attention = sampled_batches(batches, config.attention_examples, config.seed, first=with_gradient)
        return cls(batches, with_gradient, with_attention, [index for index in range(len(batches)) if shard.owns(index)])

    @property
    def my_examples(self) -> np.ndarray:
        """(n,) positions in the split of this process's examples, in the order it runs them."""
        if not self.mine:
            return np.zeros(0, dtype=np.int64)
        return np.concatenate([self.batches[index] for index in self.mine])


@dataclass
class HeadSums:
    """One process's sums over the sampled batches it ran; another process's are added on the main process."""

    importance_sum: np.ndarray  # (L, H) float64: sum over its importance examples of |dL(x)/dm|
    importance_examples: int
    attention: AttentionAccumulator

    @classmethod
    def zeros(cls, bundle: ModelBundle, config: IngestConfig) -> HeadSums:
        return cls(np.zeros((bundle.num_layers, bundle.num_heads)), 0,
                   AttentionAccumulator(bundle.num_layers, bundle.num_heads, config.attention_bins))

    def add_gradient(self, gradient: torch.Tensor) -> None:
        """Add a batch's per-example head-mask gradients (B, L, H)."""
        self.importance_sum += gradient.abs().double().sum(0).cpu().numpy()  # (L, H)
        self.importance_examples += int(gradient.shape[0])


@dataclass(frozen=True)
class HeadSummary:
    """The split's head importance and aggregate attention, from every process's sums."""

    importance: np.ndarray | None  # (L, H) mean over the importance examples of |dL(x)/dm|; None: none sampled
    importance_examples: int
    attention: dict[str, np.ndarray]  # pattern (L, H, bins, bins) and each scalar (L, H)
    attention_examples: int

    @classmethod
    def of(cls, sums: list[HeadSums]) -> HeadSummary:
        count = sum(part.importance_examples for part in sums)
        attention = AttentionAccumulator(sums[0].attention.num_layers, sums[0].attention.num_heads,
                                         sums[0].attention.bins)
        for part in sums:
            attention.add(part.attention)
        return cls(importance=sum(part.importance_sum for part in sums) / count if count else None,
                   importance_examples=count, attention=attention.summary(), attention_examples=attention.n_examples)

    def tables(self) -> dict[str, pa.Table]:
        """The ``attention_patterns`` rows, and the ``head_importance`` rows when importance was sampled."""
        tables = {"attention_patterns": attention_rows(self.attention["pattern"], self.attention,
                                                       self.attention_examples)}
        if self.importance is not None:
            tables["head_importance"] = importance_rows(self.importance, self.importance_examples)
        return tables


def run_batch(bundle: ModelBundle, inputs: dict, sums: HeadSums, *, importance: bool, attention: bool,
              labels: torch.Tensor | None = None,
              example_losses: Callable[[Any], torch.Tensor] | None = None) -> Any:
    """One batch's forward pass, with its hidden states; returns the model's output.

    ``importance``: also the backward pass to the head mask, for the loss of ``labels`` (B,) or of
    ``example_losses(output)`` (B,) (:func:`~t3vis.record.head_importance.head_mask_gradient`), added to ``sums``;
    ``attention``: the batch's attention statistics are added to ``sums``.
    """
    probe = AttentionProbe()
    if attention:
        sums.attention.set_batch(inputs["attention_mask"], inputs["input_ids"],
                                 *token_kinds(inputs["input_ids"], bundle.tokenizer))
        probe.consumer = sums.attention.consume
    if importance:
        output, gradient = head_mask_gradient(bundle.model, inputs, labels, probe=probe, output_hidden_states=True,
                                              example_losses=example_losses)
        sums.add_gradient(gradient)
        return output
    with torch.no_grad():
        output, _ = run_with_probe(bundle.model, probe, **inputs, output_hidden_states=True)
    return output


@dataclass
class ShardPart:
    """What one process sends of its batches: the rows of its examples, in the order it ran them, and its sums."""

    positions: np.ndarray  # (n,) positions in the split of its examples
    rows: dict[str, Any]  # name -> (n, ...) array, or a list of n arrays (ragged: a document's sentences)
    pooled: dict[int, np.ndarray]  # layer -> (n, D) pooled hidden states
    sums: HeadSums
    unit_positions: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    # (m,) rows, among the split's laid-out units (sentences, words), of its examples' laid-out units
    unit_vectors: dict[int, np.ndarray] = field(default_factory=dict)  # layer -> (m, D)


@dataclass(frozen=True)
class MergedPass:
    """The whole split's pass: every process's rows in example order, its sums added."""

    rows: dict[str, Any]  # name -> (N, ...) array or a list of N arrays
    pooled: dict[int, np.ndarray]  # layer -> (N, D)
    unit_vectors: dict[int, np.ndarray]  # layer -> (M, D), in the order of the laid-out units
    heads: HeadSummary


def in_example_order(positions: list[np.ndarray], rows: list, n: int):
    """Each process's rows (n_r, ...) at its ``positions`` (n_r,) put together as (n, ...) in position order: one
    array, or one list when the rows are lists. Every position of 0..n-1 must come exactly once."""
    order = np.concatenate(positions) if positions else np.zeros(0, dtype=np.int64)  # (n,)
    if len(order) != n or not np.array_equal(np.sort(order), np.arange(n)):
        raise RuntimeError(f"the processes' batches cover {len(order)} rows, not each of the {n} rows once")
    if isinstance(rows[0], list):
        merged: list = [None] * n
        for position, row in zip(order, (row for part in rows for row in part)):
            merged[position] = row
        return merged
    merged = np.empty((n, *rows[0].shape[1:]), dtype=rows[0].dtype)
    merged[order] = np.concatenate(rows)
    return merged


def merged_parts(parts: list[ShardPart], n: int, *, n_units: int = 0) -> MergedPass:
    """The split's pass from every process's part (in rank order): ``n`` examples, ``n_units`` laid-out units."""
    ran = [part for part in parts if len(part.positions)]  # a process may have had no batch
    positions = [part.positions for part in ran]
    unit_positions = [part.unit_positions for part in ran]
    return MergedPass(
        rows={name: in_example_order(positions, [part.rows[name] for part in ran], n) for name in ran[0].rows},
        pooled={layer: in_example_order(positions, [part.pooled[layer] for part in ran], n)
                for layer in ran[0].pooled},
        unit_vectors={layer: in_example_order(unit_positions, [part.unit_vectors[layer] for part in ran], n_units)
                      for layer in ran[0].unit_vectors},
        heads=HeadSummary.of([part.sums for part in parts]),
    )


def gathered_pass(compute: Callable[[], ShardPart], shard: Shard, n: int, *, n_units: int = 0,
                  what: str) -> MergedPass | None:
    """Run this process's part (``compute``) and merge every process's on the main process; None on the others.

    Whatever comes before is the same on every process (same data, same tokenizer): it fails on all or on
    none, before any waits. The pass itself can fail on one process alone: :func:`gather_results` lets that
    process take part all the same, and the main process raises naming it."""
    parts = gather_results(compute, shard, what=what)
    return None if parts is None else merged_parts(parts, n, n_units=n_units)


def joined(chunks: dict[int, list[np.ndarray]]) -> dict[int, np.ndarray]:
    """Per layer, the chunks (batches' or examples' rows) one after the other: layer -> (n, D)."""
    return {layer: np.concatenate(arrays) for layer, arrays in chunks.items()}
