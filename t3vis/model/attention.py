"""How t3vis sees and changes attention: one probe per forward pass, read by every supported architecture.

In transformers 5, ``head_mask`` is gone (BERT swallows it silently) and the default ``sdpa``
attention returns no probabilities. t3vis therefore registers its own attention function,
``"t3vis"``, with ``transformers.AttentionInterface``. Models are loaded with
``attn_implementation="t3vis"``; each call that wants more than plain logits passes an
:class:`AttentionProbe` as the keyword argument ``t3vis_probe``, which transformers forwards to
every attention call. The probe is per call, so a model cached for many app sessions is never
changed: one session's head mask cannot leak into another's.

Without a probe (or with a probe that needs no probabilities) the function is PyTorch's SDPA,
so plain inference and training run at full speed.

DeBERTa-v2/v3 computes its disentangled attention (content and relative-position scores) inside its own
module, outside ``AttentionInterface``. For it, :func:`install_module_attention` replaces the forward of
each attention module of one model *instance* with :func:`disentangled_attention`: the same computation,
with the probabilities passed through the same probe, which it reads from a context variable that
:func:`probe_context` sets for the call. Without an active probe it runs the module's own forward. (A forward
recomputed by gradient checkpointing in autograd's own threads would not see the probe: t3vis runs its probed
passes without gradient checkpointing.)
"""

from __future__ import annotations

import contextvars
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import nn
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import repeat_kv, sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

from t3vis.errors import ModelError

ATTENTION_NAME = "t3vis"

PROBE_KWARG = "t3vis_probe"

# Called with (layer, probabilities (B, H, T, T)) after the head mask is applied.
AttentionConsumer = Callable[[int, torch.Tensor], None]


@dataclass
class AttentionProbe:
    """What one forward pass should do with attention, and what it recorded.

    Parameters
    ----------
    head_mask : Tensor (L, H) or (B, L, H), optional
        Multiplies each head's attention probabilities (hence its context output). Ones change
        nothing; a zero removes the head. May require grad (head importance); a mask per example
        (B, L, H) gives every example's own gradient in one backward pass.
    record : bool
        Keep every layer's attention probabilities in ``attentions``.
    consumer : callable, optional
        Receives ``(layer, probs)`` for each layer as it is computed, e.g. to aggregate over a
        dataset without keeping the tensors.
    detach_probabilities : bool
        Treat attention probabilities as constants in the backward pass (conservative
        propagation for LRP, Ali et al. 2022).
    observe_only : bool
        The recording and the consumer see the probabilities, computed without gradients, while the
        layer's output comes from the fast attention (SDPA) with the head mask applied to it: for a
        backward pass to the head mask (importance) that should not store T x T probabilities per head.
        ``detach_probabilities`` works the same way, with the queries and keys detached before SDPA.
    only_layers : set of int, optional
        Compute probabilities (record, consumer) in these layers only; the others run at full speed.
    """

    head_mask: torch.Tensor | None = None
    record: bool = False
    consumer: AttentionConsumer | None = None
    detach_probabilities: bool = False
    observe_only: bool = False
    only_layers: frozenset[int] | None = None
    # Set once per forward pass by run_with_probe (one device sync, not one per layer): the head mask is all ones.
    head_mask_is_ones: bool = field(default=False, init=False, repr=False)
    attentions: dict[int, torch.Tensor] = field(default_factory=dict)  # layer -> (B, H, T, T)
    layers_seen: list[int] = field(default_factory=list)

    @property
    def needs_probabilities(self) -> bool:
        return self.record or self.consumer is not None or self.detach_probabilities

    def stacked_attentions(self) -> torch.Tensor:
        """Recorded attention as one tensor (L, B, H, T, T)."""
        return torch.stack([self.attentions[layer] for layer in sorted(self.attentions)])


def t3vis_attention(
    module: torch.nn.Module,
    query: torch.Tensor,  # (B, H, T, d)
    key: torch.Tensor,  # (B, H_kv, S, d)
    value: torch.Tensor,  # (B, H_kv, S, d)
    attention_mask: torch.Tensor | None,  # (B, 1, T, S) bool (True = attend) or additive float
    scaling: float | None = None,
    dropout: float = 0.0,
    **kwargs,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The attention function registered as ``"t3vis"``; returns ((B, T, H, d), probs or None)."""
    probe: AttentionProbe | None = kwargs.pop(PROBE_KWARG, None)
    layer = _seen_by(probe, module)
    head_mask = None if probe is None or probe.head_mask is None else _layer_mask(probe.head_mask, layer)  # (B|1, H)

    seen = probe is not None and (probe.record or probe.consumer is not None) and (
        probe.only_layers is None or layer in probe.only_layers)  # this layer's probabilities are recorded
    # The output is computed from the probabilities only when they are seen and must carry their gradient.
    explicit = seen and not (probe.observe_only or probe.detach_probabilities)
    if seen and not explicit:
        with torch.no_grad():  # seen, not differentiated: the output comes from SDPA below
            apply_probe(probe, layer, _probabilities(module, query, key, attention_mask, scaling))
    if probe is not None and probe.detach_probabilities:  # probabilities as constants: no gradient to q and k
        query, key = query.detach(), key.detach()
    if not explicit:
        output, _ = sdpa_attention_forward(
            module, query, key, value, attention_mask, scaling=scaling, dropout=dropout, **kwargs
        )  # (B, T, H, d)
        if head_mask is not None:
            output = output * head_mask.to(output.dtype)[:, None, :, None]
        return output, None

    probs = _probabilities(module, query, key, attention_mask, scaling)  # (B, H, T, S)
    probs, used = apply_probe(probe, layer, probs)
    probs_dropped = torch.nn.functional.dropout(used, p=dropout, training=module.training)
    value = repeat_kv(value, getattr(module, "num_key_value_groups", 1))  # (B, H, S, d)
    output = torch.matmul(probs_dropped, value).transpose(1, 2).contiguous()  # (B, T, H, d)
    return output, probs


def _probabilities(module: nn.Module, query: torch.Tensor, key: torch.Tensor, attention_mask: torch.Tensor | None,
                   scaling: float | None) -> torch.Tensor:
    """Attention probabilities (B, H, T, S) of queries (B, H, T, d) and keys (B, H_kv, S, d) under the mask."""
    key = repeat_kv(key, getattr(module, "num_key_value_groups", 1))  # (B, H, S, d)
    if scaling is None:
        scaling = query.size(-1) ** -0.5
    scores = torch.matmul(query * scaling, key.transpose(2, 3))  # (B, H, T, S); scaled queries: one pass less
    lowest = torch.finfo(scores.dtype).min
    if attention_mask is None and getattr(module, "is_causal", False) and scores.shape[2] > 1:
        # A decoder's batch without padding comes with no mask (SDPA applies causality itself): apply it here.
        size_q, size_k = scores.shape[2], scores.shape[3]
        causal = torch.ones(size_q, size_k, dtype=torch.bool, device=scores.device).tril(diagonal=size_k - size_q)
        scores = scores.masked_fill(~causal, lowest)
    elif attention_mask is not None and attention_mask.dtype == torch.bool:
        scores = scores.masked_fill(~attention_mask, lowest)
    elif attention_mask is not None:
        scores = scores + attention_mask  # an additive mask
    return torch.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype)  # (B, H, T, S)


def _layer_mask(mask: torch.Tensor, layer: int) -> torch.Tensor:
    """The mask of one layer as (B, H) or (1, H), from a mask (L, H) or (B, L, H)."""
    if mask.dim() == 2:
        return mask[layer][None]  # (1, H)
    if mask.dim() == 3:
        return mask[:, layer]  # (B, H)
    raise ValueError(f"a head mask has shape (L, H) or (B, L, H), not {tuple(mask.shape)}")


AttentionInterface.register(ATTENTION_NAME, t3vis_attention)
# Without a matching mask function transformers would silently skip the padding mask.
AttentionMaskInterface.register(ATTENTION_NAME, sdpa_mask)


def _seen_by(probe: AttentionProbe | None, module: nn.Module) -> int | None:
    """The module's layer index, noted in the probe's ``layers_seen``."""
    layer = getattr(module, "layer_idx", None)
    if probe is not None:
        if layer is None:
            raise ModelError(f"{type(module).__name__} has no layer_idx; t3vis cannot tell its layers apart.")
        probe.layers_seen.append(layer)
    return layer


def apply_probe(probe: AttentionProbe, layer: int, probs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The probe's work on one layer's probabilities (B, H, T, S): mask heads, record, hand to the consumer.

    Returns (probabilities after the head mask, the same as the values should see: detached for LRP).
    """
    mask = None if probe.head_mask is None else _layer_mask(probe.head_mask, layer)  # (B|1, H)
    if mask is not None and (mask.requires_grad and torch.is_grad_enabled() or not probe.head_mask_is_ones):
        probs = probs * mask.to(probs.dtype)[:, :, None, None]  # (a mask of ones changes nothing: skipped)
    seen = probe.only_layers is None or layer in probe.only_layers
    if probe.record and seen:
        probe.attentions[layer] = probs.detach()
    if probe.consumer is not None and seen:
        probe.consumer(layer, probs.detach())
    return probs, (probs.detach() if probe.detach_probabilities else probs)


# ---- DeBERTa-v2/v3: attention computed inside its own module -------------------------------------------

_ACTIVE_PROBE: contextvars.ContextVar[AttentionProbe | None] = contextvars.ContextVar("t3vis_probe", default=None)
_MODULE_ATTENTION_CLASSES = ("DisentangledSelfAttention",)  # modules whose forward t3vis replaces


@contextmanager
def probe_context(probe: AttentionProbe) -> Iterator[AttentionProbe]:
    """Within the block, this thread's module-level attention (DeBERTa) uses ``probe``."""
    token = _ACTIVE_PROBE.set(probe)
    try:
        yield probe
    finally:
        _ACTIVE_PROBE.reset(token)


def _module_attention_modules(model: nn.Module) -> list[nn.Module]:
    return [module for module in model.modules() if type(module).__name__ in _MODULE_ATTENTION_CLASSES]


def install_module_attention(model: nn.Module) -> list[nn.Module]:
    """Route a DeBERTa model's attention modules through :func:`disentangled_attention`; returns the modules
    newly routed (none for other architectures, or when already routed)."""
    installed = []
    for layer, module in enumerate(_module_attention_modules(model)):
        if getattr(module, "layer_idx", None) is None:
            module.layer_idx = layer
        if "forward" not in vars(module):
            module.forward = types.MethodType(disentangled_attention, module)
            installed.append(module)
    return installed


def remove_module_attention(modules: list[nn.Module]) -> None:
    """Give the modules their own forward back."""
    for module in modules:
        vars(module).pop("forward", None)


def routes_module_attention(model: nn.Module) -> bool:
    """Whether the model has module-level attention and all of it goes through t3vis."""
    modules = _module_attention_modules(model)
    return bool(modules) and all("forward" in vars(module) for module in modules)


def disentangled_attention(
    self: nn.Module,  # a DeBERTa-v2 DisentangledSelfAttention
    hidden_states: torch.Tensor,  # (B, T, D)
    attention_mask: torch.Tensor,  # (B, 1, T, T), nonzero = attend
    output_attentions: bool = False,
    query_states: torch.Tensor | None = None,
    relative_pos: torch.Tensor | None = None,
    rel_embeddings: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """DeBERTa's disentangled self-attention with the active probe's capture and head mask.

    The same computation as ``DisentangledSelfAttention.forward`` (content-to-content scores plus the
    content-to-position and position-to-content biases, scaled by sqrt(d · (1 + number of bias kinds))),
    only the probabilities pass through :func:`apply_probe`. Without a probe: the module's own forward.
    """
    probe = _ACTIVE_PROBE.get()
    if probe is None:
        return type(self).forward(self, hidden_states, attention_mask, output_attentions, query_states=query_states,
                                  relative_pos=relative_pos, rel_embeddings=rel_embeddings)
    layer = _seen_by(probe, self)
    heads = self.num_attention_heads
    if query_states is None:
        query_states = hidden_states
    query = self.transpose_for_scores(self.query_proj(query_states), heads)  # (B*H, T, d)
    key = self.transpose_for_scores(self.key_proj(hidden_states), heads)  # (B*H, S, d)
    value = self.transpose_for_scores(self.value_proj(hidden_states), heads)  # (B*H, S, d)
    scale_factor = 1 + ("c2p" in self.pos_att_type) + ("p2c" in self.pos_att_type)
    scale = torch.sqrt(torch.tensor(query.size(-1), dtype=torch.float) * scale_factor).to(query.dtype)
    scores = torch.bmm(query, key.transpose(-1, -2) / scale)  # (B*H, T, S)
    if self.relative_attention:
        scores = scores + self.disentangled_attention_bias(query, key, relative_pos,
                                                           self.pos_dropout(rel_embeddings), scale_factor)
    scores = scores.view(-1, heads, scores.size(-2), scores.size(-1))  # (B, H, T, S)
    scores = scores.masked_fill(~attention_mask.bool(), torch.finfo(query.dtype).min)
    probs = torch.softmax(scores, dim=-1)  # (B, H, T, S)
    probs, used = apply_probe(probe, layer, probs)
    used = self.dropout(used)
    context = torch.bmm(used.view(-1, used.size(-2), used.size(-1)), value)  # (B*H, T, d)
    context = context.view(-1, heads, context.size(-2), context.size(-1)).permute(0, 2, 1, 3).contiguous()
    context = context.view(*context.shape[:2], -1)  # (B, T, H*d)
    return context, (probs if output_attentions else None)
