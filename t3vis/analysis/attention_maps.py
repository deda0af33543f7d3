"""One example's attention, light at any input length: every head pooled, full matrices only where affordable.

A 2,048-token input through a 4-layer, 4-head model has 67 million attention weights (268 MB as float32); a
BERT-base at 512 tokens has 38 million. The views never show all of them at once: the head grid shows each head
pooled to 16 x 16 blocks, and only the selected head is drawn in full (its matrix, or the row of a clicked
token). :class:`AttentionMaps` keeps exactly that. While the forward pass runs, a probe consumer pools each
layer's heads on the fly (two small matrix products per layer) and keeps every full matrix only when all of them
together stay under :data:`FULL_ENTRIES`; otherwise a head's full matrix is computed when it is first asked for,
by one forward pass without gradients that keeps that head alone, and remembered.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable

import numpy as np
import torch

from t3vis.errors import ModelError
from t3vis.model.access import AttentionProbe, eval_mode, run_with_probe

FULL_ENTRIES = 8_000_000  # L·H·T² up to this: every head's full matrix is kept (float32, up to 32 MB)
PATTERN_BINS = 16  # each head's pooled pattern is at most this many blocks a side


def block_means(size: int, bins: int, *, dtype=torch.float32, device=None) -> torch.Tensor:
    """(bins, size): row b averages the positions of block b of ``size`` consecutive positions (the blocks of
    :func:`t3vis.charts.pooled_attention`)."""
    edges = np.linspace(0, size, bins + 1).round().astype(int)
    weights = torch.zeros(bins, size, dtype=dtype, device=device)
    for block, (start, end) in enumerate(zip(edges[:-1], edges[1:])):
        weights[block, start:end] = 1.0 / (end - start)
    return weights


def pool_heads(probs: torch.Tensor, bins: int = PATTERN_BINS) -> torch.Tensor:
    """Attention (H, T, S) pooled to (H, b, b): each block row the mean of its queries, each block column the sum
    of its keys, so rows still sum to 1; unchanged when T and S are at most ``bins``."""
    size_q, size_k = probs.shape[-2:]
    if size_q <= bins and size_k <= bins:
        return probs
    rows = block_means(size_q, min(bins, size_q), device=probs.device)  # (b, T)
    keys = block_means(size_k, min(bins, size_k), device=probs.device)  # (b, S)
    keys = (keys > 0).to(probs.dtype)  # sums over each block of keys
    return rows.to(probs.dtype) @ probs @ keys.T  # (H, b, b)


class AttentionMaps:
    """Pooled patterns of every head (L, H, b, b), when collected, and full (T, T) matrices of the heads asked for.

    ``maps[layer, head]`` is that head's full matrix (T, T), ``maps[layer, head, token]`` its row for one query
    token (T,): the same indexing as a dense (L, H, T, T) array, which these maps replace.
    """

    def __init__(self, shape: tuple[int, int, int], *, patterns: np.ndarray | None = None,
                 matrices: dict[tuple[int, int], np.ndarray] | None = None,
                 compute_head: Callable[[int, int], np.ndarray] | None = None):
        self.layers, self.heads, self.size = shape  # L, H, T
        self.patterns = patterns  # (L, H, b, b), or None when only full matrices are asked for
        self._matrices = dict(matrices or {})  # (layer, head) -> (T, T)
        self._compute_head = compute_head
        self._lock = threading.Lock()  # one session's reruns may ask for the same head at once

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return self.layers, self.heads, self.size, self.size

    @property
    def all_kept(self) -> bool:
        return len(self._matrices) == self.layers * self.heads

    def head(self, layer: int, head: int) -> np.ndarray:
        """The full (T, T) attention matrix of one head."""
        if not (0 <= layer < self.layers and 0 <= head < self.heads):
            raise IndexError(f"head L{layer}·H{head} is not one of the model's {self.layers} x {self.heads} heads")
        with self._lock:
            if (layer, head) not in self._matrices:
                if self._compute_head is None:
                    raise KeyError(f"the attention of head L{layer}·H{head} was not kept")
                self._matrices[(layer, head)] = self._compute_head(layer, head)
            return self._matrices[(layer, head)]

    def __getitem__(self, index):
        layer, head, *token = index
        matrix = self.head(int(layer), int(head))
        return matrix[token[0]] if token else matrix


class _Collector:
    """A probe consumer that pools every layer's heads and keeps their full matrices when affordable."""

    def __init__(self, keep_all: bool):
        self.keep_all = keep_all
        self.patterns: dict[int, np.ndarray] = {}
        self.matrices: dict[tuple[int, int], np.ndarray] = {}

    def __call__(self, layer: int, probs: torch.Tensor) -> None:  # probs (1, H, T, S)
        heads = probs[0].float()  # (H, T, S)
        self.patterns[layer] = pool_heads(heads).cpu().numpy()  # (H, b, b)
        if self.keep_all:
            for head, matrix in enumerate(heads.cpu().numpy()):
                self.matrices[(layer, head)] = matrix


def attention_collector(num_layers: int, num_heads: int, size: int) -> _Collector:
    """A consumer for :class:`AttentionProbe` over one example of ``size`` tokens (see :func:`collected_maps`)."""
    return _Collector(keep_all=num_layers * num_heads * size * size <= FULL_ENTRIES)


def collected_maps(collector: _Collector | None, shape: tuple[int, int, int], bundle, inputs: dict,
                   head_mask: torch.Tensor | None) -> AttentionMaps:
    """The maps a collector gathered (None: none, every matrix on demand); a head not kept is computed from
    ``inputs`` under ``head_mask`` when asked for."""
    patterns = None if collector is None else np.stack(
        [collector.patterns[layer] for layer in sorted(collector.patterns)])  # (L, H, b, b)
    model = weakref.ref(bundle)  # maps kept in a session's cache must not keep an unloaded model in memory

    def compute_head(layer: int, head: int) -> np.ndarray:
        if model() is None:
            raise ModelError("The checkpoint's model was unloaded from memory since this example was analysed; "
                             "reload the page to analyse it again.")
        return head_attention(model(), inputs, layer, head, head_mask=head_mask)

    return AttentionMaps(shape, patterns=patterns, matrices=None if collector is None else collector.matrices,
                         compute_head=compute_head)


class _HeadCaptured(Exception):
    """Raised by :func:`head_attention`'s consumer once it has the head: the later layers need not run."""


def head_attention(bundle, inputs: dict, layer: int, head: int, *, head_mask: torch.Tensor | None = None
                   ) -> np.ndarray:
    """One head's full attention matrix (T, T) for one example: a forward pass without gradients, at full speed
    up to that layer and no further."""
    kept: dict[str, np.ndarray] = {}

    def keep(seen_layer: int, probs: torch.Tensor) -> None:  # probs (1, H, T, S)
        if seen_layer == layer:
            kept["matrix"] = probs[0, head].float().cpu().numpy()
            raise _HeadCaptured

    probe = AttentionProbe(head_mask=head_mask, consumer=keep, only_layers=frozenset({layer}))
    with eval_mode(bundle.model), torch.no_grad():
        try:
            run_with_probe(bundle.model, probe, **inputs)
        except _HeadCaptured:
            pass
    return kept["matrix"]
