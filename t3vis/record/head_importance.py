"""Head importance: the first-order Taylor estimate of the loss change from removing a head.

T3-Vis (appendix A.1) after Michel et al. (2019): each head's context output is multiplied by
a mask variable m (all ones); removing head h changes the loss of example x by about
|dL(x)/dm_h|. The importance of a head is the mean of that magnitude over the examples:

    importance_h = (1/N) * sum over examples x of |dL(x) / dm_h|

per example first, then the absolute value, then the mean. (The absolute value of a batch's
summed gradient is a different number, which depends on the batch size and on which examples
share a batch: gradients of opposite sign cancel.) A mask with one row per example, shape
(B, L, H), gives every example's gradient in one backward pass, since example b's loss depends
only on its own row. So the aggregate importance of a split is exactly the mean of the
instance-scale importances the head view computes for single examples.

Two normalisations are stored beside it (:func:`t3vis.store.rows.normalise_importance`): ``importance_layer_norm`` divides by the L2 norm of
the layer's importances (Michel et al.); ``importance_global`` divides by the largest importance
of any head, giving [0, 1].
"""

from __future__ import annotations

import torch
from collections.abc import Callable

from transformers import PreTrainedModel

from t3vis.model.access import AttentionProbe, run_with_probe


def head_mask_gradient(
    model: PreTrainedModel,
    inputs: dict,
    labels: torch.Tensor | None,  # (B,) class ids, for the default loss
    *,
    probe: AttentionProbe | None = None,
    head_mask: torch.Tensor | None = None,  # (L, H) values of m; default ones
    example_losses: Callable[[object], torch.Tensor] | None = None,
    **model_kwargs,
) -> tuple[object, torch.Tensor]:
    """One forward and backward pass; returns ``(output, dL(x)/dm (B, L, H))``, one gradient per example.

    L(x) is the cross-entropy of example x against ``labels``, or ``example_losses(output)`` (B,) for
    other tasks (e.g. a document's mean sentence loss in extractive summarization). The mask is expanded to one row per example, so the
    gradient of the summed loss with respect to row b is example b's own gradient. The model's
    parameters are not touched and get no gradients (``torch.autograd.grad`` only follows the
    paths to the mask).
    """
    config = model.config
    values = torch.ones(config.num_hidden_layers, config.num_attention_heads) if head_mask is None else head_mask
    batch = inputs["input_ids"].shape[0]
    mask = values.detach().float().to(model.device).expand(batch, -1, -1).clone().requires_grad_(True)  # (B, L, H)
    probe = probe or AttentionProbe()
    probe.head_mask = mask
    try:
        with torch.enable_grad():
            output, _ = run_with_probe(model, probe, **inputs, **model_kwargs)
            if example_losses is None:
                loss = torch.nn.functional.cross_entropy(output.logits.float(), labels, reduction="sum")
            else:
                loss = example_losses(output).sum()
            (gradient,) = torch.autograd.grad(loss, mask)
    finally:
        probe.head_mask = None
    return output, gradient.detach().cpu()  # (B, L, H)
