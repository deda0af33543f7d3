"""Attention capture and head masking through the registered t3vis attention function."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForSequenceClassification

from t3vis.errors import ModelError
from t3vis.model.access import ATTENTION_NAME, AttentionProbe, load_model, run_with_probe, using_t3vis_attention
from t3vis.fixtures.tiny_models import save_tiny_model

SENTENCES = ["the striker scored twice in the final", "shares fell", "a new vaccine entered clinical trials today"]


def _inputs(bundle, model_type="bert"):
    inputs = bundle.tokenizer(SENTENCES, padding=True, return_tensors="pt")
    if model_type == "distilbert":
        inputs.pop("token_type_ids")
    return dict(inputs)


@pytest.mark.parametrize("model_type", ["bert", "distilbert", "roberta", "electra"])
def test_captured_attention_equals_eager_attention(tmp_path, model_type):
    folder = save_tiny_model(tmp_path / model_type, model_type)
    bundle = load_model(folder, device="cpu")
    inputs = _inputs(bundle, model_type)
    output, probe = run_with_probe(bundle.model, AttentionProbe(record=True), **inputs)
    eager = AutoModelForSequenceClassification.from_pretrained(folder, attn_implementation="eager").eval()
    with torch.no_grad():
        reference = eager(**inputs, output_attentions=True)
    captured = probe.stacked_attentions()  # (L, B, H, T, T)
    assert captured.shape == torch.stack(reference.attentions).shape
    torch.testing.assert_close(captured, torch.stack(reference.attentions), atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(output.logits, reference.logits, atol=1e-5, rtol=1e-5)
    # padding is respected: attention never lands on pad positions
    pad = inputs["attention_mask"] == 0  # (B, T)
    assert pad.any(), "the sentences must differ in length for this check"
    for b in range(pad.shape[0]):
        assert captured[:, b][..., pad[b]].abs().max() == 0 if pad[b].any() else True


def test_padding_does_not_change_an_examples_logits(tiny_bundle):
    inputs = _inputs(tiny_bundle)
    batch, _ = run_with_probe(tiny_bundle.model, AttentionProbe(), **inputs)
    single = tiny_bundle.tokenizer(SENTENCES[1:2], return_tensors="pt")
    alone, _ = run_with_probe(tiny_bundle.model, AttentionProbe(), **dict(single))
    torch.testing.assert_close(batch.logits[1:2], alone.logits, atol=1e-5, rtol=1e-5)


def test_masking_a_head_changes_logits_and_zeroes_its_attention(tiny_bundle):
    model, inputs = tiny_bundle.model, _inputs(tiny_bundle)
    baseline, _ = run_with_probe(model, AttentionProbe(), **inputs)
    recorded, _ = run_with_probe(model, AttentionProbe(record=True), **inputs)
    ones = torch.ones(tiny_bundle.num_layers, tiny_bundle.num_heads)
    same, _ = run_with_probe(model, AttentionProbe(head_mask=ones), **inputs)
    assert torch.equal(same.logits, baseline.logits), "a mask of ones must reproduce the logits exactly"
    same_recorded, _ = run_with_probe(model, AttentionProbe(head_mask=ones, record=True), **inputs)
    assert torch.equal(same_recorded.logits, recorded.logits)

    mask = ones.clone()
    mask[1, 2] = 0.0
    masked, probe = run_with_probe(model, AttentionProbe(head_mask=mask, record=True), **inputs)
    assert not torch.allclose(masked.logits, baseline.logits)
    assert probe.attentions[1][:, 2].abs().max() == 0
    assert probe.attentions[1][:, 1].abs().max() > 0
    # the fast (SDPA) path and the recording path agree on the masked logits
    fast, _ = run_with_probe(model, AttentionProbe(head_mask=mask), **inputs)
    torch.testing.assert_close(fast.logits, masked.logits, atol=1e-5, rtol=1e-5)
    # the model itself kept nothing: a plain call gives the unmasked logits again
    again, _ = run_with_probe(model, AttentionProbe(), **inputs)
    assert torch.equal(again.logits, baseline.logits)


def test_masking_every_head_of_a_layer_differs_from_masking_none(tiny_bundle):
    inputs = _inputs(tiny_bundle)
    mask = torch.ones(tiny_bundle.num_layers, tiny_bundle.num_heads)
    mask[0] = 0
    masked, _ = run_with_probe(tiny_bundle.model, AttentionProbe(head_mask=mask), **inputs)
    plain, _ = run_with_probe(tiny_bundle.model, AttentionProbe(), **inputs)
    assert (masked.logits - plain.logits).abs().max() > 1e-4


def test_tokenizer_that_does_not_match_the_checkpoint_is_refused(tmp_path):
    folder = save_tiny_model(tmp_path / "small-vocab", "bert", vocab_size=100)
    with pytest.raises(ModelError, match="does not match this tokenizer"):
        load_model(folder, device="cpu")


def test_missing_model_folder_gives_a_clear_error(tmp_path):
    with pytest.raises(ModelError, match="config.json"):
        load_model(tmp_path / "nothing-here", device="cpu")


def test_probe_requires_the_t3vis_attention(tiny_model_dir, tiny_bundle):
    model = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir).eval()
    with pytest.raises(ModelError, match="load_model"):
        run_with_probe(model, AttentionProbe(), **_inputs(tiny_bundle))


def test_using_t3vis_attention_restores_the_implementation_after_an_error(tiny_model_dir):
    model = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir, attn_implementation="sdpa").eval()
    with pytest.raises(RuntimeError, match="boom"):
        with using_t3vis_attention(model):
            assert model.config._attn_implementation == ATTENTION_NAME
            raise RuntimeError("boom")
    assert model.config._attn_implementation == "sdpa"


def test_load_model_reports_a_new_classification_head(tmp_path):
    from t3vis.model.pretrained import minilm_path

    bundle = load_model(minilm_path(), num_labels=4, device="cpu")
    assert bundle.classifier_was_initialised
    assert (bundle.num_layers, bundle.num_heads, len(bundle.label_names)) == (6, 12, 4)
    assert not bundle.model.training


def _copy_model(source, target, *, keep_tokenizer: bool = True):
    import shutil

    shutil.copytree(source, target)
    if not keep_tokenizer:
        for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
            (target / name).unlink(missing_ok=True)
    return target


def test_a_checkpoint_without_tokenizer_files_is_refused(tiny_model_dir, tmp_path):
    folder = _copy_model(tiny_model_dir, tmp_path / "no-tokenizer", keep_tokenizer=False)
    with pytest.raises(ModelError, match="has no tokenizer files.*`tokenizer`"):
        load_model(folder, device="cpu")
    assert load_model(folder, tokenizer=tiny_model_dir, device="cpu").tokenizer.vocab_size == 30522


def test_corrupt_weights_and_tokenizer_files_are_named(tiny_model_dir, tmp_path):
    folder = _copy_model(tiny_model_dir, tmp_path / "cut")
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(ModelError, match="model.safetensors is truncated or corrupt"):
        load_model(folder, device="cpu")
    folder = _copy_model(tiny_model_dir, tmp_path / "bad-json")
    (folder / "tokenizer.json").write_text("{not json")
    with pytest.raises(ModelError, match="Cannot read the tokenizer files .*tokenizer.json.*corrupt"):
        load_model(folder, device="cpu")


def _small_vocabulary_model(folder, *, model_rows: int):
    """A tiny model with ``model_rows`` embeddings and a 40-token WordPiece vocabulary of made-up words."""
    from transformers import BertTokenizer

    from t3vis.fixtures.tiny_models import tiny_config

    folder.mkdir()
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"zq{index}" for index in range(35)]
    (folder / "vocab.txt").write_text("\n".join(words) + "\n")
    BertTokenizer(str(folder / "vocab.txt")).save_pretrained(folder)
    AutoModelForSequenceClassification.from_config(tiny_config(vocab_size=model_rows)).save_pretrained(folder)
    return folder


def test_a_tokenizer_far_smaller_than_the_model_is_refused(tmp_path):
    folder = _small_vocabulary_model(tmp_path / "small", model_rows=30522)
    with pytest.raises(ModelError, match="only 40 tokens but the model .* 30522 token embeddings"):
        load_model(folder, device="cpu")


def test_data_that_is_mostly_unknown_tokens_is_refused(tmp_path, topic_csv):
    from t3vis.data.loading import load_examples
    from t3vis.record.ingest import IngestConfig, ingest_checkpoint
    from t3vis.store.database import Store

    bundle = load_model(_small_vocabulary_model(tmp_path / "wrong", model_rows=40), device="cpu")
    store = Store(tmp_path / "s.duckdb", create=True)
    with pytest.raises(ModelError, match="100% of the data's word pieces are the unknown token"):
        ingest_checkpoint(store, bundle, load_examples(topic_csv), run_id="r", checkpoint="c",
                          config=IngestConfig(projection="none"))
    assert not store.path.exists()
