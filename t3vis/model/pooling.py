"""Pooling hidden states into one vector per example: the token a family's classifier reads (the first one for
encoders, the last real one for decoders), or the mean of the real tokens."""

from __future__ import annotations

import torch


def pool_hidden_states(
    hidden: torch.Tensor,  # (B, T, D)
    attention_mask: torch.Tensor,  # (B, T) 1 for real tokens
    *,
    pooling: str,
    decoder: bool = False,
    input_ids: torch.Tensor | None = None,  # (B, T), for a decoder's pooled token
    pad_token_id: int | None = None,
) -> torch.Tensor:
    """One vector per example: the pooled token (``"cls"``: the one a classifier reads, the first token of an
    encoder, a decoder's :func:`classifier_positions`) or the mean over real tokens (``"mean"``)."""
    if pooling == "cls" and decoder:
        last = classifier_positions(attention_mask, input_ids, pad_token_id)  # (B,)
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]  # (B, D)
    if pooling == "cls":
        return hidden[:, 0]  # (B, D)
    if pooling == "mean":
        weights = attention_mask.to(hidden.dtype).unsqueeze(-1)  # (B, T, 1)
        return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1)  # (B, D)
    raise ValueError(f"pooling must be 'cls' or 'mean', not {pooling!r}")


def classifier_positions(attention_mask: torch.Tensor, input_ids: torch.Tensor | None = None,
                         pad_token_id: int | None = None) -> torch.Tensor:
    """The position (B,) a decoder sequence classifier reads in each example, by transformers' own rule: the
    rightmost token whose id is not the model's padding id (so a text ending in the padding token, e.g. an
    end-of-sequence token used for padding, is read at the token before it). Without ids or a padding id:
    the last real token (attention mask 1), with either padding side."""
    positions = torch.arange(attention_mask.shape[1], device=attention_mask.device)  # (T,)
    if input_ids is not None and pad_token_id is not None:
        return ((input_ids != pad_token_id).to(torch.int32) * positions).argmax(1)  # (B,)
    return (attention_mask.bool() * positions).argmax(1)  # (B,)
