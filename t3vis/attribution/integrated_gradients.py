"""Integrated Gradients (Sundararajan et al. 2017) on the word embeddings, with Captum.

Baseline: zero word embeddings (position and token-type embeddings kept). 32 Gauss-Legendre
steps. Slower than the others (one batched forward and backward per step): the app runs it on request.
"""

from __future__ import annotations

import torch
from captum.attr import IntegratedGradients as CaptumIntegratedGradients

from t3vis.attribution.base import AttributionMethod, forward_from_embeddings, predicted_target


class IntegratedGradients(AttributionMethod):
    name = "integrated_gradients"
    label = "Integrated Gradients"
    slow = True
    description = "path integral of gradients from zero word embeddings to the input, 32 steps (Captum)"
    steps = 32

    def _scores(self, bundle, inputs, target, mask):
        embeddings = bundle.model.get_input_embeddings()(inputs["input_ids"]).detach()  # (1, T, D)
        forward = forward_from_embeddings(bundle, inputs, mask)
        if target is None:
            with torch.no_grad():
                target = predicted_target(forward(embeddings))
        attributions = CaptumIntegratedGradients(forward).attribute(
            embeddings, baselines=torch.zeros_like(embeddings), target=target, n_steps=self.steps,
            internal_batch_size=self.steps)
        with torch.no_grad():
            logits = forward(embeddings)  # (1, K)
        return attributions.sum(-1)[0], logits  # (T,)
