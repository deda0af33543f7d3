"""Model families, measured: LRP conservation, head masks as removal, and the instance view at 128 to 2,048 tokens.

    python bench/families.py [--repeats 3] [--skip-browser] [--skip-decoder]

For each supported family a small random config of comparable size (4 layers x 4 heads, width 256; BERT's
positions stop at 512) is built here, no download:

1. Conservation: on a bias-free copy (biases zeroed, normalisation weights drawn in [0.5, 1.5]), the largest
   relative error |Σ relevance − logit| / |logit| of LRP over the classes of one 128-token input.
2. Mask check: the largest |logit difference| between masking a head and zeroing its slice of the
   output projection, over every head of the last layer.
3. Instance view: the time of what the view computes when it opens (LRP of the predicted class, whose forward
   pass gives the prediction), median of ``--repeats`` after a warm-up, at 128, 512 and 2,048 tokens (2,048 only
   for the families whose positions reach it); at 2,048 tokens also the head view's instance scale (every
   head's pooled attention and the input's head importance), and a head's attention image: the head's matrix
   computed on demand and the chart built (pooled to 640 x 640 blocks).

4. Browser, at 2,048 tokens (``bench/long_inputs.py`` on the Llama config; ``--skip-browser`` leaves it out):
   the Instance page from navigation until its tokens are drawn coloured by LRP, and the attention image from
   the click on a head until it is drawn, in headless Chromium.

5. Decoder faithfulness: ``bench/decoder_sst2.py`` (its ``main``, with its defaults) fine-tunes a small Llama
   classifier on SST-2 under ``T3visCallback`` and measures AOPC of LRP, Input×Gradient and random orders on it
   (up to half an hour on 2 busy cores; ``--skip-decoder`` leaves it out and prints ``na``).

Last line: ``BENCH families supported=... max_conservation_err=... max_mask_err=... instance_ms_128=...
instance_ms_512=... instance_ms_2048=... head_view_ms_2048=... attention_ms_2048=... browser_instance_ms_2048=...
browser_attention_ms_2048=... aopc_lrp_decoder=... aopc_ixg_decoder=... aopc_random_decoder=...`` (the times
are the slowest family's).
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from transformers import AutoTokenizer

import long_inputs
from family_models import CONFIGS, build, text_of
from t3vis.analysis.instance_heads import attention_on_demand, instance_heads
from t3vis.attribution import METHODS
from t3vis.attribution.base import prepare
from t3vis.charts import attention_raster_chart
from t3vis.model.access import AttentionProbe, run_with_probe
from t3vis.model.families import FAMILIES
from t3vis.model.pretrained import minilm_path


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
    if model_type == "deberta-v2":
        return model.deberta.encoder.layer[layer].attention.output.dense.weight
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


def median_ms(step, repeats: int) -> float:
    step()  # warm-up
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        step()
        times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times)


def instance_ms(bundle, text: str, repeats: int) -> float:
    """The Instance view on opening: the input encoded, LRP of the predicted class (its forward gives the
    prediction)."""
    assert len(bundle.tokenizer(text)["input_ids"]) <= bundle.max_length
    return median_ms(lambda: METHODS["lrp"].attribute(bundle, prepare(bundle, text), None), repeats)


def attention_image_ms(bundle, text: str, repeats: int) -> float:
    """A head selected in the head view at instance scale: its full matrix computed (up to its layer) and the
    attention image chart built."""
    def step() -> None:
        example = prepare(bundle, text)
        matrix = attention_on_demand(bundle, example.inputs)[bundle.num_layers - 1, 0]
        attention_raster_chart(example.tokens, matrix, title="L3·H0").to_dict()

    return median_ms(step, repeats)


def decoder_aopc() -> dict[str, float] | None:
    """AOPC of LRP, Input×Gradient and random orders on a Llama classifier fine-tuned on SST-2 (bench/decoder_sst2.py,
    which prints its own BENCH line); None when it was skipped."""
    spec = importlib.util.spec_from_file_location("bench_decoder_sst2", Path(__file__).with_name("decoder_sst2.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main([])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-decoder", action="store_true", help="leave out the decoder fine-tuning and its AOPC")
    parser.add_argument("--skip-browser", action="store_true", help="leave out the browser timings at 2,048 tokens")
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
                long_text = text_of(bundle.tokenizer, 2048)
                row["head_view_ms_2048"] = median_ms(lambda: instance_heads(bundle, long_text, label=0), args.repeats)
                row["attention_ms_2048"] = attention_image_ms(bundle, long_text, args.repeats)
            row["conservation_err"] = conservation_error(bundle, text_of(bundle.tokenizer, 128))  # last: it edits
            results[model_type] = row
            print(model_type, ", ".join(f"{key} {value:.4g}" for key, value in row.items()), flush=True)
    browser = None if args.skip_browser else long_inputs.measure("llama", args.repeats)
    shown = {key: "na" if browser is None else f"{browser[key]:.0f}"
             for key in ("browser_instance_ms_2048", "browser_attention_ms_2048")}
    decoder = None if args.skip_decoder else decoder_aopc()
    aopc = {key: "na" if decoder is None else f"{decoder[key]:.4f}"
            for key in ("aopc_lrp_decoder", "aopc_ixg_decoder", "aopc_random_decoder")}
    supported = "|".join(family.name.split()[0] for family in FAMILIES)
    worst = {key: max(row.get(key, 0.0) for row in results.values())
             for key in ("conservation_err", "mask_err", "instance_ms_128", "instance_ms_512", "instance_ms_2048",
                         "head_view_ms_2048", "attention_ms_2048")}
    print(f"BENCH families supported={supported} max_conservation_err={worst['conservation_err']:.2e} "
          f"max_mask_err={worst['mask_err']:.2e} instance_ms_128={worst['instance_ms_128']:.0f} "
          f"instance_ms_512={worst['instance_ms_512']:.0f} instance_ms_2048={worst['instance_ms_2048']:.0f} "
          f"head_view_ms_2048={worst['head_view_ms_2048']:.0f} attention_ms_2048={worst['attention_ms_2048']:.0f} "
          + " ".join(f"{key}={value}" for key, value in {**shown, **aopc}.items()))


if __name__ == "__main__":
    np.set_printoptions(precision=4)
    main()
