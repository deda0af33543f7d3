"""The attribution interface: ``method.attribute(bundle, example, target, pruned=...) -> Attribution``."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch

from t3vis.model.heads import Head, encode_one, head_mask
from t3vis.model.access import ModelBundle, eval_mode


@dataclass(frozen=True)
class ExampleInputs:
    """One example, encoded for the model (a batch of one)."""

    inputs: dict  # input_ids, attention_mask (1, T)[, token_type_ids]
    tokens: list[str]  # (T,)
    truncated: bool


def prepare(bundle: ModelBundle, text: str, text_pair: str | None = None) -> ExampleInputs:
    inputs, tokens, truncated = encode_one(bundle, text, text_pair)
    return ExampleInputs(inputs=inputs, tokens=tokens, truncated=truncated)


@dataclass(frozen=True)
class Attribution:
    """Per-token scores for one explained output."""

    method: str
    tokens: list[str]  # (T,)
    scores: np.ndarray  # (T,) signed relevance of each token for the target logit
    target: int  # explained class
    logit: float  # the explained logit
    probs: np.ndarray  # (K,) the prediction the explanation is of

    @property
    def total(self) -> float:
        """Sum of the token scores (for a conserving method on a bias-free model: the logit)."""
        return float(self.scores.sum())


class AttributionMethod:
    """Base class. Subclasses set ``name``, ``label``, ``slow`` and implement ``_scores``."""

    name: str = ""
    label: str = ""
    slow: bool = False  # the app runs slow methods only on request
    description: str = ""

    def attribute(self, bundle: ModelBundle, example: ExampleInputs, target: int, *,
                  pruned: Iterable[Head] = ()) -> Attribution:
        """Scores (T,) of each token for the logit of class ``target``, with the pruned heads masked."""
        if not 0 <= target < len(bundle.label_names):
            raise ValueError(f"target {target} is not one of the model's {len(bundle.label_names)} classes")
        mask = head_mask(pruned, bundle.num_layers, bundle.num_heads).to(bundle.device)  # (L, H)
        # Explanations are of the deterministic model: dropout off, whatever mode the model came in.
        with eval_mode(bundle.model), torch.enable_grad():
            scores, logits = self._scores(bundle, example.inputs, target, mask)
        logits = logits.detach().float().cpu()[0]  # (K,)
        return Attribution(method=self.name, tokens=example.tokens, scores=scores.detach().float().cpu().numpy(),
                           target=target, logit=float(logits[target]), probs=torch.softmax(logits, -1).numpy())

    def _scores(self, bundle: ModelBundle, inputs: dict, target: int,
                mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """((T,) scores, (1, K) logits)."""
        raise NotImplementedError


def forward_from_embeddings(bundle: ModelBundle, inputs: dict, mask: torch.Tensor):
    """A function of word embeddings (B, T, D) -> logits (B, K), the other inputs fixed (expanded to B)."""
    from t3vis.model.access import AttentionProbe, run_with_probe

    def forward(embeddings: torch.Tensor) -> torch.Tensor:
        batch = embeddings.shape[0]
        others = {key: value.expand(batch, -1) for key, value in inputs.items() if key != "input_ids"}
        output, _ = run_with_probe(bundle.model, AttentionProbe(head_mask=mask), inputs_embeds=embeddings, **others)
        return output.logits  # (B, K)

    return forward
