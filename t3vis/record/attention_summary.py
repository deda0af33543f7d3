"""Aggregate attention patterns: a fixed-size summary of each head over a whole dataset.

Examples have different lengths, so attention matrices cannot be averaged directly. Each
matrix (T, T) of an example with n real tokens is pooled onto a ``bins x bins`` grid of
relative positions: query token t falls in bin floor(t * bins / n), key tokens likewise.
Entry [q, k] of the summary is the mean, over all real query tokens of the dataset that fall
in bin q, of the attention they give to the key tokens in bin k; each row sums to 1.
Scalar summaries are means over all real query tokens. Besides attention to [CLS], to separators,
to itself, to the previous and next token and the entropy, they measure the head functions the
T3-Vis case study found in BertSum (Li et al. 2021, section 5.1):

* ``attn_same_token``: mass on *other occurrences of the same token* (same id, another position,
  not a special token);
* ``attn_same_sentence``: mass on tokens of *the same sentence*, a sentence being the tokens up to
  and including a separator ([SEP] / </s>) -- each text of a pair, each sentence of a BertSum input;
* ``attn_adjacent``: mass on the *adjacent tokens* (position -1 and +1);
* ``attn_special``: mass on special tokens ([CLS], [SEP], ... anywhere in the input).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from t3vis.store.rows import ATTENTION_SCALARS

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
        self.query_count = 0.0
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
        self._batch = {"real": real, "assignment": assignment, "separator": separator,
                       "special": special & real, "same_token": same_token.float(),
                       "same_sentence": same_sentence.float()}
        self.query_bin_count += assignment.sum((0, 1)).double().cpu()
        self.query_count += float(real.sum())
        self.n_examples += int(real.shape[0])

    def consume(self, layer: int, probs: torch.Tensor) -> None:
        """Add one layer's attention probabilities (B, H, T, T) of the current batch."""
        batch = self._batch
        real = batch["real"].float()  # (B, T)
        assignment = batch["assignment"]  # (B, T, bins)
        probs = probs.float()
        to_key_bins = probs @ assignment[:, None]  # (B, H, T, bins)
        pooled = assignment.transpose(1, 2)[:, None] @ to_key_bins  # (B, H, bins, bins)
        self.pattern_sum[layer] += pooled.sum(0).double().cpu()

        query_weight = real[:, None, :]  # (B, 1, T): padding queries do not count
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
        }
        for name, value in values.items():
            self.scalar_sums[name][layer] += (value * query_weight).sum((0, 2)).double().cpu()

    def add(self, other: AttentionAccumulator) -> None:
        """Add the sums of another accumulator of the same heads and bins (another process's batches)."""
        if (other.num_layers, other.num_heads, other.bins) != (self.num_layers, self.num_heads, self.bins):
            raise ValueError(f"cannot add attention sums of {other.num_layers}x{other.num_heads} heads and "
                             f"{other.bins} bins to {self.num_layers}x{self.num_heads} heads and {self.bins} bins")
        self.pattern_sum += other.pattern_sum
        self.query_bin_count += other.query_bin_count
        for name in SCALARS:
            self.scalar_sums[name] += other.scalar_sums[name]
        self.query_count += other.query_count
        self.n_examples += other.n_examples

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_batch": None}  # the sums travel between processes; the batch in hand does not

    def summary(self) -> dict[str, np.ndarray]:
        """Dataset means: ``pattern`` (L, H, bins, bins) and each scalar (L, H)."""
        counts = self.query_bin_count.clamp(min=1)[None, None, :, None]
        result = {"pattern": (self.pattern_sum / counts).float().numpy()}
        for name in SCALARS:
            result[name] = (self.scalar_sums[name] / max(self.query_count, 1.0)).float().numpy()
        return result
