"""A BertSum-style extractive summarizer (Liu & Lapata 2019) over any supported encoder.

The document is fed as ``[CLS] s1 [SEP] [CLS] s2 [SEP] ...``: a ``[CLS]`` before and a ``[SEP]``
after every sentence, with alternating segment ids (0 for odd sentences, 1 for even ones) when
the encoder has two token types. The encoder's output at each sentence's ``[CLS]`` is that
sentence's vector; a linear scorer gives one logit per sentence, trained with binary
cross-entropy against the oracle labels (mean over the document's real sentences).

The model is a ``PreTrainedModel``: ``save_pretrained`` writes ``config.json`` (the encoder's
config inside it) and safetensors weights, and ``from_pretrained`` (or ``AutoModel`` once this
module is imported) loads it back, like any checkpoint. The encoder's attention goes through the
t3vis attention function, so head masks, attention capture and head importance work unchanged.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, PretrainedConfig, PreTrainedModel, PreTrainedTokenizerBase
from transformers.utils import ModelOutput

from t3vis.model.families import SUMMARIZER_MODEL_TYPE, family_of

MODEL_TYPE = SUMMARIZER_MODEL_TYPE  # "t3vis-extractive-summarizer", as families.py knows it


class ExtractiveSummarizerConfig(PretrainedConfig):
    """The summarizer's config: the encoder's config (a dict) and the scorer's dropout."""

    model_type = MODEL_TYPE

    def __init__(self, encoder: dict | None = None, scorer_dropout: float = 0.1, **kwargs):
        super().__init__(**kwargs)
        self.encoder = dict(encoder or {})
        self.scorer_dropout = scorer_dropout
        # What t3vis reads from any model's config: layers, heads, positions.
        for name in ("num_hidden_layers", "num_attention_heads", "hidden_size", "max_position_embeddings",
                     "type_vocab_size"):
            if name in self.encoder:
                setattr(self, name, self.encoder[name])

    def encoder_config(self) -> PretrainedConfig:
        values = dict(self.encoder)
        return AutoConfig.for_model(values.pop("model_type"), **values)


@dataclass
class SummarizerOutput(ModelOutput):
    """loss: mean binary cross-entropy over real sentences; logits (B, S); sentence_vectors (B, S, D)."""

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    sentence_vectors: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None


class ExtractiveSummarizer(PreTrainedModel):
    """Encoder + a linear scorer on each sentence's ``[CLS]`` vector."""

    config_class = ExtractiveSummarizerConfig
    base_model_prefix = "encoder"  # model.base_model is the encoder (its embeddings, for LRP)
    _supports_attention_backend = True
    _supports_sdpa = True

    def __init__(self, config: ExtractiveSummarizerConfig):
        super().__init__(config)
        self.encoder = AutoModel.from_config(config.encoder_config())
        if config._attn_implementation not in (None, self.encoder.config._attn_implementation):
            self.set_attn_implementation(config._attn_implementation)  # e.g. from_pretrained(..., "t3vis")
        self.dropout = nn.Dropout(config.scorer_dropout)
        self.scorer = nn.Linear(int(config.hidden_size), 1)
        self._encoder_takes_token_types = "token_type_ids" in inspect.signature(self.encoder.forward).parameters
        self.post_init()

    @classmethod
    def from_encoder(cls, name_or_path: str, *, scorer_dropout: float = 0.1, **kwargs) -> ExtractiveSummarizer:
        """A new summarizer around a pretrained encoder (its scorer initialised at random)."""
        encoder = AutoModel.from_pretrained(name_or_path, **kwargs)
        model = cls(ExtractiveSummarizerConfig(encoder=encoder.config.to_dict(), scorer_dropout=scorer_dropout))
        model.encoder = encoder
        model.config._name_or_path = str(name_or_path)  # the run's model name, as for any pretrained model
        return model

    def _init_weights(self, module: nn.Module) -> None:
        if module is getattr(self, "scorer", None):
            nn.init.normal_(module.weight, std=0.02)
            nn.init.zeros_(module.bias)

    def get_input_embeddings(self) -> nn.Module:
        return self.encoder.get_input_embeddings()

    def set_attn_implementation(self, attn_implementation):
        """Switch the encoder's attention too (t3vis reads this model's config and the encoder runs it).

        An encoder whose attention is not pluggable (DeBERTa: t3vis routes its attention modules instead) keeps
        its own."""
        if family_of(self.encoder.config).attention != "interface":
            self.config._attn_implementation = self.encoder.config._attn_implementation
            return
        self.encoder.set_attn_implementation(attn_implementation)
        self.config._attn_implementation = self.encoder.config._attn_implementation

    def forward(
        self,
        input_ids: torch.Tensor | None = None,  # (B, T)
        cls_positions: torch.Tensor | None = None,  # (B, S) index of each sentence's [CLS]; padding rows point at 0
        sentence_mask: torch.Tensor | None = None,  # (B, S) 1 for real sentences
        attention_mask: torch.Tensor | None = None,  # (B, T)
        token_type_ids: torch.Tensor | None = None,  # (B, T) alternating segments
        labels: torch.Tensor | None = None,  # (B, S) oracle labels 0/1
        example_ids: torch.Tensor | None = None,  # (B,) passed through for recorders; unused
        output_hidden_states: bool | None = None,
        inputs_embeds: torch.Tensor | None = None,  # (B, T, D) word embeddings instead of input_ids (attribution)
        **kwargs,
    ) -> SummarizerOutput:
        if cls_positions is None or sentence_mask is None:
            raise ValueError("the summarizer needs cls_positions and sentence_mask (collate_documents makes them)")
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask, "inputs_embeds": inputs_embeds}
        if token_type_ids is not None and self._encoder_takes_token_types:
            inputs["token_type_ids"] = token_type_ids
        encoded = self.encoder(**inputs, output_hidden_states=output_hidden_states, **kwargs)
        hidden = encoded.last_hidden_state  # (B, T, D)
        index = cls_positions.long()[..., None].expand(-1, -1, hidden.size(-1))  # (B, S, D)
        vectors = hidden.gather(1, index)  # (B, S, D)
        logits = self.scorer(self.dropout(vectors)).squeeze(-1)  # (B, S)
        loss = None
        if labels is not None:
            loss = sentence_loss(logits, labels, sentence_mask).sum() / sentence_mask.sum().clamp(min=1)
        return SummarizerOutput(loss=loss, logits=logits, sentence_vectors=vectors,
                                hidden_states=encoded.hidden_states)


def sentence_loss(logits: torch.Tensor, labels: torch.Tensor, sentence_mask: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of each sentence (B, S), zero at padding."""
    loss = nn.functional.binary_cross_entropy_with_logits(logits.float(), labels.float(), reduction="none")
    return loss * sentence_mask.float()


AutoConfig.register(MODEL_TYPE, ExtractiveSummarizerConfig, exist_ok=True)
AutoModel.register(ExtractiveSummarizerConfig, ExtractiveSummarizer, exist_ok=True)


# -- encoding documents -------------------------------------------------------------------------------


@dataclass(frozen=True)
class EncodedDocument:
    """One document as the summarizer reads it, cut at the encoder's limit at a sentence boundary."""

    input_ids: list[int]  # (T,) [CLS] s1 [SEP] [CLS] s2 [SEP] ...
    token_type_ids: list[int]  # (T,) 0 for the tokens of odd sentences, 1 for even ones (all 0 with one type)
    cls_positions: list[int]  # (S_kept,) index of each kept sentence's [CLS]
    n_sentences: int  # sentences in the document
    n_tokens_full: int  # tokens the whole document would take

    @property
    def n_kept(self) -> int:
        return len(self.cls_positions)

    @property
    def sentence_spans(self) -> list[tuple[int, int]]:
        """(start, end) token positions of each kept sentence, its [CLS] and [SEP] included."""
        return list(zip(self.cls_positions, self.cls_positions[1:] + [len(self.input_ids)]))

    @property
    def sentence_of_token(self) -> list[int]:
        """(T,) the sentence each token belongs to (its [CLS] and [SEP] included)."""
        return [index for index, (start, end) in enumerate(self.sentence_spans) for _ in range(end - start)]


def encode_documents(
    tokenizer: PreTrainedTokenizerBase,
    documents: Sequence[Sequence[str]],
    *,
    max_length: int,
    segments: bool = True,
) -> list[EncodedDocument]:
    """Encode documents (each a list of sentences) BertSum-style.

    Whole sentences are kept while they fit in ``max_length`` tokens; the rest are cut (their number is
    ``n_sentences - n_kept``). A first sentence longer than the limit is itself cut to fit.
    """
    cls_id = tokenizer.cls_token_id if tokenizer.cls_token_id is not None else tokenizer.bos_token_id
    sep_id = tokenizer.sep_token_id if tokenizer.sep_token_id is not None else tokenizer.eos_token_id
    if cls_id is None or sep_id is None:
        raise ValueError("the tokenizer has no [CLS]/<s> or [SEP]/</s> token to mark sentences with")
    flat = [sentence for document in documents for sentence in document]
    pieces = tokenizer(flat, add_special_tokens=False, return_attention_mask=False,
                       return_token_type_ids=False)["input_ids"] if flat else []
    encoded, offset = [], 0
    for document in documents:
        sentences = pieces[offset: offset + len(document)]
        offset += len(document)
        input_ids: list[int] = []
        token_types: list[int] = []
        positions: list[int] = []
        for index, ids in enumerate(sentences):
            room = max_length - len(input_ids) - 2
            if len(ids) > room:
                if positions:
                    break
                ids = ids[:max(room, 0)]  # a first sentence longer than the limit: cut it
            positions.append(len(input_ids))
            input_ids += [cls_id, *ids, sep_id]
            token_types += [index % 2 if segments else 0] * (len(ids) + 2)
        encoded.append(EncodedDocument(
            input_ids=input_ids, token_type_ids=token_types, cls_positions=positions,
            n_sentences=len(document), n_tokens_full=sum(len(ids) + 2 for ids in sentences),
        ))
    return encoded


def uses_segments(model: PreTrainedModel) -> bool:
    """Alternating segment ids need an encoder with two token types."""
    return int(getattr(model.config, "type_vocab_size", 0) or 0) >= 2


def collate_documents(
    documents: Sequence[EncodedDocument],
    *,
    pad_token_id: int,
    labels: Sequence[Sequence[int]] | None = None,
    example_ids: Sequence[int] | None = None,
) -> dict[str, torch.Tensor]:
    """Padded summarizer inputs for a batch of encoded documents (labels cut to the kept sentences)."""
    batch, width = len(documents), max(len(document.input_ids) for document in documents)
    sentences = max(max(document.n_kept for document in documents), 1)
    input_ids = torch.full((batch, width), pad_token_id, dtype=torch.long)  # (B, T)
    attention_mask = torch.zeros((batch, width), dtype=torch.long)  # (B, T)
    token_type_ids = torch.zeros((batch, width), dtype=torch.long)  # (B, T)
    cls_positions = torch.zeros((batch, sentences), dtype=torch.long)  # (B, S)
    sentence_mask = torch.zeros((batch, sentences), dtype=torch.long)  # (B, S)
    for row, document in enumerate(documents):
        length, kept = len(document.input_ids), document.n_kept
        input_ids[row, :length] = torch.tensor(document.input_ids)
        attention_mask[row, :length] = 1
        token_type_ids[row, :length] = torch.tensor(document.token_type_ids)
        cls_positions[row, :kept] = torch.tensor(document.cls_positions)
        sentence_mask[row, :kept] = 1
    inputs = {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids,
              "cls_positions": cls_positions, "sentence_mask": sentence_mask}
    if labels is not None:
        gold = torch.zeros((batch, sentences), dtype=torch.float)  # (B, S)
        for row, (document, values) in enumerate(zip(documents, labels)):
            gold[row, : document.n_kept] = torch.tensor(list(values)[: document.n_kept], dtype=torch.float)
        inputs["labels"] = gold
    if example_ids is not None:
        inputs["example_ids"] = torch.tensor(list(example_ids), dtype=torch.long)
    return inputs
