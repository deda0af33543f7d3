"""Generation data: prompt → completion pairs in each layout, chat rendering, GSM8K final answers, completion-only
labels, truncation, batches; every refusal's message. Real tokenizers: MiniLM's (WordPiece, [CLS] first, no EOS) and
small byte-level BPE tokenizers trained here (GPT-2 style with an EOS; Llama style with a BOS)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from helpers import shared_file
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import (
    AutoTokenizer,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
)

from t3vis.data.completions import (
    IGNORED,
    PROMPT_END,
    collate_completions,
    encode_completions,
    final_answer,
    load_completions,
)
from t3vis.errors import DataError, ModelError
from t3vis.model.pretrained import minilm_path

CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
CHAT = [{"role": "system", "content": "You solve math problems."},
        {"role": "user", "content": "What is 6 times 3?"},
        {"role": "assistant", "content": "6 * 3 = 18\n#### 18"}]
CORPUS = ["Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May.",
          "How many clips did Natalia sell altogether in April and May?", "The sky is blue.",
          "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\n#### 72", "What is 6 times 3? 6 * 3 = 18"]


@pytest.fixture(scope="module")
def minilm():
    return AutoTokenizer.from_pretrained(minilm_path())


def _bpe(*, bos: bool = False) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer trained on a few sentences: GPT-2's layout (EOS, no BOS) or Llama's (BOS first)."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<s>"]
    tokenizer.train_from_iterator(CORPUS * 10, trainers.BpeTrainer(
        vocab_size=400, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    if bos:
        tokenizer.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 3)])
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token="<|endoftext|>",
                                   bos_token="<s>" if bos else None)


@pytest.fixture(scope="module")
def gpt2_like():
    return _bpe()


@pytest.fixture(scope="module")
def llama_like():
    return _bpe(bos=True)


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


# -- final answers ------------------------------------------------------------------------------------------------


def test_final_answer_is_the_text_after_the_first_marks_without_thousands_commas():
    assert final_answer("so 48 + 24 = 72\n#### 72") == "72"
    assert final_answer("#### 1,080") == "1080" and final_answer("####-3,000.50 ") == "-3000.50"
    assert final_answer("#### 18\nQuestion: next one\n#### 5") == "18"  # a generation that goes on
    assert final_answer("no marker here") is None and final_answer("####  \n") is None and final_answer("") is None


@pytest.mark.slow
def test_gsm8k_rows_give_their_final_answers_and_a_prompt_ending_in_a_newline():
    path = shared_file("gsm8k_train.jsonl")
    data = load_completions(path)
    first = json.loads(path.read_text(encoding="utf-8").split("\n", 1)[0])
    assert len(data) == 7473 and data.format == "question-answer" and data.columns == ("question", "answer")
    assert data.prompts[0] == first["question"] + PROMPT_END and data.completions[0] == first["answer"]
    assert data.answers[:3] == ["72", "10", "5"]  # Natalia's clips, Weng's babysitting, Betty's wallet
    assert all(answer is not None and "," not in answer for answer in data.answers)
    with_commas = [i for i, c in enumerate(data.completions) if "," in c.rsplit("####", 1)[1]]
    assert with_commas and all(data.answers[i] == data.completions[i].rsplit("####", 1)[1].strip().replace(",", "")
                               for i in with_commas)
    test = load_completions(shared_file("gsm8k_test.jsonl"), limit=10)
    assert len(test) == 10 and test.example_ids.tolist() == list(range(10)) and test.extra.shape == (10, 0)


# -- layouts and columns ------------------------------------------------------------------------------------------


def test_prompt_completion_pairs_keep_their_own_spacing(tmp_path):
    path = _jsonl(tmp_path / "pc.jsonl", [{"prompt": "The sky is", "completion": " blue.", "topic": "weather"},
                                          {"prompt": "Question: 2+2?\n", "completion": "4"},
                                          {"prompt": "Say hi", "completion": "hi"}])
    data = load_completions(path)
    assert data.format == "prompt-completion" and data.columns == ("prompt", "completion")
    assert data.prompts == ["The sky is", "Question: 2+2?\n", "Say hi\n"]  # only the last would run together
    assert data.completions == [" blue.", "4", "hi"] and data.answers == [None, None, None]
    assert data.extra.topic[0] == "weather" and data.extra.topic[1:].isna().all() and data.source == str(path)


def test_alpaca_prompts_join_the_instruction_and_a_non_empty_input_with_a_blank_line(tmp_path):
    path = tmp_path / "alpaca.csv"
    path.write_text('instruction,input,output\n"Add the numbers.","2 and 3","5"\n"Name a colour.",,"Red"\n'
                    '"Translate to French.","   ","Bonjour"\n', encoding="utf-8")
    data = load_completions(path)
    assert data.format == "alpaca" and data.columns == ("instruction", "input", "output")
    assert data.prompts == ["Add the numbers.\n\n2 and 3\n", "Name a colour.\n", "Translate to French.\n"]
    assert data.completions == ["5", "Red", "Bonjour"] and list(data.extra.columns) == []
    no_input = _jsonl(tmp_path / "alpaca.jsonl", [{"Instruction": "Say yes.", "Output": "Yes"}])
    assert load_completions(no_input).prompts == ["Say yes.\n"]  # detected whatever the case, input optional


def test_question_answer_from_parquet_and_given_columns(tmp_path):
    import pandas as pd

    path = tmp_path / "qa.parquet"
    pd.DataFrame({"id": [7, 3], "question": ["How many?", "Why?"], "answer": ["#### 2,000", "Because."],
                  "q": ["a", "b"], "a": ["c", "d"]}).to_parquet(path)
    data = load_completions(path, id_column="id")
    assert data.format == "question-answer" and data.example_ids.tolist() == [7, 3]
    assert data.answers == ["2000", None] and list(data.extra.columns) == ["q", "a"]
    given = load_completions(path, prompt_column="q", completion_column="a", limit=1)
    assert given.format == "prompt-completion" and given.columns == ("q", "a")
    assert given.prompts == ["a\n"] and given.completions == ["c"] and len(given) == 1
    assert load_completions(path, completion_column="a").columns == ("question", "a")  # the other one detected


def test_chat_conversations_render_so_that_prompt_and_completion_make_the_whole(tmp_path, gpt2_like):
    import pandas as pd

    gpt2_like.chat_template = CHATML
    rows = [{"messages": CHAT}, {"messages": [{"role": "user", "content": "Hi"},
                                              {"role": "assistant", "content": "Hello!"}]}]
    data = load_completions(_jsonl(tmp_path / "chat.jsonl", rows), tokenizer=gpt2_like)
    assert data.format == "chat" and data.columns == ("messages",)
    for row, prompt, completion in zip(rows, data.prompts, data.completions):
        assert prompt == gpt2_like.apply_chat_template(row["messages"][:-1], tokenize=False,
                                                       add_generation_prompt=True)
        assert prompt + completion == gpt2_like.apply_chat_template(row["messages"], tokenize=False)
    assert data.prompts[0].endswith("<|im_start|>assistant\n")
    assert data.completions == ["6 * 3 = 18\n#### 18<|im_end|>\n", "Hello!<|im_end|>\n"]
    assert data.answers == ["18", None]  # read from the assistant's message, not the rendering
    csv_path = tmp_path / "chat.csv"  # a JSON list in a CSV cell, under a given column name
    pd.DataFrame({"conversation": [json.dumps(CHAT)], "source": ["mine"]}).to_csv(csv_path, index=False)
    from_csv = load_completions(csv_path, messages_column="conversation", tokenizer=gpt2_like)
    assert from_csv.prompts == data.prompts[:1] and from_csv.extra.source.tolist() == ["mine"]


def test_conversational_prompt_completion_pairs_are_one_conversation(tmp_path, gpt2_like):
    gpt2_like.chat_template = CHATML
    path = _jsonl(tmp_path / "trl.jsonl", [{"prompt": CHAT[:2], "completion": CHAT[2:]}])
    data = load_completions(path, tokenizer=gpt2_like)
    assert data.format == "chat" and data.columns == ("prompt", "completion")
    assert data.prompts[0] + data.completions[0] == gpt2_like.apply_chat_template(CHAT, tokenize=False)
    mixed = _jsonl(tmp_path / "mixed.jsonl", [{"prompt": CHAT[:2], "completion": "18"}])
    with pytest.raises(DataError, match=r"column 'completion' of data row 1 is not a list of messages"):
        load_completions(mixed, tokenizer=gpt2_like)


def test_numbers_in_text_columns_are_text(tmp_path):
    path = tmp_path / "numbers.csv"
    path.write_text("question,answer\nWhat is 2+2?,4\nWhat is 3+3?,6\n")  # the reader makes `answer` integers
    assert load_completions(path).completions == ["4", "6"]


def test_chat_conversations_from_a_datasets_folder(tmp_path, minilm):
    from datasets import Dataset

    minilm.chat_template = CHATML
    Dataset.from_list([{"messages": CHAT}]).save_to_disk(str(tmp_path / "chat"))
    data = load_completions(tmp_path / "chat", tokenizer=minilm)
    assert data.completions == ["6 * 3 = 18\n#### 18<|im_end|>\n"] and data.answers == ["18"]


# -- refusals -----------------------------------------------------------------------------------------------------


def test_bad_files_and_columns_get_one_clear_message(tmp_path):
    pairs = _jsonl(tmp_path / "pairs.jsonl", [{"question": "Q?", "answr": "A"}])
    with pytest.raises(DataError, match=r"Cannot tell which columns of pairs.jsonl hold the prompt and the "
                                        r"completion; its columns are \['question', 'answr'\].*`completion_column`"):
        load_completions(pairs)
    with pytest.raises(DataError, match=r"has no column 'answer'. Did you mean 'answr'\? Its columns are "
                                        r"\['question', 'answr'\]; fix `completion_column`"):
        load_completions(pairs, completion_column="answer")
    with pytest.raises(DataError, match=r"has no column 'msgs'.*fix `messages_column`"):
        load_completions(pairs, messages_column="msgs")
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    with pytest.raises(DataError, match=r"empty.jsonl is empty \(0 bytes\)"):
        load_completions(empty)
    header = tmp_path / "header.csv"
    header.write_text("prompt,completion\n")
    with pytest.raises(DataError, match=r"header.csv contains no rows"):
        load_completions(header)
    latin = tmp_path / "latin.jsonl"
    latin.write_bytes(b'{"prompt": "caf\xe9", "completion": "yes"}\n')
    with pytest.raises(DataError, match=r"not valid utf-8: byte 0xE9 .* pass encoding='latin-1'"):
        load_completions(latin)
    assert load_completions(latin, encoding="latin-1").prompts == ["caf\u00e9\n"]
    with pytest.raises(DataError, match=r"`limit` must be at least 1"):
        load_completions(pairs, limit=0)


def test_empty_prompts_and_completions_are_refused_with_their_rows(tmp_path):
    path = _jsonl(tmp_path / "gaps.jsonl", [{"prompt": "a", "completion": "b"}, {"prompt": "c", "completion": "  "},
                                            {"prompt": "d", "completion": None}])
    with pytest.raises(DataError, match=r"gaps.jsonl: column 'completion' has no completion text in data rows \[2, 3\]. "
                                        r"Every example needs a non-empty completion; fill or drop those rows."):
        load_completions(path)
    path = _jsonl(tmp_path / "gaps.jsonl", [{"prompt": "a", "completion": "b"}, {"prompt": "", "completion": "e"}])
    with pytest.raises(DataError, match=r"column 'prompt' has no prompt text in data rows \[2\]"):
        load_completions(path)


@pytest.mark.parametrize(("messages", "message"), [
    ("just text", r"data row 1 is not a list of messages with a string role and content \(a str: 'just text'\)"),
    ([["user", "hi"]], r"not a list of messages .*a list holding list"),
    ([{"role": "user", "text": "hi"}], r"not a list of messages .*messages with keys \['role', 'text'\]"),
    ([], r"not a list of messages .*an empty list"),
    ([{"role": "user", "content": "hi"}], r"ends with a 'user' message after 0 other\(s\)"),
    ([{"role": "assistant", "content": "hi"}, {"role": "user", "content": "?"}], r"ends with a 'user' message"),
    ([{"role": "user", "content": "hi"}, {"role": "assistant", "content": " "}], r"last message in data row 1 is empty"),
])
def test_bad_conversations_say_what_a_conversation_must_be(tmp_path, gpt2_like, messages, message):
    gpt2_like.chat_template = CHATML
    path = _jsonl(tmp_path / "chat.jsonl", [{"messages": messages}])
    with pytest.raises(DataError, match=message):
        load_completions(path, tokenizer=gpt2_like)


def test_chat_data_needs_a_tokenizer_with_a_chat_template(tmp_path, gpt2_like):
    path = _jsonl(tmp_path / "chat.jsonl", [{"messages": CHAT}])
    with pytest.raises(DataError, match=r"rendered with a tokenizer's chat template; pass `tokenizer`"):
        load_completions(path)
    plain = _bpe()
    with pytest.raises(ModelError, match=r"has no chat template.*set tokenizer.chat_template"):
        load_completions(path, tokenizer=plain)
    plain.chat_template = "{% for m in messages %}{{ m['content'] }}{% endfor %}{% if add_generation_prompt %}" \
                          "A:{% endif %}"  # the generation prompt is not where the reply goes
    with pytest.raises(ModelError, match=r"does not start with its rendering of the prompt"):
        load_completions(path, tokenizer=plain)


def test_a_template_that_refuses_a_conversation_is_reported_with_the_row(tmp_path, gpt2_like):
    strict = _bpe()
    strict.chat_template = "{% if messages[0]['role'] != 'user' %}{{ raise_exception('Conversations must start " \
                           "with the user') }}{% endif %}" + CHATML
    path = _jsonl(tmp_path / "chat.jsonl", [{"messages": CHAT[1:]}, {"messages": CHAT}])
    with pytest.raises(DataError, match=r"data row 2: the tokenizer's chat template refused the conversation: "
                                        r"Conversations must start with the user"):
        load_completions(path, tokenizer=strict)


# -- encoding -----------------------------------------------------------------------------------------------------


def _pairs(tmp_path, rows, **options):
    return load_completions(_jsonl(tmp_path / "pairs.jsonl", [{"prompt": p, "completion": c} for p, c in rows]),
                            **options)


def test_labels_are_ignored_on_the_prompt_and_the_token_ids_on_the_completion(tmp_path, gpt2_like):
    data = _pairs(tmp_path, [("How many clips did Natalia sell?", "Natalia sold 72 clips.\n#### 72"),
                             ("The sky is", " blue.")])
    encoded = encode_completions(gpt2_like, data, max_length=64)
    assert encoded.eos_added and not encoded.truncated.any()
    for i, (ids, labels, p) in enumerate(zip(encoded.input_ids, encoded.labels, encoded.prompt_lengths)):
        assert ids[:p] == gpt2_like(data.prompts[i])["input_ids"]  # the prompt as the model gets it to generate
        assert labels[:p] == [IGNORED] * p and labels[p:] == ids[p:]
        assert ids[-1] == gpt2_like.eos_token_id and gpt2_like.decode(ids[p:-1]) == data.completions[i]
        assert gpt2_like.decode(ids) == data.prompts[i] + data.completions[i] + "<|endoftext|>"
    assert encoded.n_tokens_full.tolist() == [len(ids) for ids in encoded.input_ids]
    assert encoded.completion_lengths.tolist() == [len(ids) - p for ids, p in
                                                   zip(encoded.input_ids, encoded.prompt_lengths)]


def test_a_wordpiece_tokenizer_keeps_its_cls_first_and_has_no_eos_to_add(tmp_path, minilm):
    data = _pairs(tmp_path, [("What is 6 times 3?", "6 * 3 = 18")])
    encoded = encode_completions(minilm, data, max_length=32)
    ids, p = encoded.input_ids[0], int(encoded.prompt_lengths[0])
    assert not encoded.eos_added and ids[0] == minilm.cls_token_id and minilm.sep_token_id not in ids
    assert minilm.decode(ids[1:p]) == "what is 6 times 3?" and minilm.decode(ids[p:]) == "6 * 3 = 18"


def test_a_prompt_whose_tokens_merge_with_the_completion_keeps_its_own_tokens(tmp_path, gpt2_like):
    data = _pairs(tmp_path, [("The sky is ", "blue.")])  # alone, the prompt ends in a space token
    encoded = encode_completions(gpt2_like, data, max_length=64)
    ids, p = encoded.input_ids[0], int(encoded.prompt_lengths[0])
    assert ids[:p] == gpt2_like("The sky is ")["input_ids"]
    assert ids[p:] == gpt2_like("blue.")["input_ids"] + [gpt2_like.eos_token_id]


def test_chat_completions_end_with_the_template_s_end_of_turn_and_no_eos(tmp_path, gpt2_like):
    gpt2_like.chat_template = CHATML
    data = load_completions(_jsonl(tmp_path / "chat.jsonl", [{"messages": CHAT}]), tokenizer=gpt2_like)
    encoded = encode_completions(gpt2_like, data, max_length=128)
    ids, p = encoded.input_ids[0], int(encoded.prompt_lengths[0])
    assert not encoded.eos_added and gpt2_like.eos_token_id not in ids
    assert gpt2_like.decode(ids[:p]) == data.prompts[0] and gpt2_like.decode(ids[p:]) == data.completions[0]
    assert gpt2_like.convert_ids_to_tokens(ids[p:])[-2] == "<|im_end|>"  # special tokens parsed, not spelled out


def test_a_chat_template_s_own_bos_is_kept_when_the_prompt_is_cut(tmp_path, llama_like):
    llama_like.chat_template = "{{ bos_token }}" + CHATML
    data = load_completions(_jsonl(tmp_path / "chat.jsonl", [{"messages": CHAT}]), tokenizer=llama_like)
    full = encode_completions(llama_like, data, max_length=512)
    assert full.input_ids[0][0] == llama_like.bos_token_id and full.input_ids[0].count(llama_like.bos_token_id) == 1
    n_completion = int(full.completion_lengths[0])
    cut = encode_completions(llama_like, data, max_length=n_completion + 3)
    assert cut.input_ids[0] == full.input_ids[0][:1] + full.input_ids[0][-(n_completion + 2):]
    assert cut.prompt_tokens_cut.tolist() == [int(full.prompt_lengths[0]) - 3]


def test_long_examples_lose_the_completion_tail_then_the_prompt_start_and_say_so(tmp_path, llama_like):
    prompt, completion = "How many clips did Natalia sell altogether in April and May?", "Natalia sold 72 clips."
    data = _pairs(tmp_path, [(prompt, completion)])
    full = encode_completions(llama_like, data, max_length=512)
    p_ids, c_ids = full.input_ids[0][:full.prompt_lengths[0]], full.input_ids[0][full.prompt_lengths[0]:]
    assert p_ids[0] == llama_like.bos_token_id and len(p_ids) > 8 and len(c_ids) > 4
    n = len(p_ids) + len(c_ids)
    assert full.n_tokens_full.tolist() == [n] and not full.truncated.any()

    def cut(**limits):
        encoded = encode_completions(llama_like, data, **limits)
        assert encoded.n_tokens_full.tolist() == [n]
        assert (encoded.prompt_tokens_cut + encoded.completion_tokens_cut).tolist() == [n - len(encoded.input_ids[0])]
        p = int(encoded.prompt_lengths[0])
        return encoded, encoded.input_ids[0][:p], encoded.input_ids[0][p:], encoded.labels[0]

    encoded, prompt_ids, completion_ids, labels = cut(max_length=512, max_completion_tokens=3)  # completion first
    assert prompt_ids == p_ids and completion_ids == c_ids[:3] and encoded.completion_tokens_cut.tolist() == [
        len(c_ids) - 3] and encoded.truncated.tolist() == [True] and labels[-3:] == c_ids[:3]
    encoded, prompt_ids, completion_ids, _ = cut(max_length=len(c_ids) + 4)  # then the prompt's start, BOS kept
    assert completion_ids == c_ids and prompt_ids == [p_ids[0]] + p_ids[-3:]
    assert encoded.prompt_tokens_cut.tolist() == [len(p_ids) - 4] and encoded.completion_tokens_cut.tolist() == [0]
    encoded, prompt_ids, completion_ids, _ = cut(max_length=6, max_completion_tokens=4)  # both
    assert prompt_ids == [p_ids[0], p_ids[-1]] and completion_ids == c_ids[:4]
    encoded, prompt_ids, completion_ids, labels = cut(max_length=3)  # the completion alone is too long
    assert prompt_ids == [p_ids[0]] and completion_ids == c_ids[:2] and labels == [IGNORED] + c_ids[:2]
    assert cut(max_length=2)[2] == c_ids[:1]  # never fewer than one completion token
    with pytest.raises(DataError, match=r"`max_length` must leave room for a prompt token and a completion token: "
                                        r"at least 2, not 1"):
        encode_completions(llama_like, data, max_length=1)
    with pytest.raises(DataError, match=r"`max_completion_tokens` must be at least 1, not 0"):
        encode_completions(llama_like, data, max_length=8, max_completion_tokens=0)


def test_without_a_bos_the_prompt_keeps_at_least_its_last_token(tmp_path, gpt2_like):
    data = _pairs(tmp_path, [("How many clips?", "Natalia sold 72 clips.")])
    full = encode_completions(gpt2_like, data, max_length=512)
    last_prompt_token = full.input_ids[0][full.prompt_lengths[0] - 1]
    encoded = encode_completions(gpt2_like, data, max_length=2)
    assert encoded.input_ids[0] == [last_prompt_token, full.input_ids[0][full.prompt_lengths[0]]]
    assert encoded.labels[0][0] == IGNORED and encoded.truncated.tolist() == [True]


def test_the_causal_lm_loss_on_these_labels_is_the_completion_tokens_mean_loss(tmp_path, gpt2_like):
    """The labels line up with the inputs; the model shifts them: completion token t is scored by the logits at t-1."""
    data = _pairs(tmp_path, [("How many clips?", "Natalia sold 72 clips."), ("The sky is", " blue.")])
    encoded = encode_completions(gpt2_like, data, max_length=64)
    batch = collate_completions(encoded, gpt2_like.pad_token_id)
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(gpt2_like), hidden_size=16, intermediate_size=32,
                                         num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1)).eval()
    with torch.no_grad():
        output = model(**batch)
    log_probs = torch.log_softmax(output.logits, dim=-1)  # (B, T, V)
    losses = []
    for row, (ids, p) in enumerate(zip(encoded.input_ids, encoded.prompt_lengths)):
        losses += [-log_probs[row, t - 1, ids[t]] for t in range(int(p), len(ids))]
    assert output.loss.item() == pytest.approx(torch.stack(losses).mean().item(), rel=1e-5)


def test_batches_are_right_padded_with_ignored_labels(tmp_path, minilm):
    data = _pairs(tmp_path, [("Short?", "yes"), ("A much longer prompt than the first one?", "no it is not")],
                  id_column=None)
    encoded = encode_completions(minilm, data, max_length=64)
    batch = collate_completions(encoded, minilm.pad_token_id)
    lengths = [len(ids) for ids in encoded.input_ids]
    assert batch["input_ids"].shape == batch["labels"].shape == (2, max(lengths))
    assert batch["attention_mask"].sum(1).tolist() == lengths
    assert batch["input_ids"][0, lengths[0]:].eq(minilm.pad_token_id).all()
    assert batch["labels"][0].tolist() == encoded.labels[0] + [IGNORED] * (max(lengths) - lengths[0])
    one = encoded[[1]]
    assert one.example_ids.tolist() == [1] and one.input_ids == encoded.input_ids[1:]
    assert collate_completions(one, None)["input_ids"].tolist() == [encoded.input_ids[1]]
    assert encoded[:1].prompt_lengths.tolist() == encoded.prompt_lengths[:1].tolist() and len(encoded[:1]) == 1


@pytest.mark.slow
def test_gsm8k_encodes_with_minilm_and_the_cut_examples_are_flagged(minilm):
    data = load_completions(shared_file("gsm8k_test.jsonl"), limit=200)
    encoded = encode_completions(minilm, data, max_length=96, max_completion_tokens=64)
    lengths = np.array([len(ids) for ids in encoded.input_ids])
    assert lengths.max() <= 96 and (encoded.completion_lengths >= 1).all() and (encoded.completion_lengths <= 64).all()
    assert np.array_equal(encoded.truncated, encoded.n_tokens_full > lengths) and encoded.truncated.any()
    assert np.array_equal(encoded.prompt_tokens_cut + encoded.completion_tokens_cut, encoded.n_tokens_full - lengths)
    assert all(labels[:p] == [IGNORED] * p for labels, p in zip(encoded.labels, encoded.prompt_lengths))
