"""Head importance: the first-order Taylor estimate of the loss change from removing a head.

T3-Vis (appendix A.1) after Michel et al. (2019): each head's context output is multiplied by
a mask variable m (all ones); removing head h changes the loss by about |dL/dm_h|. The
importance of a head is that gradient's magnitude, accumulated over the validation batches:

    importance_h = sum over batches b of |dL_b / dm_h| / N

with L_b the *summed* cross-entropy of batch b and N the number of examples, so the value does
not depend on the batch size's effect on the mean. Two normalisations are stored beside it:
``importance_layer_norm`` divides by the L2 norm of the layer's importances (Michel et al.);
``importance_global`` divides by the largest importance of any head, giving [0, 1].
"""

from __future__ import annotations

import numpy as np
import torch
from transformers import PreTrainedModel

from t3vis.model_access import AttentionProbe, run_with_probe


def head_mask_gradient(
    model: PreTrainedModel,
    inputs: dict,
    labels: torch.Tensor,  # (B,)
    *,
    probe: AttentionProbe | None = None,
    head_mask: torch.Tensor | None = None,  # (L, H) values of m; default ones
    **model_kwargs,
) -> tuple[object, torch.Tensor]:
    """One forward and backward pass; returns ``(output, dL/dm (L, H))``, L = summed cross-entropy.

    The model's parameters are not touched and get no gradients (``torch.autograd.grad`` only
    follows the paths to the mask).
    """
    config = model.config
    values = torch.ones(config.num_hidden_layers, config.num_attention_heads) if head_mask is None else head_mask
    mask = values.detach().clone().to(model.device).float().requires_grad_(True)  # (L, H)
    probe = probe or AttentionProbe()
    probe.head_mask = mask
    with torch.enable_grad():
        output, _ = run_with_probe(model, probe, **inputs, **model_kwargs)
        loss = torch.nn.functional.cross_entropy(output.logits.float(), labels, reduction="sum")
        (gradient,) = torch.autograd.grad(loss, mask)
    probe.head_mask = None
    return output, gradient.detach().cpu()  # (L, H)


def normalise_importance(importance: np.ndarray) -> dict[str, np.ndarray]:
    """The stored columns for raw importances (L, H): raw, per-layer L2-normalised, global max-normalised."""
    importance = np.asarray(importance, dtype=np.float64)  # (L, H)
    layer_norm = np.linalg.norm(importance, axis=1, keepdims=True)  # (L, 1)
    largest = importance.max() if importance.size else 0.0
    return {
        "importance": importance,
        "importance_layer_norm": importance / np.where(layer_norm > 0, layer_norm, 1.0),
        "importance_global": importance / (largest if largest > 0 else 1.0),
    }
