"""Tokenising examples and cutting them into length-sorted batches."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase


@dataclass(frozen=True)
class EncodedExamples:
    """Token ids of every example, truncated to ``max_length``."""

    input_ids: list[list[int]]  # N lists of token ids, special tokens included
    token_type_ids: list[list[int]] | None
    n_tokens_full: np.ndarray  # (N,) tokens before truncation
    max_length: int

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def n_tokens(self) -> np.ndarray:
        """(N,) tokens fed to the model."""
        return np.fromiter((len(ids) for ids in self.input_ids), dtype=np.int64, count=len(self.input_ids))

    @property
    def truncated(self) -> np.ndarray:
        """(N,) bool: the text was longer than ``max_length`` tokens."""
        return self.n_tokens_full > self.n_tokens


def encode(
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    text_pairs: Sequence[str] | None = None,
    *,
    max_length: int,
) -> EncodedExamples:
    """Tokenise texts (or text pairs), truncating to ``max_length`` and remembering the full lengths."""
    texts = list(texts)
    pairs = None if text_pairs is None else list(text_pairs)
    # The untruncated pass only measures lengths; silence the "longer than the maximum" warning.
    verbose = tokenizer.deprecation_warnings.get("sequence-length-is-longer-than-the-specified-maximum")
    tokenizer.deprecation_warnings["sequence-length-is-longer-than-the-specified-maximum"] = True
    try:
        full = tokenizer(texts, pairs, truncation=False, return_attention_mask=False, return_token_type_ids=False)
    finally:
        if verbose is None:
            tokenizer.deprecation_warnings.pop("sequence-length-is-longer-than-the-specified-maximum", None)
    n_full = np.array([len(ids) for ids in full["input_ids"]], dtype=np.int64)
    encoded = tokenizer(texts, pairs, truncation=True, max_length=max_length, return_attention_mask=False)
    return EncodedExamples(
        input_ids=encoded["input_ids"],
        token_type_ids=encoded.get("token_type_ids"),
        n_tokens_full=n_full,
        max_length=max_length,
    )


def length_sorted_batches(lengths: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Indices of examples in batches of similar length, so that padding costs little.

    Longest batches first: an out-of-memory error shows up at once, not at the end.
    """
    order = np.argsort(-lengths, kind="stable")
    return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]


def collate(encoded: EncodedExamples, indices: np.ndarray, *, pad_token_id: int, device: torch.device) -> dict:
    """Padded model inputs for the examples at ``indices``: input_ids, attention_mask (B, T)[, token_type_ids]."""
    rows = [encoded.input_ids[i] for i in indices]
    width = max(len(row) for row in rows)
    input_ids = torch.full((len(rows), width), pad_token_id, dtype=torch.long)  # (B, T)
    attention_mask = torch.zeros((len(rows), width), dtype=torch.long)  # (B, T)
    for row_index, row in enumerate(rows):
        input_ids[row_index, : len(row)] = torch.tensor(row)
        attention_mask[row_index, : len(row)] = 1
    batch = {"input_ids": input_ids.to(device), "attention_mask": attention_mask.to(device)}
    if encoded.token_type_ids is not None:
        token_types = torch.zeros((len(rows), width), dtype=torch.long)  # (B, T)
        for row_index, i in enumerate(indices):
            types = encoded.token_type_ids[i]
            token_types[row_index, : len(types)] = torch.tensor(types)
        batch["token_type_ids"] = token_types.to(device)
    return batch


def iterate_batches(
    encoded: EncodedExamples, batch_size: int, *, pad_token_id: int, device: torch.device
) -> Iterator[tuple[np.ndarray, dict]]:
    """(indices, model inputs) for every length-sorted batch."""
    for indices in length_sorted_batches(encoded.n_tokens, batch_size):
        yield indices, collate(encoded, indices, pad_token_id=pad_token_id, device=device)
