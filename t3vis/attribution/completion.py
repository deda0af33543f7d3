"""Saliency of one completion token of a causal language model: the paper's "click the output to explain it".

Teacher forcing: the logit at position t scores token t+1. Completion token c of an example whose prompt has P
tokens sits at position P + c and is scored by the logits at position p = P + c - 1, so a click on it explains
``logits[p, token]`` over every token at or before p: the whole prompt and the completion tokens before c. Tokens
after p get exactly 0: the model is causal, and the explanation reads the tokens up to p only.

The attribution methods of :data:`t3vis.attribution.METHODS` run unchanged. At one position a causal language model
is a classifier whose classes are its vocabulary: :func:`attribute_completion` hands a method the tokens up to p and
a view of the bundle whose model returns the logits of the last position only, (B, 1, V) (transformers'
``logits_to_keep=1``), and asks it for class ``token``. The rules the methods apply to the model (LRP's
conservative rules, head masks) act on the shared model through the view, inside the call, as they do for a
classifier; the model is never changed. Computing one position's logits, not (T, V), keeps a click at the cost of
one forward and backward pass of the model body (the vocabulary is 49,152 wide for SmolLM2, and Integrated
Gradients runs 32 paths at once).

The output is named as the token classifier's is (:func:`t3vis.attribution.base.word_target`): one int, an index
into the flattened (T*V) logits, ``p * V + token`` (:func:`completion_target`).

Integrated Gradients' baseline, zero word embeddings, does not suit Llama-style decoders: their RMSNorm makes the
network nearly scale-invariant in the embeddings, so the logit jumps about within the first percent of the path
and the scores do not sum to logit − baseline logit (SmolLM2, 64 tokens: 18.3 for 27.2). GPT-2, whose position
embeddings stay in the baseline, is complete.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import nn

from t3vis.attribution.base import Attribution, AttributionMethod, ExampleInputs
from t3vis.model.access import ModelBundle
from t3vis.model.adapters import unwrapped
from t3vis.model.heads import Head
from t3vis.model.language_models import GENERATION
from t3vis.tasks import SEQUENCE_CLASSIFICATION


@dataclass(frozen=True)
class CompletionInputs(ExampleInputs):
    """A prompt and its completion (a reference or a generation) as one sequence, a batch of one, unpadded.

    ``inputs["input_ids"]`` (1, T) is the prompt's P tokens then the completion's T - P; ``prompt_length`` is P,
    the position of the first completion token.
    """

    prompt_length: int = 0

    @property
    def n_outputs(self) -> int:
        """The outputs to explain: the completion's tokens, each through the logits one position before it."""
        return len(self.tokens) - self.prompt_length


def prepare_completion(bundle: ModelBundle, prompt_ids: Sequence[int], completion_ids: Sequence[int]) -> \
        CompletionInputs:
    """The model inputs of ``prompt_ids + completion_ids`` for explaining the completion's tokens.

    Pass the ids the store holds (the encoded, possibly cut, example; a generation as :func:`greedy_generate`
    returned it), so that the tokens explained are the tokens scored. A sequence longer than the model takes is
    cut at the completion's end (``truncated`` says so).

    Parameters
    ----------
    bundle : ModelBundle
        A causal language model (:func:`t3vis.model.language_models.load_language_model`).
    prompt_ids : sequence of int, (P,)
        At least one token: the first completion token is explained through the prompt's last position.
    completion_ids : sequence of int, (C,)
    """
    _check_language_model(bundle)
    prompt, completion = _ids(prompt_ids, "prompt_ids"), _ids(completion_ids, "completion_ids")
    if not prompt:
        raise ValueError("prompt_ids is empty: the first completion token is explained through the logits of the "
                         "prompt's last token, so the prompt needs at least one (e.g. the BOS)")
    if len(prompt) >= bundle.max_length:
        raise ValueError(f"the prompt has {len(prompt)} tokens, leaving no room for a completion token within the "
                         f"model's {bundle.max_length}")
    vocabulary = vocabulary_size(bundle)
    if any(not 0 <= token < vocabulary for token in prompt + completion):
        raise ValueError(f"token ids must lie in the model's vocabulary [0, {vocabulary})")
    ids = (prompt + completion)[:bundle.max_length]
    truncated = len(ids) < len(prompt) + len(completion)
    input_ids = torch.tensor([ids], dtype=torch.long, device=bundle.device)  # (1, T)
    return CompletionInputs(inputs={"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids)},
                            tokens=bundle.tokenizer.convert_ids_to_tokens(ids), truncated=truncated,
                            prompt_length=len(prompt))


def completion_target(bundle: ModelBundle, example: CompletionInputs, completion_index: int,
                      token_id: int | None = None) -> int:
    """The output a click on completion token ``completion_index`` explains: the logit of ``token_id`` (default:
    that completion token itself) at the position that predicts it, ``prompt_length + completion_index - 1``, as
    an index into the flattened (T*V) logits (``position * V + token_id``).

    Another ``token_id`` asks why the model gave that token its score there (e.g. the reference's token at a
    position where the generation differs).
    """
    if not isinstance(example, CompletionInputs):
        raise TypeError("completion_target needs the CompletionInputs of prepare_completion (it knows where the "
                        "completion starts)")
    if not 0 <= completion_index < example.n_outputs:
        raise ValueError(f"completion token {completion_index} is not one of the example's {example.n_outputs}")
    position = example.prompt_length + completion_index - 1
    token = int(example.inputs["input_ids"][0, position + 1]) if token_id is None else int(token_id)
    vocabulary = vocabulary_size(bundle)
    if not 0 <= token < vocabulary:
        raise ValueError(f"token_id {token} is not in the model's vocabulary [0, {vocabulary})")
    return position * vocabulary + token


def explained_output(bundle: ModelBundle, target: int) -> tuple[int, int]:
    """(position, token id) of a flattened target: whose logits, and which of them, the target names."""
    position, token = divmod(int(target), vocabulary_size(bundle))
    return position, token


def attribute_completion(method: AttributionMethod, bundle: ModelBundle, example: ExampleInputs, target: int, *,
                         pruned: Iterable[Head] = ()) -> Attribution:
    """Scores (T,) of each token of ``example`` for the logit ``target`` names (:func:`completion_target`), with
    the pruned heads masked.

    Tokens after the explained position score exactly 0. ``Attribution.target`` is ``target``, ``logit`` the
    explained logit, ``probs`` (V,) the model's next-token distribution at the explained position.

    Parameters
    ----------
    method : AttributionMethod
        One of :data:`t3vis.attribution.METHODS`, unchanged.
    bundle : ModelBundle
        The causal language model the example was prepared for.
    example : ExampleInputs
        A batch of one without padding (:func:`prepare_completion`).
    target : int
        ``position * V + token``: the logit of ``token`` at ``position`` (0 <= position < T).
    """
    _check_language_model(bundle)
    input_ids = example.inputs["input_ids"]  # (1, T)
    length = int(input_ids.shape[1])
    vocabulary = vocabulary_size(bundle)
    if not 0 <= int(target) < length * vocabulary:
        raise ValueError(f"target {target} is not one of the {length} x {vocabulary} logits of the example")
    position, token = explained_output(bundle, target)
    # The logits at `position` read the tokens up to it (causal attention): the method sees those only.
    upto = ExampleInputs(inputs={name: value[:, :position + 1] for name, value in example.inputs.items()},
                         tokens=example.tokens[:position + 1], truncated=example.truncated)
    at_position = replace(bundle, model=_LastPositionLogits(bundle.model), task=SEQUENCE_CLASSIFICATION,
                          label_names=range(vocabulary))  # the classes of one position: the vocabulary
    result = method.attribute(at_position, upto, token, pruned=pruned)
    if result.probs.shape != (vocabulary,):
        raise ValueError(f"the model gives {result.probs.shape[0]} logits per position, its config.vocab_size "
                         f"{vocabulary}: the target cannot be read")
    scores = np.zeros(length, dtype=result.scores.dtype)  # (T,): later tokens are not read, hence 0
    scores[:position + 1] = result.scores
    return replace(result, tokens=example.tokens, scores=scores, target=int(target))


def vocabulary_size(bundle: ModelBundle) -> int:
    """V: the logits per position (the width of the language-model head)."""
    return int(bundle.model.config.vocab_size)


class _LastPositionLogits(nn.Module):
    """A causal LM seen as a classifier over its vocabulary: ``forward`` returns the model's output with the logits
    of the last position only, (B, 1, V), which the methods flatten to (B, V).

    It holds the shared model, unchanged, and gives the methods what they read of a model: ``config``, the input
    embeddings, and the transformers model inside (``get_base_model``, as a peft adapter does).
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.config = model.config

    def get_base_model(self) -> nn.Module:
        return unwrapped(self.model)

    def get_input_embeddings(self) -> nn.Module:
        return self.model.get_input_embeddings()

    def forward(self, **inputs):
        return self.model(**inputs, logits_to_keep=1, use_cache=False)


def _check_language_model(bundle: ModelBundle) -> None:
    if bundle.task != GENERATION:
        raise ValueError(f"completion saliency is for causal language models (task {GENERATION!r}); this bundle's "
                         f"task is {bundle.task!r}: use the method's attribute()")


def _ids(values, name: str) -> list[int]:
    """Token ids as a list of int, from a list, an array or a 1-d tensor."""
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise TypeError(f"{name} should be a sequence of token ids, not {type(values).__name__}")
    return [int(token) for token in (values.tolist() if hasattr(values, "tolist") else values)]
