"""Aggregate attention patterns: a fixed-size summary of each head over a whole dataset.

Examples have different lengths, so attention matrices cannot be averaged directly. Each
matrix (T, T) of an example with n real tokens is pooled onto a ``bins x bins`` grid of
relative positions: query token t falls in bin floor(t * bins / n), key tokens likewise.
Entry [q, k] of the summary is the mean, over all real query tokens of the dataset that fall
in bin q, of the attention they give to the key tokens in bin k; each row sums to 1.
Scalar summaries are means over all real query tokens (two of them over the queries they are defined for).
Besides attention to [CLS], to separators, to itself, to the next token and the entropy, they measure the
head functions the T3-Vis case study found in BertSum (Li et al. 2021, section 5.1):

* ``attn_same_token``: mass on *other occurrences of the same token* (same id, another position,
  not a special token);
* ``attn_same_sentence``: mass on tokens of *the same sentence*, a sentence being the tokens up to
  and including a separator ([SEP] / </s>) -- each text of a pair, each sentence of a BertSum input;
* ``attn_adjacent``: mass on the *adjacent tokens* (position -1 and +1);
* ``attn_special``: mass on special tokens ([CLS], [SEP], ... anywhere in the input);

and the two that language models (decoders, causal attention) are known for (Olsson et al. 2022):

* ``attn_prev``: the *previous-token* head function, mass on position i - 1; a mean over the queries that have
  a real previous token (the first token has none: in a decoder it can attend only to itself), so that a head
  attending only to the previous token scores 1;
* ``attn_induction``: the *induction* head function. Query i's targets are the positions t = j + 1 right after
  each earlier occurrence j of its token (``ids[j] == ids[i]``, t < i, both real; a set: a target counts
  once however many occurrences lead to it; no targets for a special token, as for ``attn_same_token``). Its
  score is the mass on its targets, and the head's value the mean over the queries that have at least one
  target: NaN when no query of the data has one (a dataset without repeated tokens).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from t3vis.store.rows import ATTENTION_SCALARS, UNDEFINED_AS_NULL

SCALARS = ATTENTION_SCALARS  # the scalar columns of attention_patterns


def separator_ids(tokenizer) -> list[int]:
    """Ids of the tokens that end a sentence or a text ([SEP], </s>); [-1] when there are none."""
    ids = {tokenizer.sep_token_id, tokenizer.eos_token_id}
    return sorted(token for token in ids if token is not None) or [-1]


def token_kinds(input_ids: torch.Tensor, tokenizer) -> tuple[torch.Tensor, torch.Tensor]:
    """(separator, special): two (B, T) bool masks of the batch's separator and special tokens."""
    device = input_ids.device
    separator = torch.isin(input_ids, torch.tensor(separator_ids(tokenizer), device=device))
    special = torch.isin(input_ids, torch.tensor(sorted(set(tokenizer.all_special_ids)) or [-1], device=device))
    return separator, special


def induction_targets(input_ids: torch.Tensor, real: torch.Tensor, special: torch.Tensor) -> torch.Tensor:
    """Induction targets (B, T, T) bool: [b, i, t] when key t is right after an earlier occurrence of query i's
    token (``input_ids[b, t - 1] == input_ids[b, i]``, t < i, t - 1 and t real), for real non-special queries.

    input_ids, real (not padding) and special are (B, T); each target position is one entry, however many earlier
    occurrences lead to it.
    """
    width = input_ids.shape[1]
    earlier = torch.ones(width, width, dtype=torch.bool, device=input_ids.device).tril(-1)  # (T, T): t < i
    after_real = torch.nn.functional.pad(real[:, :-1], (1, 0)) & real  # (B, T): t and t - 1 real
    token_before = torch.nn.functional.pad(input_ids[:, :-1], (1, 0))  # (B, T): id at t - 1 (t = 0 is masked)
    word_query = (real & ~special)[:, :, None]  # (B, T, 1)
    same_as_before_key = input_ids[:, :, None] == token_before[:, None, :]  # (B, T, T)
    return same_as_before_key & earlier & word_query & after_real[:, None, :]  # (B, T, T)


def _bin_assignment(lengths: torch.Tensor, width: int, bins: int) -> torch.Tensor:
    """One-hot relative-position bins (B, T, bins); padding positions are all zero."""
    positions = torch.arange(width, device=lengths.device)  # (T,)
    real = positions[None, :] < lengths[:, None]  # (B, T)
    bin_index = (positions[None, :] * bins) // lengths.clamp(min=1)[:, None]  # (B, T)
    one_hot = torch.nn.functional.one_hot(bin_index.clamp(max=bins - 1), bins)  # (B, T, bins)
    return one_hot * real[..., None]


@dataclass
class AttentionAccumulator:
    """Sums attention statistics batch by batch; ``summary()`` gives the dataset means.

    Use ``set_batch`` before each forward pass, and pass ``consume`` as the probe's consumer.
    """

    num_layers: int
    num_heads: int
    bins: int = 16

    def __post_init__(self) -> None:
        shape = (self.num_layers, self.num_heads)
        self.pattern_sum = torch.zeros((*shape, self.bins, self.bins), dtype=torch.float64)
        self.query_bin_count = torch.zeros(self.bins, dtype=torch.float64)
        self.scalar_sums = {name: torch.zeros(shape, dtype=torch.float64) for name in SCALARS}
        self.scalar_counts = {name: 0.0 for name in SCALARS}  # the queries each scalar is a mean over
        self.n_examples = 0
        self._batch: dict | None = None

    def set_batch(self, attention_mask: torch.Tensor, input_ids: torch.Tensor, separator: torch.Tensor,
                  special: torch.Tensor) -> None:
        """The batch about to run: attention_mask (B, T) of 1/0, input_ids (B, T), and the separator and
        special tokens as (B, T) bool (:func:`token_kinds`)."""
        real = attention_mask.bool()  # (B, T)
        lengths = real.sum(1)  # (B,)
        assignment = _bin_assignment(lengths, real.shape[1], self.bins).float()  # (B, T, bins)
        separator = separator & real
        sentence = torch.cumsum(separator.long(), 1) - separator.long()  # (B, T) separators before the token
        width = real.shape[1]
        other_position = ~torch.eye(width, dtype=torch.bool, device=real.device)  # (T, T)
        word_key = (real & ~special)[:, None, :]  # (B, 1, T)
        same_token = (input_ids[:, :, None] == input_ids[:, None, :]) & other_position & word_key  # (B, T, T)
        same_sentence = (sentence[:, :, None] == sentence[:, None, :]) & real[:, None, :]  # (B, T, T)
        induction = induction_targets(input_ids, real, special)  # (B, T, T)
        with_previous = torch.nn.functional.pad(real[:, :-1], (1, 0)) & real  # (B, T): queries i with i - 1 real
        queries = {name: real for name in SCALARS}  # (B, T) each: the queries a scalar averages over
        queries.update(attn_prev=with_previous, attn_induction=induction.any(-1))
        self._batch = {"assignment": assignment, "separator": separator,
                       "special": special & real, "same_token": same_token.float(),
                       "same_sentence": same_sentence.float(), "induction": induction.float(),
                       "queries": {name: mask.float() for name, mask in queries.items()}}
        self.query_bin_count += assignment.sum((0, 1)).double().cpu()
        for name, mask in queries.items():
            self.scalar_counts[name] += float(mask.sum())
        self.n_examples += int(real.shape[0])

    def consume(self, layer: int, probs: torch.Tensor) -> None:
        """Add one layer's attention probabilities (B, H, T, T) of the current batch."""
        batch = self._batch
        assignment = batch["assignment"]  # (B, T, bins)
        probs = probs.float()
        to_key_bins = probs @ assignment[:, None]  # (B, H, T, bins)
        pooled = assignment.transpose(1, 2)[:, None] @ to_key_bins  # (B, H, bins, bins)
        self.pattern_sum[layer] += pooled.sum(0).double().cpu()

        diagonal = probs.diagonal(dim1=-2, dim2=-1)  # (B, H, T)
        previous = torch.nn.functional.pad(probs.diagonal(offset=-1, dim1=-2, dim2=-1), (1, 0))  # (B, H, T)
        following = torch.nn.functional.pad(probs.diagonal(offset=1, dim1=-2, dim2=-1), (0, 1))  # (B, H, T)
        to_separator = (probs * batch["separator"][:, None, None, :]).sum(-1)  # (B, H, T)
        entropy = -(probs * torch.log(probs.clamp(min=1e-12))).sum(-1)  # (B, H, T)
        values = {
            "attn_cls": probs[..., 0],
            "attn_sep": to_separator,
            "attn_self": diagonal,
            "attn_prev": previous,
            "attn_next": following,
            "entropy": entropy,
            "attn_same_token": torch.einsum("bhqk,bqk->bhq", probs, batch["same_token"]),  # (B, H, T)
            "attn_same_sentence": torch.einsum("bhqk,bqk->bhq", probs, batch["same_sentence"]),  # (B, H, T)
            "attn_adjacent": previous + following,
            "attn_special": (probs * batch["special"][:, None, None, :]).sum(-1),  # (B, H, T)
            "attn_induction": torch.einsum("bhqk,bqk->bhq", probs, batch["induction"]),  # (B, H, T)
        }
        for name, value in values.items():
            counted = batch["queries"][name][:, None, :]  # (B, 1, T): padding and undefined queries do not count
            self.scalar_sums[name][layer] += (value * counted).sum((0, 2)).double().cpu()

    def add(self, other: AttentionAccumulator) -> None:
        """Add the sums of another accumulator of the same heads and bins (another process's batches)."""
        if (other.num_layers, other.num_heads, other.bins) != (self.num_layers, self.num_heads, self.bins):
            raise ValueError(f"cannot add attention sums of {other.num_layers}x{other.num_heads} heads and "
                             f"{other.bins} bins to {self.num_layers}x{self.num_heads} heads and {self.bins} bins")
        self.pattern_sum += other.pattern_sum
        self.query_bin_count += other.query_bin_count
        for name in SCALARS:
            self.scalar_sums[name] += other.scalar_sums[name]
            self.scalar_counts[name] += other.scalar_counts[name]
        self.n_examples += other.n_examples

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_batch": None}  # the sums travel between processes; the batch in hand does not

    def summary(self) -> dict[str, np.ndarray]:
        """Dataset means: ``pattern`` (L, H, bins, bins) and each scalar (L, H). Without a query to average over, a
        scalar is NaN when it is one a dataset may not define (``UNDEFINED_AS_NULL``: induction), else 0."""
        counts = self.query_bin_count.clamp(min=1)[None, None, :, None]
        result = {"pattern": (self.pattern_sum / counts).float().numpy()}
        for name in SCALARS:
            count = self.scalar_counts[name]
            if count == 0 and name in UNDEFINED_AS_NULL:
                result[name] = np.full((self.num_layers, self.num_heads), np.nan, dtype=np.float32)
            else:
                result[name] = (self.scalar_sums[name] / max(count, 1.0)).float().numpy()
        return result
