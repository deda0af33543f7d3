"""Model families: what differs between the Transformer architectures t3vis supports, in one place.

Every family but DeBERTa computes attention through ``transformers``' ``AttentionInterface``, so one attention
function (:func:`t3vis.model.attention.t3vis_attention`) captures attention and masks heads in all of them;
DeBERTa-v2/v3 computes its disentangled attention in its own module, whose forward t3vis replaces with the same
computation reading the same probe (:func:`t3vis.model.attention.disentangled_attention`). What differs is
listed here, per family:

- where **attention** is computed (``"interface"`` or ``"module"``, above);
- the **pooled token**, the one a sequence classifier reads and the Projection view lays out with
  ``pooling="cls"``: the first token of an encoder, the last real (non-padding) token of a decoder;
- whether the model is **causal** (a decoder) and so needs a padding token id in its config to find that
  last token in a padded batch;
- whether it reads **token type ids** (segments): a tokenizer may make them for a model that has none, and
  GPT-2 would add them as word embeddings, so t3vis passes them only to the families that use them;
- the **normalisation** (``LayerNorm`` or ``RMSNorm``) and the **MLP** (a dense layer with an activation, or
  a gated one) that LRP's rules must treat.

An architecture outside these families is refused when it is loaded, with a message naming the supported
ones: never a silent wrong result. Adding a family means adding an entry to :data:`FAMILIES` and running
``tests/unit/test_model_families.py``, which checks attention capture, head masks (masking a head equals
removing its slice of the output projection) and pooling for each family.
"""

from __future__ import annotations

from dataclasses import dataclass

from t3vis.errors import ModelError


@dataclass(frozen=True)
class ModelFamily:
    name: str
    model_types: tuple[str, ...]  # config.model_type values of the family
    decoder: bool  # causal attention: the pooled token is the last real token
    norm: str  # "layernorm" or "rmsnorm"
    mlp: str  # "dense" (activation between two linear layers) or "gated" (SwiGLU: act(gate) * up, then down)
    token_types: bool = False  # reads token_type_ids (segment embeddings); GPT-2 would misread them as words
    # "interface": attention goes through transformers' AttentionInterface; "module": computed inside the model's
    # own attention module, whose forward t3vis replaces (DeBERTa's disentangled attention)
    attention: str = "interface"

    @property
    def pooled_token(self) -> str:
        return "last" if self.decoder else "first"


FAMILIES: tuple[ModelFamily, ...] = (
    ModelFamily("BERT-style encoders", ("bert", "roberta", "xlm-roberta", "camembert", "electra"),
                decoder=False, norm="layernorm", mlp="dense", token_types=True),
    ModelFamily("DistilBERT", ("distilbert",), decoder=False, norm="layernorm", mlp="dense"),  # no segments
    ModelFamily("DeBERTa-v2/v3", ("deberta-v2",), decoder=False, norm="layernorm", mlp="dense", token_types=True,
                attention="module"),
    ModelFamily("ModernBERT", ("modernbert",), decoder=False, norm="layernorm", mlp="gated"),
    ModelFamily("GPT-2", ("gpt2",), decoder=True, norm="layernorm", mlp="dense"),
    ModelFamily("Llama-style decoders", ("llama", "qwen2", "qwen3", "mistral"), decoder=True, norm="rmsnorm",
                mlp="gated"),
)


def family_of(config) -> ModelFamily:
    """The family of a model config (a summarizer's: its encoder's); refuses an unsupported architecture."""
    model_type = getattr(config, "model_type", None)
    for family in FAMILIES:
        if model_type in family.model_types:
            return family
    supported = "; ".join(f"{family.name} ({', '.join(family.model_types)})" for family in FAMILIES)
    raise ModelError(f"t3vis does not support the {model_type!r} architecture yet: it cannot check that attention "
                     f"capture, head masks and saliency are right for it. Supported: {supported}.")


# model_type of t3vis's extractive summarizer (t3vis.model.summarizer), a model around an encoder of a family
SUMMARIZER_MODEL_TYPE = "t3vis-extractive-summarizer"


def family_of_model(model) -> ModelFamily:
    """The family of a loaded model; for a t3vis summarizer, of the encoder inside it."""
    wraps = getattr(model.config, "model_type", None) == SUMMARIZER_MODEL_TYPE
    config = model.encoder.config if wraps else model.config
    return family_of(config)


def set_padding_token(model, tokenizer) -> None:
    """A decoder classifier finds each example's last real token by the padding id: make sure the tokenizer pads
    (with its end-of-sequence token when it has no padding token, as GPT-2's) and the model knows the id."""
    if tokenizer.pad_token_id is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
    if getattr(model.config, "pad_token_id", None) is None and tokenizer.pad_token_id is not None:
        model.config.pad_token_id = tokenizer.pad_token_id


def supported_model_types() -> tuple[str, ...]:
    return tuple(model_type for family in FAMILIES for model_type in family.model_types)
