"""LRP for Transformers by conservative propagation (Ali et al., ICML 2022; AttnLRP, Achtibat et al. 2024).

The backward pass is changed so that Gradient × Input equals LRP with the AH and LN rules:

- attention probabilities are constants (``AttentionProbe(detach_probabilities=True)``);
- every LayerNorm's normaliser σ is a constant: y = (x − mean(x)) / σ̂ · γ + β with σ̂ detached;
- element-wise nonlinearities (GELU, SiLU, ReLU, the pooler's tanh) pass relevance on unchanged
  (identity rule): f(x) is computed as x · (f(x)/x) with the ratio detached, so the backward uses
  f(x)/x. The rule needs f(0) = 0 (otherwise f(x)/x is unbounded near 0 and the forward value
  changes): a model with another element-wise activation, such as a sigmoid, is refused.

- DeBERTa's pooler and convolution call their activations as functions: those modules are recomputed
  with the identity rule on the activation;
- every RMSNorm's normaliser 1/rms(x) is a constant (Llama-style decoders);
- a gated MLP's product act(gate(x)) · up(x) (Llama's SwiGLU, ModernBERT's GLU) gives each factor half
  of the product's relevance (AttnLRP's uniform rule): it is computed as ½(a·b̂ + â·b), hats detached,
  whose value is a·b and whose Gradient × Input sums to a·b.

The network is then linear in the embedding sum h₀, so relevance R_i = Σ_d h₀[i, d] · ∂y_c/∂h₀[i, d]
and, without biases, Σ_i R_i = y_c exactly (conservation). h₀ is word + position + token-type
embeddings for BERT-style encoders, DeBERTa and ModernBERT (the input of the embedding LayerNorm; DeBERTa's
relative positions act inside attention), word +
position embeddings for GPT-2, and the word embeddings for Llama-style decoders (rotary positions act
inside attention, whose probabilities are constants). Relevance that reaches the position and
token-type embeddings belongs to the token at that position, because h₀ holds them.

The rules are forward hooks, added by :func:`conservative_rules` and removed in ``finally``. They
act only for the call that added them (a context variable), so other sessions using the same
cached model at the same time are unaffected; the model's weights are never touched.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn
from transformers.activations import ACT2FN

from t3vis.attribution.base import AttributionMethod, predicted_target
from t3vis.errors import ModelError
from t3vis.model.access import AttentionProbe, run_with_probe
from t3vis.model.adapters import unwrapped

_ACTIVE: contextvars.ContextVar[object | None] = contextvars.ContextVar("t3vis_lrp_active", default=None)
_ELEMENTWISE = (nn.GELU, nn.Tanh, nn.ReLU, nn.SiLU, nn.Sigmoid, nn.Softplus, nn.ELU, nn.Mish, nn.LeakyReLU)


def _is_elementwise_activation(module: nn.Module) -> bool:
    return isinstance(module, _ELEMENTWISE) or type(module).__module__ == "transformers.activations"


def _check_identity_rule_applies(module: nn.Module) -> None:
    """The identity rule x · (f(x)/x) is exact only for f(0) = 0; refuse other activations."""
    probe = torch.tensor([0.0, 1e-4, -1e-4])
    with torch.no_grad():
        values = module(probe.to(next(iter(module.parameters()), probe).device))
    if float(values.abs().max()) > 1e-3:
        raise ModelError(
            f"{type(module).__name__} gives f(0) = {float(values[0]):.3g}: LRP's identity rule needs f(0) = 0, so "
            "t3vis cannot explain this model with LRP (Input×Gradient and Integrated Gradients still work)."
        )


def _embedding_sum_site(model: nn.Module) -> tuple[nn.Module, str]:
    """(module, "input" or "output"): where the embedding sum h₀ passes, per family."""
    base = unwrapped(model).base_model  # a peft adapter's model: the transformers model inside
    embeddings = getattr(base, "embeddings", None)
    norms = [m for m in embeddings.modules() if isinstance(m, nn.LayerNorm)] if embeddings is not None else []
    if norms:  # encoders: the embedding LayerNorm's input
        return norms[0], "input"
    if isinstance(getattr(base, "wpe", None), nn.Embedding) and isinstance(getattr(base, "drop", None), nn.Module):
        return base.drop, "input"  # GPT-2: word + position embeddings, before the embedding dropout
    if isinstance(getattr(base, "embed_tokens", None), nn.Embedding):
        return base.embed_tokens, "output"  # Llama-style: the word embeddings
    raise ModelError(f"{type(model).__name__} has no embedding sum t3vis's LRP can read relevance at.")


def _is_rms_norm(module: nn.Module) -> bool:
    return type(module).__name__.endswith("RMSNorm") and hasattr(module, "weight")


def _gated_mlp_kind(module: nn.Module) -> str | None:
    """"swiglu" (gate_proj, up_proj, down_proj, act_fn), "glu" (ModernBERT: Wi, act, Wo) or None."""
    # The projections are linear layers, or a peft adapter's wrappers of them (LoRA adds B·A·x: still linear).
    if all(isinstance(getattr(module, name, None), nn.Module) for name in ("gate_proj", "up_proj", "down_proj")) \
            and hasattr(module, "act_fn"):
        return "swiglu"
    if isinstance(getattr(module, "Wi", None), nn.Module) and isinstance(getattr(module, "Wo", None), nn.Module) \
            and hasattr(module, "act"):
        return "glu"
    return None


def _uniform_product(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a · b, with each factor receiving half the relevance: ½(a·b̂ + â·b)."""
    return 0.5 * (a * b.detach() + a.detach() * b)


@contextmanager
def conservative_rules(model: nn.Module) -> Iterator[dict]:
    """Within the block, this thread's forward passes use the conservative rules.

    Yields a dict that receives ``"embedding_sum"`` (1, T, D): h₀, the tensor relevance is read at.
    """
    token = object()
    captured: dict = {}
    site, where = _embedding_sum_site(model)

    def tracked(x: torch.Tensor) -> torch.Tensor:
        """h₀ as a tensor the backward pass reaches (a frozen model's, e.g. under a peft adapter, is not)."""
        return x if x.requires_grad else x.detach().requires_grad_(True)

    def keep_embedding_sum_input(module, args):
        if _ACTIVE.get() is not token:
            return None
        captured["embedding_sum"] = tracked(args[0])  # (B, T, D)
        return (captured["embedding_sum"], *args[1:])

    def keep_embedding_sum_output(module, args, output):
        if _ACTIVE.get() is not token:
            return None
        captured["embedding_sum"] = tracked(output)  # (B, T, D)
        return captured["embedding_sum"]

    def rms_norm_rule(module: nn.Module, args, output):
        if _ACTIVE.get() is not token:
            return None
        x = args[0]  # (B, T, D)
        scale = torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + module.variance_epsilon).detach()  # a constant
        return module.weight * (x.float() * scale).to(x.dtype)

    def gated_mlp_rule(module: nn.Module, args, output):
        if _ACTIVE.get() is not token:
            return None
        x = args[0]
        if _gated_mlp_kind(module) == "swiglu":  # act_fn is hooked too: the identity rule
            return module.down_proj(_uniform_product(module.act_fn(module.gate_proj(x)), module.up_proj(x)))
        values, gate = module.Wi(x).chunk(2, dim=-1)
        return module.Wo(module.drop(_uniform_product(module.act(values), gate)))

    def layer_norm_rule(module: nn.LayerNorm, args, output):
        if _ACTIVE.get() is not token:
            return None
        x = args[0]  # (B, T, D)
        if module is site:
            x = captured["embedding_sum"] = tracked(x)
        mean = x.mean(-1, keepdim=True)
        sigma = torch.sqrt(((x - mean) ** 2).mean(-1, keepdim=True) + module.eps).detach()  # a constant
        y = (x - mean) / sigma
        if module.weight is not None:
            y = y * module.weight
        if module.bias is not None:
            y = y + module.bias
        return y

    def identity_rule(module: nn.Module, args, output):
        if _ACTIVE.get() is not token:
            return None
        return _identity(args[0], output)  # value f(x); backward f(x)/x

    def _identity(x: torch.Tensor, fx: torch.Tensor) -> torch.Tensor:
        safe = torch.where(x.abs() > 1e-12, x, torch.ones_like(x))
        return x * torch.where(x.abs() > 1e-12, fx / safe, torch.zeros_like(x)).detach()

    # Classification heads that call torch.tanh as a function (RoBERTa's dense -> tanh -> out_proj):
    # keep dense's output, and give out_proj the identity-ruled tanh of it.
    head_inputs: dict[int, torch.Tensor] = {}

    def keep_dense_output(module, args, output):
        if _ACTIVE.get() is token:
            head_inputs[id(module)] = output
        return None

    def functional_tanh_rule(dense: nn.Module):
        def rule(module, args):
            if _ACTIVE.get() is not token or id(dense) not in head_inputs:
                return None
            return (_identity(head_inputs[id(dense)], args[0]),)
        return rule

    # DeBERTa calls its pooler's and its convolution's activations as functions (ACT2FN[name](x)), not as
    # modules a hook could reach: their modules are recomputed with the identity rule.
    def context_pooler_rule(module: nn.Module, args, output):
        if _ACTIVE.get() is not token:
            return None
        x = module.dense(module.dropout(args[0][:, 0]))  # (B, D): the first token, projected
        return _identity(x, ACT2FN[module.config.pooler_hidden_act](x))

    def convolution_rule(module: nn.Module, args, output):
        if _ACTIVE.get() is not token:
            return None
        hidden, residual, input_mask = args  # (B, T, D), (B, T, D), (B, T)
        keep = input_mask.reshape(input_mask.shape[0], -1, 1).to(hidden.dtype)  # (B, T, 1)
        x = module.conv(hidden.permute(0, 2, 1)).permute(0, 2, 1) * keep  # (B, T, D)
        x = _identity(x, ACT2FN[module.conv_act](x))
        return module.LayerNorm(residual + module.dropout(x)) * keep  # the LayerNorm rule applies inside

    handles = []
    previous = _ACTIVE.set(token)
    try:
        if where == "output":
            handles.append(site.register_forward_hook(keep_embedding_sum_output))
        elif not isinstance(site, nn.LayerNorm):  # the LayerNorm rule keeps an encoder's embedding sum itself
            handles.append(site.register_forward_pre_hook(keep_embedding_sum_input))
        for module in model.modules():
            if type(module).__name__ == "ContextPooler":
                _check_identity_rule_applies(ACT2FN[module.config.pooler_hidden_act])
                handles.append(module.register_forward_hook(context_pooler_rule))
            if type(module).__name__ == "ConvLayer" and hasattr(module, "conv_act"):
                _check_identity_rule_applies(ACT2FN[module.conv_act])
                handles.append(module.register_forward_hook(convolution_rule))
            if _gated_mlp_kind(module) is not None:
                handles.append(module.register_forward_hook(gated_mlp_rule))
            if _is_rms_norm(module):
                handles.append(module.register_forward_hook(rms_norm_rule))
            elif isinstance(module, nn.LayerNorm):
                handles.append(module.register_forward_hook(layer_norm_rule))
            elif _is_elementwise_activation(module):
                _check_identity_rule_applies(module)
                handles.append(module.register_forward_hook(identity_rule))
            dense, out_proj = getattr(module, "dense", None), getattr(module, "out_proj", None)
            if isinstance(dense, nn.Linear) and isinstance(out_proj, nn.Linear) and \
                    not any(_is_elementwise_activation(child) for child in module.children()):
                handles.append(dense.register_forward_hook(keep_dense_output))
                handles.append(out_proj.register_forward_pre_hook(functional_tanh_rule(dense)))
        yield captured
    finally:
        for handle in handles:
            handle.remove()
        _ACTIVE.reset(previous)


class ConservativeLRP(AttributionMethod):
    name = "lrp"
    label = "LRP (conservative)"
    description = ("relevance of the class logit propagated to the tokens, conserving its total "
                   "(attention and LayerNorm/RMSNorm normalisers as constants, identity rule for GELU/SiLU/tanh, "
                   "a gated MLP's product split evenly)")

    def _scores(self, bundle, inputs, target, mask):
        model = bundle.model
        with conservative_rules(model) as captured:
            probe = AttentionProbe(head_mask=mask, detach_probabilities=True)
            output, _ = run_with_probe(model, probe, **inputs)
            embedding_sum = captured["embedding_sum"]  # (1, T, D)
            logits = output.logits.flatten(1)  # (1, K); a token classifier's (1, T, K) as (1, T*K)
            target = predicted_target(logits) if target is None else target
            (gradient,) = torch.autograd.grad(logits[0, target], embedding_sum)
        return (gradient * embedding_sum).sum(-1)[0], logits.detach()  # (T,), (1, K)
