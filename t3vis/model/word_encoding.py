"""Encoding words for token classification: word pieces, and each word's first piece.

The standard recipe (``transformers``' token-classification example): the sentence's words go through
the tokenizer with ``is_split_into_words=True``; each word's gold tag labels its **first** word piece,
and every other piece (and every special token) gets the ignored label -100, so the loss and the
predictions are one per word. A sentence longer than the model's limit keeps its first words whose
first piece fits; the words lost are recorded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from t3vis.errors import ModelError

IGNORED = -100  # the label of pieces that are not a word's first (PyTorch's cross-entropy ignore_index)


@dataclass(frozen=True)
class EncodedWords:
    """One sentence as word pieces."""

    input_ids: list[int]  # (T,) special tokens included
    token_type_ids: list[int] | None
    word_of_token: list[int]  # (T,) the word each piece belongs to; -1 for special tokens
    first_pieces: list[int]  # (W_kept,) position of each kept word's first piece
    n_words: int  # words in the sentence
    n_tokens_full: int  # pieces before truncation

    @property
    def n_kept(self) -> int:
        """Words whose first piece fits the limit (those the model tags)."""
        return len(self.first_pieces)

    def labels(self, tags: Sequence[int]) -> list[int]:
        """(T,) each kept word's tag at its first piece, IGNORED elsewhere."""
        labels = [IGNORED] * len(self.input_ids)
        for word, position in enumerate(self.first_pieces):
            labels[position] = int(tags[word])
        return labels


def encode_words(tokenizer: PreTrainedTokenizerBase, sentences: Sequence[Sequence[str]], *,
                 max_length: int) -> list[EncodedWords]:
    """Word pieces of each sentence (a list of words), truncated to ``max_length`` tokens."""
    if not getattr(tokenizer, "is_fast", False):
        raise ModelError(f"Token classification needs a fast tokenizer (it maps word pieces to words); "
                         f"{type(tokenizer).__name__} is not one. Load the tokenizer with use_fast=True.")
    sentences = [list(words) for words in sentences]
    full = tokenizer(sentences, is_split_into_words=True, truncation=False, return_attention_mask=False,
                     return_token_type_ids=False, verbose=False)
    # A word the tokenizer turns into no piece (only control or format characters, e.g. a zero-width space)
    # would shift every later word onto the previous word's first piece: it is read as the unknown token.
    for index, words in enumerate(sentences):
        seen = {word for word in full.word_ids(index) if word is not None}
        if len(seen) < len(words):
            sentences[index] = [word if position in seen else (tokenizer.unk_token or "[UNK]")
                                for position, word in enumerate(words)]
            again = tokenizer([sentences[index]], is_split_into_words=True, truncation=False,
                              return_attention_mask=False, return_token_type_ids=False, verbose=False)
            full["input_ids"][index] = again["input_ids"][0]
    encoded = tokenizer(sentences, is_split_into_words=True, truncation=True, max_length=max_length,
                        return_attention_mask=False)
    found = []
    for index, words in enumerate(sentences):
        word_ids = encoded.word_ids(index)
        word_of_token = [-1 if word is None else int(word) for word in word_ids]
        first = [position for position, word in enumerate(word_of_token)
                 if word >= 0 and (position == 0 or word_of_token[position - 1] != word)]
        found.append(EncodedWords(
            input_ids=list(encoded["input_ids"][index]),
            token_type_ids=list(encoded["token_type_ids"][index]) if "token_type_ids" in encoded else None,
            word_of_token=word_of_token, first_pieces=first, n_words=len(words),
            n_tokens_full=len(full["input_ids"][index]),
        ))
    return found


def collate_words(sentences: Sequence[EncodedWords], *, pad_token_id: int,
                  tags: Sequence[Sequence[int]] | None = None) -> dict[str, torch.Tensor]:
    """Padded model inputs (B, T): input_ids, attention_mask[, token_type_ids][, labels with IGNORED]."""
    width = max(len(sentence.input_ids) for sentence in sentences)
    batch = len(sentences)
    input_ids = torch.full((batch, width), pad_token_id, dtype=torch.long)  # (B, T)
    attention_mask = torch.zeros((batch, width), dtype=torch.long)  # (B, T)
    with_types = sentences[0].token_type_ids is not None
    token_types = torch.zeros((batch, width), dtype=torch.long)  # (B, T)
    labels = torch.full((batch, width), IGNORED, dtype=torch.long)  # (B, T)
    for row, sentence in enumerate(sentences):
        length = len(sentence.input_ids)
        input_ids[row, :length] = torch.tensor(sentence.input_ids)
        attention_mask[row, :length] = 1
        if with_types:
            token_types[row, :length] = torch.tensor(sentence.token_type_ids)
        if tags is not None:
            labels[row, :length] = torch.tensor(sentence.labels(tags[row]))
    inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
    if with_types:
        inputs["token_type_ids"] = token_types
    if tags is not None:
        inputs["labels"] = labels
    return inputs


def word_losses(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Each sentence's mean cross-entropy over its tagged words: logits (B, T, K), labels (B, T) -> (B,)."""
    per_token = torch.nn.functional.cross_entropy(logits.transpose(1, 2), labels.clamp(min=0),
                                                  reduction="none")  # (B, T)
    tagged = (labels != IGNORED).to(per_token.dtype)  # (B, T)
    return (per_token * tagged).sum(1) / tagged.sum(1).clamp(min=1)


def first_piece_rows(labels: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rows, positions, word indices) of every tagged piece of a batch's labels (B, T): each word's first piece,
    numbered in order within its sentence."""
    tagged = (labels != IGNORED).cpu().numpy()  # (B, T)
    rows, positions = np.nonzero(tagged)
    words = (np.cumsum(tagged, axis=1) - 1)[rows, positions]
    return rows, positions, words
