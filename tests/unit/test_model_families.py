"""Each supported model family on a tiny random config: it loads, attention is captured, a masked head equals the
head removed (its slice of the output projection zeroed), decoders pool their last real token, and an
unsupported architecture is refused by name."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

from t3vis.errors import ModelError
from t3vis.model.access import AttentionProbe, load_model, pool_hidden_states, run_with_probe
from t3vis.model.families import FAMILIES, family_of
from t3vis.fixtures.tiny_models import save_tiny_model
from t3vis.model.pretrained import minilm_path

SIZES = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=48)
CONFIGS = ("bert", "distilbert", "gpt2", "llama", "qwen2", "qwen3", "mistral", "modernbert", "deberta-v2")  # one or more per family


def _output_projection(model, model_type: str, layer: int) -> torch.Tensor:
    """The weight of a layer's attention output projection, oriented (out, in = heads x head_dim)."""
    if model_type == "bert":
        return model.bert.encoder.layer[layer].attention.output.dense.weight
    if model_type == "deberta-v2":
        return model.deberta.encoder.layer[layer].attention.output.dense.weight
    if model_type == "distilbert":
        return model.distilbert.transformer.layer[layer].attention.out_lin.weight
    if model_type == "gpt2":
        return model.transformer.h[layer].attn.c_proj.weight.T  # Conv1D stores (in, out)
    if model_type == "modernbert":
        return model.model.layers[layer].attn.Wo.weight
    return model.model.layers[layer].self_attn.o_proj.weight


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(minilm_path())


def _save(tmp_path, model_type: str, tokenizer):
    return save_tiny_model(tmp_path, model_type, num_labels=3)


def test_every_supported_family_is_tested_here():
    tested = set(CONFIGS)
    assert all(tested & set(family.model_types) for family in FAMILIES)


@pytest.mark.parametrize("model_type", sorted(CONFIGS))
def test_attention_is_captured_and_a_masked_head_equals_its_removal(tmp_path, tokenizer, model_type):
    bundle = load_model(_save(tmp_path, model_type, tokenizer), device="cpu")
    assert bundle.decoder == family_of(bundle.model.config).decoder
    inputs = dict(tokenizer(["a quiet film about loss", "loud"], padding=True, return_tensors="pt"))
    with torch.no_grad():
        _, probe = run_with_probe(bundle.model, AttentionProbe(record=True), **inputs)
        # the MiniLM tokenizer makes segment ids; only the families that read them are given them (GPT-2 would
        # add them as word embeddings)
        plain = {name: value for name, value in inputs.items() if name != "token_type_ids" or family_of(bundle.model.config).token_types}
        direct = bundle.model(**plain).logits
        through_t3vis, _ = run_with_probe(bundle.model, AttentionProbe(), **inputs)
    assert torch.allclose(direct, through_t3vis.logits, atol=1e-5)
    attentions = probe.stacked_attentions()  # (L, B, H, T, T)
    assert attentions.shape[:3] == (2, 2, 4)
    real = inputs["attention_mask"].bool()  # (B, T)
    rows = attentions[:, 1][:, :, real[1]]  # the short example's real query rows
    assert torch.allclose(rows.sum(-1), torch.ones_like(rows.sum(-1)), atol=1e-5)

    layer, head = 1, 2
    mask = torch.ones(2, 4)
    mask[layer, head] = 0.0
    with torch.no_grad():
        masked, _ = run_with_probe(bundle.model, AttentionProbe(head_mask=mask), **inputs)
        weight = _output_projection(bundle.model, model_type, layer)
        width = weight.shape[1] // 4
        saved = weight[:, head * width:(head + 1) * width].clone()
        weight[:, head * width:(head + 1) * width] = 0.0  # the head's contribution removed
        removed, _ = run_with_probe(bundle.model, AttentionProbe(), **inputs)
        weight[:, head * width:(head + 1) * width] = saved
        full, _ = run_with_probe(bundle.model, AttentionProbe(), **inputs)
    assert torch.allclose(masked.logits, removed.logits, atol=1e-5)
    assert not torch.allclose(masked.logits, full.logits, atol=1e-5)  # the head mattered


def test_a_decoder_pools_its_last_real_token_with_either_padding_side():
    hidden = torch.arange(2 * 4 * 1, dtype=torch.float).reshape(2, 4, 1)  # (B, T, D): position = value
    right = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]])
    left = torch.tensor([[0, 1, 1, 1], [0, 0, 1, 1]])
    assert pool_hidden_states(hidden, right, pooling="cls", decoder=True).flatten().tolist() == [2.0, 5.0]
    assert pool_hidden_states(hidden, left, pooling="cls", decoder=True).flatten().tolist() == [3.0, 7.0]
    assert pool_hidden_states(hidden, right, pooling="cls").flatten().tolist() == [0.0, 4.0]  # encoders: first


def test_a_decoder_classifier_reads_the_token_t3vis_lays_out(tmp_path, tokenizer):
    bundle = load_model(_save(tmp_path, "llama", tokenizer), device="cpu")
    inputs = dict(tokenizer(["a quiet film about loss", "loud"], padding=True, return_tensors="pt"))
    inputs.pop("token_type_ids")
    with torch.no_grad():
        output, _ = run_with_probe(bundle.model, AttentionProbe(), **inputs, output_hidden_states=True)
        pooled = pool_hidden_states(output.hidden_states[-1], inputs["attention_mask"], pooling="cls", decoder=True)
        # the last hidden state is already normed: the classification head on the pooled vector gives the logits
        head = bundle.model.score(pooled)
    assert torch.allclose(head, output.logits, atol=1e-5)


def test_an_unsupported_architecture_is_refused_naming_the_supported_ones(tmp_path, tokenizer):
    config = AutoConfig.for_model("deberta", vocab_size=len(tokenizer), num_labels=2, **SIZES)  # DeBERTa v1
    AutoModelForSequenceClassification.from_config(config).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    with pytest.raises(ModelError, match="'deberta'.*Supported: BERT-style encoders.*llama"):
        load_model(tmp_path, device="cpu")


def test_the_callback_refuses_an_unsupported_architecture_and_training_goes_on(tmp_path, tokenizer):
    import warnings

    from transformers import Trainer, TrainingArguments

    from t3vis.record.callback import T3visCallback
    from t3vis.store.background_writer import RecordingWarning
    from t3vis.store.database import Store

    config = AutoConfig.for_model("deberta", vocab_size=len(tokenizer), num_labels=2, **SIZES)  # DeBERTa v1
    model = AutoModelForSequenceClassification.from_config(config)
    items = [dict(tokenizer(text), labels=label) for text, label in (("good", 1), ("bad", 0))] * 2
    callback = T3visCallback(Store(tmp_path / "s.duckdb", create=True), run_id="deberta")
    trainer = Trainer(model=model, processing_class=tokenizer, train_dataset=items, callbacks=[callback],
                      args=TrainingArguments(output_dir=str(tmp_path / "out"), num_train_epochs=1, report_to=[],
                                             per_device_train_batch_size=2, use_cpu=True, save_strategy="no"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.train()
    assert trainer.state.global_step == 2  # training ran
    assert any(issubclass(w.category, RecordingWarning) and "'deberta'" in str(w.message) for w in caught)
    assert not (tmp_path / "s.duckdb").exists()  # nothing was recorded, no file was made


@pytest.mark.parametrize("model_type", sorted(CONFIGS))
def test_lrp_conserves_each_class_logit_on_a_bias_free_model_of_every_family(tmp_path, tokenizer, model_type):
    from t3vis.attribution import METHODS
    from t3vis.attribution.base import prepare

    bundle = load_model(_save(tmp_path, model_type, tokenizer), device="cpu")
    torch.manual_seed(1)
    with torch.no_grad():
        for name, parameter in bundle.model.named_parameters():
            if name.endswith("bias"):
                parameter.zero_()
            elif "norm" in name.lower() or name.endswith(("ln_1.weight", "ln_2.weight", "ln_f.weight")):
                parameter.uniform_(0.5, 1.5)  # normalisation weights away from 1, so their rule is exercised
    example = prepare(bundle, "the committee approved a rather surprising budget on monday")
    errors = []
    for target in range(3):
        result = METHODS["lrp"].attribute(bundle, example, target, pruned=[(0, 1)])
        assert abs(result.logit) > 1e-4
        errors.append(abs(result.total - result.logit) / abs(result.logit))
        assert result.total == pytest.approx(result.logit, rel=1e-3, abs=1e-6), (model_type, target)
    # Input x Gradient and Integrated Gradients run on every family too (no conservation to check there)
    for method in ("input_x_gradient", "integrated_gradients"):
        scores = METHODS[method].attribute(bundle, example, 0).scores
        assert scores.shape == (len(example.tokens),) and abs(scores).sum() > 0


@pytest.mark.parametrize("model_type", sorted(CONFIGS))
def test_every_family_ingests_and_its_head_importance_is_a_derivative(tmp_path, tokenizer, model_type):
    import numpy as np

    from t3vis.data.loading import ExampleSet
    from t3vis.record.head_importance import head_mask_gradient
    from t3vis.record.ingest import IngestConfig, ingest_checkpoint
    from t3vis.store.database import Store

    bundle = load_model(_save(tmp_path / "model", model_type, tokenizer), device="cpu")
    texts = ["the striker scored twice", "shares fell", "the telescope found a distant planet",
             "fans cheered as the runner crossed the line", "the bank raised its profit forecast",
             "physicists measured the particle mass", "a late goal", "investors worry about rates"]
    labels = np.array([0, 1, 2, 0, 1, 2, 0, 1])
    inputs = dict(tokenizer(texts[:3], padding=True, return_tensors="pt"))
    _, gradient = head_mask_gradient(bundle.model, inputs, torch.tensor(labels[:3]))  # (B, L, H)

    def loss(mask: torch.Tensor) -> float:
        with torch.no_grad():
            output, _ = run_with_probe(bundle.model, AttentionProbe(head_mask=mask), **inputs)
        return float(torch.nn.functional.cross_entropy(output.logits, torch.tensor(labels[:3]), reduction="sum"))

    eps = 1e-3
    for layer, head in ((0, 1), (1, 3)):
        plus, minus = torch.ones(2, 4), torch.ones(2, 4)
        plus[layer, head] += eps
        minus[layer, head] -= eps
        by_hand = (loss(plus) - loss(minus)) / (2 * eps)
        assert abs(gradient[:, layer, head].sum().item() - by_hand) < 2e-3 * max(1.0, abs(by_hand)), model_type

    examples = ExampleSet(example_ids=np.arange(8), texts=texts, text_pairs=None, labels=labels,
                          label_names=["a", "b", "c"], extra=pd_frame(8), text_columns=("text",),
                          label_column="label", source="inline")
    store = Store(tmp_path / "s.duckdb", create=True)
    summary = ingest_checkpoint(store, bundle, examples, run_id=model_type, checkpoint="c1", step=1,
                                config=IngestConfig(projection="pca", batch_size=3, importance_examples=-1))
    assert summary.n_examples == 8
    importance = store.query("SELECT importance FROM head_importance").importance
    assert len(importance) == 8 and np.isfinite(importance).all() and (importance >= 0).all()
    assert store.scalar("SELECT count(*) FROM projections") == 8
    patterns = store.query("SELECT attn_same_token, attn_adjacent FROM attention_patterns")
    assert len(patterns) == 8 and patterns.notna().all().all()


def pd_frame(n: int):
    import pandas as pd

    return pd.DataFrame(index=range(n))


@pytest.mark.parametrize("model_type", ["gpt2", "llama", "modernbert", "deberta-v2"])
def test_the_callback_records_the_training_passes_of_every_family(tmp_path, tokenizer, model_type):
    import numpy as np
    from transformers import DataCollatorWithPadding, Trainer, TrainingArguments

    from t3vis.record.callback import T3visCallback
    from t3vis.store.database import Store

    class ReferenceTrainer(Trainer):
        seen: list

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            loss, outputs = super().compute_loss(model, inputs, return_outputs=True,
                                                 num_items_in_batch=num_items_in_batch)
            if model.training:
                self.seen.append((inputs["input_ids"].clone(), outputs.logits.detach().clone(),
                                  inputs["labels"].clone()))
            return (loss, outputs) if return_outputs else loss

    folder = _save(tmp_path / "model", model_type, tokenizer)
    model = AutoModelForSequenceClassification.from_pretrained(folder)
    texts = [f"{word} {other}" for word in ("goal", "bank", "planet") for other in ("today", "again", "now", "here")]
    labels = [index // 4 for index in range(len(texts))]
    items = [dict(tokenizer(text), labels=label) for text, label in zip(texts, labels)]
    callback = T3visCallback(Store(tmp_path / "s.duckdb", create=True), run_id=model_type,
                             label_names=["sport", "money", "space"])
    trainer = ReferenceTrainer(
        model=model, processing_class=tokenizer, train_dataset=items, callbacks=[callback],
        data_collator=DataCollatorWithPadding(tokenizer),
        args=TrainingArguments(output_dir=str(tmp_path / "out"), num_train_epochs=2, per_device_train_batch_size=4,
                               learning_rate=1e-3, report_to=[], save_strategy="no", use_cpu=True, seed=0))
    trainer.seen = []
    trainer.train()
    assert callback.problems == []
    stored = callback.store.query("SELECT epoch, example_id, gold_prob FROM training_dynamics ORDER BY 1, 2")
    assert len(stored) == 2 * len(texts)
    index = {tuple(item["input_ids"]): position for position, item in enumerate(items)}
    for epoch in range(2):
        expected = np.zeros(len(texts))
        for input_ids, logits, gold in trainer.seen[epoch * 3:(epoch + 1) * 3]:
            probs = torch.softmax(logits.double(), -1)[torch.arange(len(gold)), gold]
            for row, ids in enumerate(input_ids.tolist()):
                expected[index[tuple(t for t in ids if t != tokenizer.pad_token_id)]] = float(probs[row])
        mine = stored[stored.epoch == epoch].gold_prob.to_numpy()
        np.testing.assert_allclose(mine, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("model_type", ["gpt2", "llama", "modernbert", "deberta-v2"])
def test_recorded_attention_is_the_models_own_with_or_without_padding(tmp_path, tokenizer, model_type):
    """The explicit attention (recording, LRP) equals the fast path, and a decoder's is causal, also for a batch
    without padding (which comes with no mask at all)."""
    bundle = load_model(_save(tmp_path, model_type, tokenizer), device="cpu")
    for texts in (["goal today", "bank now"], ["a quiet film about loss", "loud"]):  # no padding, then padding
        inputs = dict(tokenizer(texts, padding=True, return_tensors="pt"))
        with torch.no_grad():
            fast, _ = run_with_probe(bundle.model, AttentionProbe(), **inputs)
            explicit, probe = run_with_probe(bundle.model, AttentionProbe(record=True), **inputs)
        assert torch.allclose(fast.logits, explicit.logits, atol=1e-5), (model_type, texts)
        attentions = probe.stacked_attentions()  # (L, B, H, T, T)
        above = torch.triu(torch.ones(attentions.shape[-2:], dtype=torch.bool), diagonal=1)
        if bundle.decoder:
            assert float(attentions[..., above].abs().max()) == 0.0  # no query attends to a later token
        else:
            assert float(attentions[..., above].abs().max()) > 0.0


def test_lrp_conserves_relevance_through_debertas_convolution_layer(tmp_path, tokenizer):
    """DeBERTa-v2's large models add a convolution over the embeddings to the first layer's output; its activation
    is a function call, so LRP recomputes the layer with the identity rule. Relevance is still conserved."""
    from t3vis.attribution import METHODS
    from t3vis.attribution.base import prepare
    from t3vis.fixtures.tiny_models import save_tiny_model

    folder = save_tiny_model(tmp_path, "deberta-v2", num_labels=2, conv_kernel_size=3, conv_act="gelu")
    bundle = load_model(folder, device="cpu")
    assert any(type(module).__name__ == "ConvLayer" for module in bundle.model.modules())
    with torch.no_grad():
        for name, parameter in bundle.model.named_parameters():
            if name.endswith("bias"):
                parameter.zero_()
    example = prepare(bundle, "the committee approved a rather surprising budget on monday")
    for target in range(2):
        result = METHODS["lrp"].attribute(bundle, example, target)
        assert abs(result.logit) > 1e-4
        assert result.total == pytest.approx(result.logit, rel=1e-3, abs=1e-6), target


def test_a_decoder_is_read_where_its_classifier_reads_even_when_a_text_ends_in_the_padding_token(tmp_path,
                                                                                                 tokenizer):
    """transformers' decoder classifier reads the rightmost token that is not its padding id; with the end-of-text
    token used for padding, a text ending in it is read one token earlier. The laid-out vector is that one."""
    bundle = load_model(_save(tmp_path, "llama", tokenizer), device="cpu")
    pad = bundle.model.config.pad_token_id
    words = tokenizer("a quiet film about loss", add_special_tokens=False)["input_ids"]
    input_ids = torch.tensor([words + [pad], words[:2] + [pad] * 4])  # row 0 ends in a real padding token
    attention_mask = torch.tensor([[1] * 6, [1, 1, 0, 0, 0, 0]])
    with torch.no_grad():
        output, _ = run_with_probe(bundle.model, AttentionProbe(), input_ids=input_ids, attention_mask=attention_mask,
                                   output_hidden_states=True)
        hidden = output.hidden_states[-1]  # (B, T, D)
        pooled = pool_hidden_states(hidden, attention_mask, pooling="cls", decoder=True, input_ids=input_ids,
                                    pad_token_id=pad)
        by_mask = pool_hidden_states(hidden, attention_mask, pooling="cls", decoder=True)
    assert torch.allclose(bundle.model.score(pooled), output.logits, atol=1e-5)
    assert not torch.allclose(bundle.model.score(by_mask)[0], output.logits[0], atol=1e-3)  # the mask rule: wrong


def test_a_decoder_whose_padding_id_differs_from_its_tokenizers_is_padded_with_its_own(tmp_path, tokenizer):
    """Batches are padded with the id the classifier looks for, so padding never changes an example's logits."""
    from t3vis.model.encoding import collate, encode

    folder = save_tiny_model(tmp_path, "llama", num_labels=3, pad_token_id=7)  # the tokenizer pads with 0
    bundle = load_model(folder, device="cpu")
    assert bundle.tokenizer.pad_token_id == 0 and bundle.pad_token_id == 7
    texts = ["a quiet film about loss and grief", "loud"]
    encoded = encode(bundle.tokenizer, texts, None, max_length=64)
    import numpy as np

    with torch.no_grad():
        batch = collate(encoded, np.arange(2), pad_token_id=bundle.pad_token_id, device=torch.device("cpu"))
        together, _ = run_with_probe(bundle.model, AttentionProbe(), **batch)
        alone = [run_with_probe(bundle.model, AttentionProbe(), **collate(
            encoded, np.array([index]), pad_token_id=bundle.pad_token_id, device=torch.device("cpu")))[0].logits[0]
            for index in range(2)]
    assert torch.allclose(together.logits, torch.stack(alone), atol=1e-5)
