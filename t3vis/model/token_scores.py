"""Scores of gold tokens under a language model's logits: log-probability, rank, the argmax and its probability.

One function for every place that scores completion tokens: ingestion (teacher forced, eval mode), the training
dynamics (the training pass's own logits) and the app. The vocabulary is large (49,152 for SmolLM2), so rows are
scored in chunks and only (K,) values are kept of a (K, V) logits tensor.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

ROWS_PER_CHUNK = 512  # positions whose (rows, V) comparisons are made at once


@dataclass(frozen=True)
class TokenScores:
    """K scored positions, on the CPU."""

    log_probability: torch.Tensor  # (K,) float64: log-probability of the gold token
    rank: torch.Tensor  # (K,) int64: the gold token's rank, 1 = the argmax (ties in id order, as argmax breaks them)
    predicted: torch.Tensor  # (K,) int64: the argmax token
    top_log_probability: torch.Tensor  # (K,) float64: log-probability of the argmax token


def score_tokens(logits: torch.Tensor, gold: torch.Tensor) -> TokenScores:
    """Score ``gold`` (K,) token ids under ``logits`` (K, V) (any device and dtype; nothing keeps a gradient)."""
    parts: dict[str, list[torch.Tensor]] = {name: [] for name in ("log_probability", "rank", "predicted", "top")}
    with torch.no_grad():
        vocabulary_ids = torch.arange(logits.shape[-1], device=logits.device)  # (V,)
        for begin in range(0, logits.shape[0], ROWS_PER_CHUNK):
            chunk = logits[begin:begin + ROWS_PER_CHUNK].detach().float()  # (k, V)
            target = gold[begin:begin + ROWS_PER_CHUNK].to(chunk.device)  # (k,)
            normaliser = torch.logsumexp(chunk, dim=-1)  # (k,)
            gold_logit = chunk.gather(1, target[:, None])  # (k, 1)
            top_logit, predicted = chunk.max(dim=-1)  # (k,), (k,): max returns the first maximum, as argmax
            ahead = (chunk > gold_logit) | ((chunk == gold_logit) & (vocabulary_ids[None] < target[:, None]))  # (k, V)
            parts["log_probability"].append((gold_logit[:, 0] - normaliser).double().cpu())
            parts["rank"].append((ahead.sum(dim=-1) + 1).cpu())
            parts["predicted"].append(predicted.cpu())
            parts["top"].append((top_logit - normaliser).double().cpu())
    empty = {"log_probability": torch.zeros(0, dtype=torch.float64), "rank": torch.zeros(0, dtype=torch.long),
             "predicted": torch.zeros(0, dtype=torch.long), "top": torch.zeros(0, dtype=torch.float64)}
    joined = {name: torch.cat(values) if values else empty[name] for name, values in parts.items()}
    return TokenScores(log_probability=joined["log_probability"], rank=joined["rank"].long(),
                       predicted=joined["predicted"].long(), top_log_probability=joined["top"])


def scored_positions(labels: torch.Tensor, ignored: int = -100) -> tuple[torch.Tensor, torch.Tensor]:
    """(rows, positions), (K,) each: the logit positions that score a label of ``labels`` (B, T) — the logits at t
    score the label at t + 1 (transformers' causal LM convention), row-major order."""
    keep = torch.zeros_like(labels, dtype=torch.bool)  # (B, T)
    keep[:, :-1] = labels[:, 1:] != ignored
    return keep.nonzero(as_tuple=True)
