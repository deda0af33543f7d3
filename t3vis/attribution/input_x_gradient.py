"""Input×Gradient (T3-Vis appendix A.2): (∂y_c/∂e_i)·e_i summed over the embedding dimension.

e_i is token i's word embedding; position and token-type embeddings are added by the model and
held fixed. Computed with Captum's ``InputXGradient`` on the word embeddings.
"""

from __future__ import annotations

import torch
from captum.attr import InputXGradient as CaptumInputXGradient

from t3vis.attribution.base import AttributionMethod, forward_from_embeddings


class InputXGradient(AttributionMethod):
    name = "input_x_gradient"
    label = "Input×Gradient"
    description = "gradient of the class logit times the token's word embedding, summed over dimensions (Captum)"

    def _scores(self, bundle, inputs, target, mask):
        embeddings = bundle.model.get_input_embeddings()(inputs["input_ids"]).detach()  # (1, T, D)
        forward = forward_from_embeddings(bundle, inputs, mask)
        seen: list[torch.Tensor] = []

        def forward_keeping_logits(values: torch.Tensor) -> torch.Tensor:
            logits = forward(values)  # (1, K)
            seen.append(logits.detach())  # Captum's own forward pass gives the prediction: no second pass
            if target is None:  # the predicted class's logit (1, 1): its gradient is that class's
                return logits.gather(1, logits.detach().argmax(1, keepdim=True))
            return logits

        attributions = CaptumInputXGradient(forward_keeping_logits).attribute(embeddings.requires_grad_(True),
                                                                              target=target)
        return attributions.sum(-1)[0], seen[-1]  # (T,), (1, K)
