"""Every explanation and live view runs in eval mode, and gives each module its own mode back afterwards.

A user training with a frozen part (e.g. an encoder layer put in eval mode so that its dropout stays off) must
find that part in eval mode again, not switched to train mode with the rest of the model.
"""

from __future__ import annotations

import pytest
import torch

from t3vis.attribution import METHODS, prepare
from t3vis.analysis.attention_maps import head_attention
from t3vis.model.access import eval_mode, load_model


def _modes(model: torch.nn.Module) -> dict[str, bool]:
    return {name: module.training for name, module in model.named_modules()}


@pytest.fixture()
def partly_frozen(tiny_model_dir):
    """The tiny BERT training, with its first encoder layer and its pooler put in eval mode by the user."""
    bundle = load_model(tiny_model_dir, device="cpu")
    bundle.model.train()
    bundle.model.bert.encoder.layer[0].eval()
    bundle.model.bert.pooler.eval()
    return bundle


def test_eval_mode_gives_each_module_its_own_mode_back(partly_frozen):
    model = partly_frozen.model
    before = _modes(model)
    assert before["bert.encoder.layer.0"] is False and before["bert.encoder.layer.1"] is True
    with eval_mode(model):
        assert not any(_modes(model).values())
    assert _modes(model) == before
    with pytest.raises(RuntimeError), eval_mode(model):
        raise RuntimeError("a failed explanation")
    assert _modes(model) == before


@pytest.mark.parametrize("method", sorted(METHODS))
def test_attribution_gives_each_module_its_own_mode_back(partly_frozen, method):
    before = _modes(partly_frozen.model)
    METHODS[method].attribute(partly_frozen, prepare(partly_frozen, "the striker scored twice"), 1)
    assert _modes(partly_frozen.model) == before


def test_a_live_view_gives_each_module_its_own_mode_back(partly_frozen):
    before = _modes(partly_frozen.model)
    head_attention(partly_frozen, prepare(partly_frozen, "the striker scored twice").inputs, 1, 0)
    assert _modes(partly_frozen.model) == before
