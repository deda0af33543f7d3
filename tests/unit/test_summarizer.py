"""The BertSum-style summarizer on a tiny random encoder: encoding, the loss, saving and loading, head masks."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModel, AutoTokenizer

from t3vis.fixtures.tiny_models import tiny_config
from t3vis.model.access import ATTENTION_NAME, AttentionProbe, run_with_probe
from t3vis.model.pretrained import minilm_path
from t3vis.model.summarizer import (
    ExtractiveSummarizer,
    ExtractiveSummarizerConfig,
    collate_documents,
    encode_documents,
    uses_segments,
)

DOCUMENTS = [["The cat sat on the mat.", "It was happy.", "Then it left the house."], ["One sentence only."]]


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(minilm_path())


@pytest.fixture(scope="module")
def summarizer():
    torch.manual_seed(0)
    return ExtractiveSummarizer(ExtractiveSummarizerConfig(encoder=tiny_config("bert").to_dict())).eval()


def test_each_kept_sentence_has_its_cls_and_segments_alternate(tokenizer):
    full, cut = (encode_documents(tokenizer, DOCUMENTS, max_length=limit)[0] for limit in (128, 20))
    assert [full.input_ids[i] for i in full.cls_positions] == [tokenizer.cls_token_id] * 3
    assert full.input_ids.count(tokenizer.sep_token_id) == 3 and full.n_kept == full.n_sentences == 3
    assert full.n_tokens_full == len(full.input_ids)
    sentence = full.sentence_of_token
    assert full.token_type_ids == [index % 2 for index in sentence]  # 0, 1, 0 by sentence
    assert [sentence[i] for i in full.cls_positions] == [0, 1, 2]
    # at 20 tokens only the first two sentences fit whole: the third is dropped, and that is recorded
    assert cut.n_kept == 2 and cut.n_sentences == 3 and len(cut.input_ids) <= 20
    assert cut.input_ids == full.input_ids[: len(cut.input_ids)] and cut.n_tokens_full == full.n_tokens_full
    # an encoder with one token type gets all-zero segments; a first sentence over the limit is cut to fit
    single = encode_documents(tokenizer, [["word " * 50]], max_length=16, segments=False)[0]
    assert single.n_kept == 1 and len(single.input_ids) == 16 and set(single.token_type_ids) == {0}


def test_the_loss_is_the_mean_binary_cross_entropy_over_real_sentences(tokenizer, summarizer):
    encoded = encode_documents(tokenizer, DOCUMENTS, max_length=128, segments=uses_segments(summarizer))
    labels = [[1, 0, 1], [1]]
    batch = collate_documents(encoded, pad_token_id=0, labels=labels, example_ids=[7, 9])
    assert batch["sentence_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    output = summarizer(**batch)
    logits = output.logits  # (2, 3)
    real = [(0, 0, 1.0), (0, 1, 0.0), (0, 2, 1.0), (1, 0, 1.0)]
    by_hand = sum(-(y * torch.log(torch.sigmoid(logits[b, s])) + (1 - y) * torch.log(1 - torch.sigmoid(logits[b, s])))
                  for b, s, y in real) / len(real)
    assert output.loss.item() == pytest.approx(by_hand.item(), rel=1e-5)
    # each sentence's score is read at its own [CLS]: one document alone scores as in the batch
    alone = summarizer(**collate_documents(encoded[1:], pad_token_id=0)).logits
    assert alone[0, 0].item() == pytest.approx(logits[1, 0].item(), abs=1e-5)


def test_it_saves_as_safetensors_and_loads_back_with_t3vis_attention(tmp_path, tokenizer, summarizer):
    summarizer.save_pretrained(tmp_path)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["config.json", "model.safetensors"]
    assert json.loads((tmp_path / "config.json").read_text())["encoder"]["model_type"] == "bert"
    loaded = AutoModel.from_pretrained(tmp_path, attn_implementation=ATTENTION_NAME).eval()
    assert type(loaded) is ExtractiveSummarizer and loaded.encoder.config._attn_implementation == ATTENTION_NAME
    batch = collate_documents(encode_documents(tokenizer, DOCUMENTS, max_length=128), pad_token_id=0)
    assert torch.allclose(loaded(**batch).logits, summarizer(**batch).logits, atol=1e-6)
    # head masks reach the encoder: masking every head of the last layer changes the scores
    probe = AttentionProbe(record=True)
    kept, _ = run_with_probe(loaded, probe, **batch)
    assert probe.stacked_attentions().shape[:3] == (2, 2, 4)  # (L, B, H, T, T)
    mask = torch.ones(2, 4)
    mask[1] = 0
    masked, _ = run_with_probe(loaded, AttentionProbe(head_mask=mask), **batch)
    assert not torch.allclose(masked.logits, kept.logits, atol=1e-4)
    unmasked, _ = run_with_probe(loaded, AttentionProbe(head_mask=torch.ones(2, 4)), **batch)
    assert torch.allclose(unmasked.logits, kept.logits, atol=1e-5)


def test_a_summarizer_around_the_pretrained_minilm():
    model = ExtractiveSummarizer.from_encoder(str(minilm_path()))
    assert model.config.num_hidden_layers == 6 and model.config.num_attention_heads == 12
    assert uses_segments(model)  # BERT-style: two token types
