"""The attribution interface: ``method.attribute(bundle, example, target, pruned=...) -> Attribution``."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch

from t3vis.model.heads import Head, encode_one, head_mask
from t3vis.model.access import ModelBundle, eval_mode
from t3vis.model.summarizer import collate_documents, encode_documents, uses_segments
from t3vis.model.word_encoding import collate_words, encode_words
from t3vis.tasks import SIGMOID, task_spec


@dataclass(frozen=True)
class ExampleInputs:
    """One example, encoded for the model (a batch of one)."""

    inputs: dict  # input_ids, attention_mask (1, T)[, token_type_ids][, cls_positions, sentence_mask (1, S)]
    tokens: list[str]  # (T,)
    truncated: bool
    sentence_of_token: list[int] | None = None  # (T,) a document's sentence of each token (summarization)
    first_pieces: list[int] | None = None  # (W_kept,) each word's first piece (token classification)

    @property
    def n_outputs(self) -> int | None:
        """Outputs to explain when they are the example's own (a document's kept sentences), else None."""
        positions = self.inputs.get("cls_positions")
        return None if positions is None else int(positions.shape[1])


def prepare(bundle: ModelBundle, text: str, text_pair: str | None = None) -> ExampleInputs:
    inputs, tokens, truncated = encode_one(bundle, text, text_pair)
    return ExampleInputs(inputs=inputs, tokens=tokens, truncated=truncated)


def prepare_document(bundle: ModelBundle, sentences: list[str]) -> ExampleInputs:
    """A document for a summarizer: ``[CLS] s [SEP]`` per sentence, cut at the model's limit."""
    (document,) = encode_documents(bundle.tokenizer, [sentences], max_length=bundle.max_length,
                                   segments=uses_segments(bundle.model))
    inputs = collate_documents([document], pad_token_id=bundle.pad_token_id)
    inputs = {name: value.to(bundle.device) for name, value in inputs.items()}
    return ExampleInputs(inputs=inputs, tokens=bundle.tokenizer.convert_ids_to_tokens(document.input_ids),
                         truncated=document.n_kept < document.n_sentences,
                         sentence_of_token=document.sentence_of_token)


def prepare_words(bundle: ModelBundle, words: list[str], *, max_length: int | None = None) -> ExampleInputs:
    """A sentence of words for a token classifier, cut at ``max_length`` tokens (default and at most: the model's
    limit; pass the run's, so that the same words are cut as in the store)."""
    limit = min(max_length or bundle.max_length, bundle.max_length)
    (sentence,) = encode_words(bundle.tokenizer, [words], max_length=limit)
    inputs = collate_words([sentence], pad_token_id=bundle.pad_token_id)
    inputs = {name: value.to(bundle.device) for name, value in inputs.items()}
    return ExampleInputs(inputs=inputs, tokens=bundle.tokenizer.convert_ids_to_tokens(sentence.input_ids),
                         truncated=sentence.n_kept < sentence.n_words, first_pieces=sentence.first_pieces)


def word_target(bundle: ModelBundle, example: ExampleInputs, word: int, tag: int) -> int:
    """The output to explain for a token classifier: the logit of ``tag`` at ``word``'s first piece, as an index
    into the flattened (T*K) logits that :meth:`AttributionMethod.attribute` takes."""
    if example.first_pieces is None or not 0 <= word < len(example.first_pieces):
        raise ValueError(f"word {word} is not one of the {len(example.first_pieces or [])} words the model tags")
    return example.first_pieces[word] * len(bundle.label_names) + int(tag)


@dataclass(frozen=True)
class Attribution:
    """Per-token scores for one explained output."""

    method: str
    tokens: list[str]  # (T,)
    scores: np.ndarray  # (T,) signed relevance of each token for the target logit
    target: int  # explained class (a summarizer: the sentence; a token classifier: token * K + tag, see word_target)
    logit: float  # the explained logit
    probs: np.ndarray  # (K,) the prediction the explanation is of (a summarizer: (S,) each sentence's probability)

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

    def attribute(self, bundle: ModelBundle, example: ExampleInputs, target: int | None, *,
                  pruned: Iterable[Head] = ()) -> Attribution:
        """Scores (T,) of each token for the logit of class ``target`` (a summarizer: of sentence ``target``'s
        score), with the pruned heads masked. ``target=None`` explains the predicted class of an example-level
        classifier, found in the same forward pass (no pass of its own); ``Attribution.target`` says which."""
        spec = task_spec(bundle.task)
        # One logit per unit (a summarizer's sentences), one per class of the example, or one per class of
        # each token (a token classifier: see word_target).
        classes = len(bundle.label_names)
        outputs = example.n_outputs if spec.output == SIGMOID else \
            classes * len(example.tokens) if spec.unit == "word" else classes
        if target is None and (spec.output == SIGMOID or spec.unit == "word"):
            raise ValueError("target None (the predicted class) is for example-level classifiers; a summarizer's "
                             "sentence or a tagger's word and tag must be named")
        if target is not None and not 0 <= target < outputs:
            what = f"{spec.unit}s" if spec.output == SIGMOID else "classes"
            raise ValueError(f"target {target} is not one of the {outputs} {what} the model scores")
        mask = head_mask(pruned, bundle.num_layers, bundle.num_heads).to(bundle.device)  # (L, H)
        # Explanations are of the deterministic model: dropout off, whatever mode the model came in.
        with eval_mode(bundle.model), torch.enable_grad():
            scores, logits = self._scores(bundle, example.inputs, target, mask)
        logits = logits.detach().float().cpu()[0]  # (K,) or (S,) or (T*K,)
        if target is None:
            target = int(logits.argmax())  # the class the method explained (see predicted_target)
        if spec.output == SIGMOID:
            probs = torch.sigmoid(logits)
        elif spec.unit == "word":  # the explained token's distribution over the tags
            probs = torch.softmax(logits.view(-1, classes)[target // classes], -1)
        else:
            probs = torch.softmax(logits, -1)
        return Attribution(method=self.name, tokens=example.tokens, scores=scores.detach().float().cpu().numpy(),
                           target=target, logit=float(logits[target]), probs=probs.numpy())

    def _scores(self, bundle: ModelBundle, inputs: dict, target: int | None,
                mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """((T,) scores, (1, K) logits); ``target`` None: of the largest logit (:func:`predicted_target`)."""
        raise NotImplementedError


def predicted_target(logits: torch.Tensor) -> int:
    """The class an explanation with ``target=None`` is of: the largest logit of (1, K) logits."""
    return int(logits.detach()[0].argmax())


def forward_from_embeddings(bundle: ModelBundle, inputs: dict, mask: torch.Tensor):
    """A function of word embeddings (B, T, D) -> logits (B, K), the other inputs fixed (expanded to B)."""
    from t3vis.model.access import AttentionProbe, run_with_probe

    def forward(embeddings: torch.Tensor) -> torch.Tensor:
        batch = embeddings.shape[0]
        others = {key: value.expand(batch, -1) for key, value in inputs.items() if key != "input_ids"}
        output, _ = run_with_probe(bundle.model, AttentionProbe(head_mask=mask), inputs_embeds=embeddings, **others)
        return output.logits.flatten(1)  # (B, K); a token classifier's (B, T, K) as (B, T*K)

    return forward
