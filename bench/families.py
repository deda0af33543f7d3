"""Model families, measured: LRP conservation, head masks as removal, and the instance view at 128 to 2,048 tokens.

    python bench/families.py [--repeats 3]

For each supported family a small random config of comparable size (4 layers x 4 heads, width 256; BERT's
positions stop at 512) is built here, no download:

1. Conservation: on a bias-free copy (biases zeroed, normalisation weights drawn in [0.5, 1.5]), the largest
   relative error |Σ relevance − logit| / |logit| of LRP over the classes of one 128-token input.
2. Mask check: the largest |logit difference| between masking a head and zeroing its slice of the
   output projection, over every head of the last layer.
3. Instance view: the time of what the view computes for one input (every head's attention with the head
   importance of the input's loss, LRP, Input×Gradient), median of ``--repeats`` after a warm-up, at 128,
   512 and 2,048 tokens (2,048 only for the families whose positions reach it), and the time to build the
   2,048-token attention image chart (pooled to 640 x 640 blocks).

Last line: ``BENCH families supported=... max_conservation_err=... max_mask_err=... instance_ms_128=...
instance_ms_512=... instance_ms_2048=... raster_ms_2048=...`` (the times are the slowest family's).
The decoder fine-tuning with AOPC asked for by the issue is not measured here yet.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

from t3vis.analysis.instance_heads import instance_heads
from t3vis.attribution import METHODS
from t3vis.attribution.base import prepare
from t3vis.charts import attention_raster_chart
from t3vis.model.access import AttentionProbe, load_model, run_with_probe
from t3vis.model.families import FAMILIES
from t3vis.model.pretrained import minilm_path

WIDTH = dict(hidden_size=256, num_hidden_layers=4, num_attention_heads=4, intermediate_size=512)
CONFIGS = {  # model_type -> (config values, longest input)
    "bert": (WIDTH, 512),
    "gpt2": (dict(n_embd=256, n_layer=4, n_head=4), 2048),
    "llama": (dict(WIDTH, num_key_value_heads=2), 2048),
    "modernbert": (dict(WIDTH, global_attn_every_n_layers=2, local_attention=128), 2048),
}


def build(model_type: str, folder: Path, tokenizer) -> object:
    values, longest = CONFIGS[model_type]
    config = AutoConfig.for_model(model_type, vocab_size=len(tokenizer) + 8, num_labels=3, pad_token_id=0,
                                  max_position_embeddings=longest, **values)
    torch.manual_seed(0)
    AutoModelForSequenceClassification.from_config(config).save_pretrained(folder)
    tokenizer.model_max_length = longest  # the MiniLM tokenizer says 512; these positions reach further
    tokenizer.save_pretrained(folder)
    bundle = load_model(folder, device="cpu")
    assert bundle.max_length == longest, (model_type, bundle.max_length)
    return bundle, longest


def text_of(tokenizer, n_tokens: int) -> str:
    words = "the committee approved a rather surprising budget after a long and heated debate on monday".split()
    text = ""
    while len(tokenizer(text)["input_ids"]) < n_tokens:
        text += " " + " ".join(words)
    ids = tokenizer(text)["input_ids"][1:n_tokens - 1]
    return tokenizer.decode(ids)


def conservation_error(bundle, text: str) -> float:
    with torch.no_grad():
        for name, parameter in bundle.model.named_parameters():
            if name.endswith("bias"):
                parameter.zero_()
            elif "norm" in name.lower() or name.endswith(("ln_1.weight", "ln_2.weight", "ln_f.weight")):
                parameter.uniform_(0.5, 1.5)
    example = prepare(bundle, text)
    errors = []
    for target in range(3):
        result = METHODS["lrp"].attribute(bundle, example, target)
        errors.append(abs(result.total - result.logit) / max(abs(result.logit), 1e-12))
    return max(errors)


def output_projection(model, model_type: str, layer: int) -> torch.Tensor:
    if model_type == "bert":
        return model.bert.encoder.layer[layer].attention.output.dense.weight
    if model_type == "gpt2":
        return model.transformer.h[layer].attn.c_proj.weight.T
    if model_type == "modernbert":
        return model.model.layers[layer].attn.Wo.weight
    return model.model.layers[layer].self_attn.o_proj.weight


def mask_error(bundle, model_type: str, tokenizer) -> float:
    inputs = dict(tokenizer(["a quiet film about loss", "loud and long"], padding=True, return_tensors="pt"))
    layer, worst = bundle.num_layers - 1, 0.0
    for head in range(bundle.num_heads):
        mask = torch.ones(bundle.num_layers, bundle.num_heads)
        mask[layer, head] = 0.0
        with torch.no_grad():
            masked, _ = run_with_probe(bundle.model, AttentionProbe(head_mask=mask), **inputs)
            weight = output_projection(bundle.model, model_type, layer)
            width = weight.shape[1] // bundle.num_heads
            saved = weight[:, head * width:(head + 1) * width].clone()
            weight[:, head * width:(head + 1) * width] = 0.0
            removed, _ = run_with_probe(bundle.model, AttentionProbe(), **inputs)
            weight[:, head * width:(head + 1) * width] = saved
        worst = max(worst, float((masked.logits - removed.logits).abs().max()))
    return worst


def instance_ms(bundle, text: str, repeats: int) -> float:
    assert len(bundle.tokenizer(text)["input_ids"]) <= bundle.max_length

    def once() -> None:
        instance_heads(bundle, text, label=0)
        example = prepare(bundle, text)
        METHODS["lrp"].attribute(bundle, example, 0)
        METHODS["input_x_gradient"].attribute(bundle, example, 0)

    once()  # warm-up
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        once()
        times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    tokenizer = AutoTokenizer.from_pretrained(minilm_path())
    results = {}
    with tempfile.TemporaryDirectory() as scratch:
        for model_type in CONFIGS:
            bundle, longest = build(model_type, Path(scratch) / model_type, tokenizer)
            row = {"mask_err": mask_error(bundle, model_type, bundle.tokenizer)}
            for n_tokens in (128, 512, 2048):
                if n_tokens <= longest:
                    row[f"instance_ms_{n_tokens}"] = instance_ms(bundle, text_of(bundle.tokenizer, n_tokens),
                                                                 args.repeats)
            if longest >= 2048:
                heads = instance_heads(bundle, text_of(bundle.tokenizer, 2048), label=0)
                started = time.perf_counter()
                attention_raster_chart(heads.tokens, heads.attentions[0, 0], title="L0·H0").to_dict()
                row["raster_ms_2048"] = 1000 * (time.perf_counter() - started)
            row["conservation_err"] = conservation_error(bundle, text_of(bundle.tokenizer, 128))  # last: it edits
            results[model_type] = row
            print(model_type, ", ".join(f"{key} {value:.4g}" for key, value in row.items()), flush=True)
    supported = "|".join(family.name.split()[0] for family in FAMILIES)
    worst = {key: max(row.get(key, 0.0) for row in results.values())
             for key in ("conservation_err", "mask_err", "instance_ms_128", "instance_ms_512", "instance_ms_2048",
                         "raster_ms_2048")}
    print(f"BENCH families supported={supported} max_conservation_err={worst['conservation_err']:.2e} "
          f"max_mask_err={worst['mask_err']:.2e} instance_ms_128={worst['instance_ms_128']:.0f} "
          f"instance_ms_512={worst['instance_ms_512']:.0f} instance_ms_2048={worst['instance_ms_2048']:.0f} "
          f"raster_ms_2048={worst['raster_ms_2048']:.0f}")


if __name__ == "__main__":
    np.set_printoptions(precision=4)
    main()
