"""The Attention Head view at instance scale: one example's importance, attention and prediction, with pruning."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch

from t3vis.analysis.attention_maps import AttentionMaps, attention_collector, collected_maps
from t3vis.charts import pooled_attention
from t3vis.model.access import AttentionProbe, ModelBundle, eval_mode, run_with_probe
from t3vis.model.heads import Head, encode_one, head_mask
from t3vis.record.head_importance import head_mask_gradient


@dataclass(frozen=True)
class InstanceOutputs:
    """One example through the model, with a head mask: its prediction, and its attention."""

    tokens: list[str]  # (T,) word pieces, special tokens included
    logits: np.ndarray  # (K,)
    probs: np.ndarray  # (K,)
    attentions: AttentionMaps  # (L, H, T, T) after the mask (a pruned head's rows are zero): pooled for every head
    # when collected, full matrices where kept or when asked for
    truncated: bool  # the text was longer than the model's limit


@dataclass(frozen=True)
class InstanceHeads(InstanceOutputs):
    """:class:`InstanceOutputs` with the example's head importance: what the head view shows at instance scale."""

    importance: np.ndarray  # (L, H) |dL/dm| of this example, L = cross-entropy of `label`
    label: int  # the class whose loss the importance is taken of (-1: a document's sentence labels)

    @property
    def importance_global(self) -> np.ndarray:
        """Importance divided by its largest value, in [0, 1] (as ``head_importance.importance_global``)."""
        largest = self.importance.max()
        return self.importance / largest if largest > 0 else self.importance


def instance_outputs(bundle: ModelBundle, text: str, text_pair: str | None = None, *,
                     pruned: Iterable[Head] = ()) -> InstanceOutputs:
    """What the Instance view needs: the prediction under the pruned heads (one forward pass at full speed), and
    each head's attention computed when it is first asked for (a clicked token's attention in one head)."""
    inputs, tokens, truncated = encode_one(bundle, text, text_pair)
    mask = head_mask(pruned, bundle.num_layers, bundle.num_heads).to(bundle.device)  # (L, H)
    with eval_mode(bundle.model), torch.no_grad():
        output, _ = run_with_probe(bundle.model, AttentionProbe(head_mask=mask), **inputs)
    logits = output.logits.float().cpu()[0]  # (K,)
    return InstanceOutputs(tokens=tokens, logits=logits.numpy(), probs=torch.softmax(logits, -1).numpy(),
                           attentions=attention_on_demand(bundle, inputs, pruned=pruned), truncated=truncated)


def attention_on_demand(bundle: ModelBundle, inputs: dict, *, pruned: Iterable[Head] = ()) -> AttentionMaps:
    """One encoded example's attention under the pruned heads, each head's matrix computed when first asked for
    (no pass runs before)."""
    mask = head_mask(pruned, bundle.num_layers, bundle.num_heads).to(bundle.device)  # (L, H)
    shape = (bundle.num_layers, bundle.num_heads, int(inputs["input_ids"].shape[1]))
    return collected_maps(None, shape, bundle, inputs, mask)


def instance_heads(bundle: ModelBundle, text: str, text_pair: str | None = None, *, label: int,
                   pruned: Iterable[Head] = ()) -> InstanceHeads:
    """One forward and one backward pass over one example, with the pruned heads masked.

    Parameters
    ----------
    label : int
        Class whose cross-entropy the importance is the gradient of (the gold label, usually).
    pruned : iterable of (layer, head)
        Heads to mask for this call only.
    """
    if not 0 <= label < len(bundle.label_names):
        raise ValueError(f"label {label} is not one of the model's {len(bundle.label_names)} classes")
    inputs, tokens, truncated = encode_one(bundle, text, text_pair)
    mask = head_mask(pruned, bundle.num_layers, bundle.num_heads).to(bundle.device)  # (L, H)
    collector = attention_collector(bundle.num_layers, bundle.num_heads, len(tokens))
    with eval_mode(bundle.model):
        output, gradient = head_mask_gradient(bundle.model, inputs, torch.tensor([label], device=bundle.device),
                                              probe=AttentionProbe(consumer=collector, observe_only=True),
                                              head_mask=mask)
    logits = output.logits.detach().float().cpu()[0]  # (K,)
    return InstanceHeads(
        tokens=tokens,
        logits=logits.numpy(),
        probs=torch.softmax(logits, -1).numpy(),
        attentions=collected_maps(collector, (bundle.num_layers, bundle.num_heads, len(tokens)), bundle, inputs,
                                  mask),
        importance=gradient[0].abs().numpy(),  # (L, H)
        label=label,
        truncated=truncated,
    )


def document_heads(bundle: ModelBundle, sentences: list[str], oracle: np.ndarray, *,
                   pruned: Iterable[Head] = ()) -> InstanceHeads:
    """:func:`instance_heads` for a summarizer and one document: importance of the document's loss (the mean
    binary cross-entropy of its kept sentences against the oracle labels); logits and probs per sentence."""
    from t3vis.attribution.base import prepare_document
    from t3vis.record.summarization import document_losses

    example = prepare_document(bundle, sentences)
    inputs = dict(example.inputs)
    inputs["labels"] = torch.tensor(np.asarray(oracle)[: example.n_outputs], dtype=torch.float,
                                    device=bundle.device)[None]  # (1, S)
    mask = head_mask(pruned, bundle.num_layers, bundle.num_heads).to(bundle.device)  # (L, H)
    collector = attention_collector(bundle.num_layers, bundle.num_heads, len(example.tokens))
    with eval_mode(bundle.model):
        output, gradient = head_mask_gradient(bundle.model, inputs, None, probe=AttentionProbe(consumer=collector, observe_only=True),
                                              head_mask=mask, example_losses=lambda out: document_losses(out, inputs))
    logits = output.logits.detach().float().cpu()[0]  # (S,)
    plain_inputs = {name: value for name, value in inputs.items() if name != "labels"}
    return InstanceHeads(
        tokens=example.tokens, logits=logits.numpy(), probs=torch.sigmoid(logits).numpy(),
        attentions=collected_maps(collector, (bundle.num_layers, bundle.num_heads, len(example.tokens)), bundle,
                                  plain_inputs, mask),
        importance=gradient[0].abs().numpy(), label=-1, truncated=example.truncated,
    )


# A (T, T) attention matrix averaged into (bins, bins) blocks of relative position; rows keep sum 1 (the same
# pooling draws a long input's attention image).
pool_pattern = pooled_attention


def instance_pattern_frame(attentions: AttentionMaps):
    """Long frame (layer, head, query, key, weight) of every head's pooled pattern (at most
    ``PATTERN_BINS`` x ``PATTERN_BINS`` blocks)."""
    import pandas as pd

    layers, heads = attentions.patterns.shape[:2]
    frames = []
    for layer in range(layers):
        for head in range(heads):
            pooled = attentions.patterns[layer, head]  # (b, b)
            query, key = np.meshgrid(np.arange(pooled.shape[0]), np.arange(pooled.shape[1]), indexing="ij")
            frames.append(pd.DataFrame({"layer": layer, "head": head, "query": query.ravel(), "key": key.ravel(),
                                        "weight": pooled.ravel()}))
    return pd.concat(frames, ignore_index=True)


def sentence_heads(bundle: ModelBundle, words: list[str], tags: np.ndarray, *, pruned: Iterable[Head] = (),
                   max_length: int | None = None) -> InstanceHeads:
    """:func:`instance_heads` for a token classifier and one sentence: importance of the sentence's loss (the mean
    cross-entropy of its kept words' gold tags); logits and probs per kept word (W, K)."""
    from t3vis.attribution.base import prepare_words
    from t3vis.model.word_encoding import IGNORED, word_losses

    example = prepare_words(bundle, words, max_length=max_length)
    labels = torch.full_like(example.inputs["input_ids"], IGNORED)  # (1, T)
    labels[0, example.first_pieces] = torch.tensor(np.asarray(tags)[: len(example.first_pieces)],
                                                   dtype=torch.long, device=labels.device)
    mask = head_mask(pruned, bundle.num_layers, bundle.num_heads).to(bundle.device)  # (L, H)
    collector = attention_collector(bundle.num_layers, bundle.num_heads, len(example.tokens))
    with eval_mode(bundle.model):
        output, gradient = head_mask_gradient(bundle.model, example.inputs, None,
                                              probe=AttentionProbe(consumer=collector, observe_only=True), head_mask=mask,
                                              example_losses=lambda out: word_losses(out.logits, labels))
    logits = output.logits.detach().float().cpu()[0, example.first_pieces]  # (W, K)
    return InstanceHeads(
        tokens=example.tokens, logits=logits.numpy(), probs=torch.softmax(logits, -1).numpy(),
        attentions=collected_maps(collector, (bundle.num_layers, bundle.num_heads, len(example.tokens)), bundle,
                                  example.inputs, mask),
        importance=gradient[0].abs().numpy(), label=-1, truncated=example.truncated,
    )
