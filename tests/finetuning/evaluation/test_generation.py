"""Batched local generation: the same tokens as one prompt at a time, stopping at the answer's end.

The model is a tiny random Llama whose output layer is rewired so that it ends its answer (emits
its EOS token) where it would otherwise have said a chosen token: rows of one batch then stop at
different steps, some not at all, which is what padding, masks and stop handling must survive.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from finetuning.evaluation import generation
from finetuning.evaluation.generation import (
    DEFAULT_BATCH_SIZE,
    chat_messages,
    end_of_turn_id,
    generate_batch,
    left_pad,
    prompt_ids,
    sampling_options,
    stop_token_ids,
)
from finetuning.evaluation.samples import EvaluationSample, TextPart, Turn
from finetuning.evaluation.targets import InferenceParameters, LocalModelTarget

# Prompts of different lengths, so the batch is padded (on the left) by different amounts.
QUESTIONS = [
    "Say hello.",
    "Classify the document: invoice, letter or memo? Answer with one word.",
    "what is 12 plus 30?",
    "The quick brown fox jumps over the lazy dog. The quick brown fox jumps again.",
    "hi",
    "Question: what is 12 plus 30? Answer briefly and correctly, please.",
]
MAX_NEW = 12


@pytest.fixture(autouse=True)
def one_torch_thread():
    """One intra-op thread: the suite runs on two xdist workers sharing two cores."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _messages(question: str) -> list[dict[str, str]]:
    return chat_messages(None, [("user", question)])


def _one_at_a_time(model, tokenizer, prompts, stop_ids, max_new=MAX_NEW):
    options = sampling_options(max_new, None, None, None)
    return [generate_batch(model, tokenizer, [p], options, stop_ids)[0] for p in prompts]


@pytest.fixture(scope="module")
def stopping_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Llama that says EOS where it used to say one token, saved as a model folder.

    The token is chosen so that, one prompt at a time, the answers stop at two or more
    different steps and at least one answer runs to ``MAX_NEW`` tokens.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from finetuning.testing import make_tiny_llama

    folder = make_tiny_llama(tmp_path_factory.mktemp("stopping") / "model", seed=3)
    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    eos = tokenizer.eos_token_id
    prompts = [prompt_ids(tokenizer, _messages(q)) for q in QUESTIONS]
    answers = _one_at_a_time(model, tokenizer, prompts, [eos])
    chosen = None
    candidates = sorted({t for a in answers for t in a.token_ids[1:]})
    for token in candidates:
        firsts = {a.token_ids.index(token) if token in a.token_ids else None for a in answers}
        if None in firsts and len(firsts - {None}) >= 2 and 0 not in firsts:
            chosen = token
            break
    assert chosen is not None, "no token splits the answers into early and late stops"
    with torch.no_grad():
        head = model.lm_head.weight
        head[[eos, chosen]] = head[[chosen, eos]].clone()
    model.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def loaded(stopping_model: Path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(stopping_model).eval()
    tokenizer = AutoTokenizer.from_pretrained(stopping_model)
    return model, tokenizer


def test_batched_greedy_answers_equal_one_prompt_at_a_time_token_for_token(loaded):
    model, tokenizer = loaded
    stop_ids = stop_token_ids(model, tokenizer)
    prompts = [prompt_ids(tokenizer, _messages(q)) for q in QUESTIONS]
    assert len({len(p) for p in prompts}) >= 4  # rows padded by different amounts

    single = _one_at_a_time(model, tokenizer, prompts, stop_ids)
    options = sampling_options(MAX_NEW, None, None, None)
    batched = generate_batch(model, tokenizer, prompts, options, stop_ids)
    assert [a.token_ids for a in batched] == [a.token_ids for a in single]
    assert batched == single  # text, counts and stop flags too

    # the rewired model stops some answers early (at different steps) and not others
    stopped = [a for a in single if a.stopped]
    assert len({a.output_tokens for a in stopped}) >= 2 and len(stopped) < len(single)
    assert all(a.output_tokens == MAX_NEW for a in single if not a.stopped)


def test_an_answer_ends_at_its_first_stop_token_and_padding_is_cut_off(loaded):
    model, tokenizer = loaded
    eos = tokenizer.eos_token_id
    stop_ids = stop_token_ids(model, tokenizer)
    prompts = [prompt_ids(tokenizer, _messages(q)) for q in QUESTIONS]
    options = sampling_options(MAX_NEW, None, None, None)
    for answer, prompt in zip(
        generate_batch(model, tokenizer, prompts, options, stop_ids), prompts, strict=True
    ):
        assert answer.input_tokens == len(prompt)
        if answer.stopped:
            # the stop token is counted (as the model generated it) but not shown
            assert answer.token_ids[-1] == eos and eos not in answer.token_ids[:-1]
            assert answer.text == tokenizer.decode(answer.token_ids[:-1]).strip()
        else:
            assert eos not in answer.token_ids and answer.output_tokens == MAX_NEW
        assert tokenizer.pad_token_id not in answer.token_ids


def test_stop_tokens_are_the_models_eos_the_tokenizers_and_the_chat_end_of_turn(loaded):
    model, tokenizer = loaded
    end = tokenizer.convert_tokens_to_ids("<|end|>")
    # the tiny model's EOS is its chat template's end of turn
    assert end_of_turn_id(tokenizer) == end
    assert stop_token_ids(model, tokenizer) == [end]

    # a model whose EOS is another token (Llama 3: <|end_of_text|> vs <|eot_id|>) still stops
    # at the end of its turn
    bos = tokenizer.bos_token_id
    model.generation_config.eos_token_id = [bos]
    try:
        assert stop_token_ids(model, tokenizer) == [bos, end]
    finally:
        model.generation_config.eos_token_id = end

    # no chat template: no end of turn; only the EOS ids
    template = tokenizer.chat_template
    tokenizer.chat_template = None
    try:
        assert end_of_turn_id(tokenizer) is None
        assert (
            prompt_ids(tokenizer, _messages("hi"))
            == tokenizer("user: hi\n\nassistant:")["input_ids"]
        )
    finally:
        tokenizer.chat_template = template


def test_padding_id_falls_back_to_a_stop_token_then_zero():
    from types import SimpleNamespace

    from finetuning.evaluation.generation import pad_token_id

    model = SimpleNamespace(generation_config=SimpleNamespace(pad_token_id=None))
    assert pad_token_id(model, SimpleNamespace(pad_token_id=7), [2]) == 7
    assert pad_token_id(model, SimpleNamespace(pad_token_id=None), [2, 3]) == 2
    assert pad_token_id(model, SimpleNamespace(pad_token_id=None), []) == 0
    model.generation_config.pad_token_id = 5
    assert pad_token_id(model, SimpleNamespace(pad_token_id=None), [2]) == 5


def test_left_padding_masks_the_pad_columns():
    input_ids, mask = left_pad([[5, 6, 7], [8]], pad_id=0)
    assert input_ids.tolist() == [[5, 6, 7], [0, 0, 8]]
    assert mask.tolist() == [[1, 1, 1], [0, 0, 1]]


def test_sampling_options_are_greedy_unless_a_temperature_asks_to_sample():
    assert sampling_options(5, None, 0.9, 40) == {"max_new_tokens": 5, "do_sample": False}
    assert sampling_options(5, 0.0, None, None)["do_sample"] is False
    assert sampling_options(5, 0.7, 0.9, 40) == {
        "max_new_tokens": 5,
        "do_sample": True,
        "temperature": 0.7,
        "top_p": 0.9,
        "top_k": 40,
    }


def test_local_target_batches_like_lengths_and_equals_per_sample_answers(stopping_model):
    target = LocalModelTarget(stopping_model, device="cpu")
    samples = [
        EvaluationSample(f"s{i}", (Turn("user", (TextPart(q),)),)) for i, q in enumerate(QUESTIONS)
    ]
    params = InferenceParameters(max_tokens=MAX_NEW)
    batches = target.plan_batches(samples, 4)
    assert [len(b) for b in batches] == [4, 2]
    lengths = [len(target._prompt(s)) for b in batches for s in b]
    assert lengths == sorted(lengths, reverse=True)  # longest first, like lengths together

    batched = target.generate_batch(samples, params)
    single = [target.generate(s, params) for s in samples]
    assert [(g.text, g.output_tokens, g.stop_reason) for g in batched] == [
        (g.text, g.output_tokens, g.stop_reason) for g in single
    ]
    assert {g.stop_reason for g in batched} == {"end_turn", "max_tokens"}


def test_default_batch_size_is_pinned():
    from finetuning.evaluation.request import EvaluationStepRequest
    from finetuning.evaluation.runner import RunOptions

    assert DEFAULT_BATCH_SIZE == 16
    assert RunOptions().batch_size == 16
    assert generation.DEFAULT_BATCH_SIZE is DEFAULT_BATCH_SIZE
    request = EvaluationStepRequest.from_event(
        {"job_name": "j", "model_id": "m", "test_set_uri": "s3://bucket/test.jsonl"}
    )
    assert request.batch_size == 16
