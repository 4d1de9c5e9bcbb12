"""The SageMaker inference handler, called the way the inference toolkit calls it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.support.training import chat_records, write_jsonl
from training_scripts import inference
from training_scripts.inference import InvalidRequest


@pytest.fixture(scope="session")
def trained(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A fully fine-tuned tiny model that learned the test answers, and a LoRA run with merge.

    Built once per test session, also under pytest-xdist: the workers share the directory
    above their own temporary roots, and a file lock lets the first one build it.
    """
    from filelock import FileLock

    from training_scripts.train import main

    root = tmp_path_factory.getbasetemp().parent / "training-inference-models"
    full, lora, adapter_only = root / "full", root / "lora", root / "adapter-only"
    root.mkdir(parents=True, exist_ok=True)
    with FileLock(str(root) + ".lock"):
        if not (root / "built").exists():
            train_file = write_jsonl(root / "train.jsonl", chat_records(48))
            common = ["--model_name_or_path", str(tiny_model), "--train_file", str(train_file)]
            full_run = [*common, "--output_dir", str(full), "--method", "full"]
            full_run += ["--max_steps", "60", "--learning_rate", "3e-3", "--max_seq_length", "64"]
            lora_run = [*common, "--output_dir", str(lora), "--max_steps", "4"]
            lora_run += ["--merge_adapter", "true", "--max_seq_length", "64"]
            assert main([*full_run, "--logging_steps", "20"]) == 0
            assert main(lora_run) == 0
            shutil.copytree(
                lora, adapter_only, ignore=shutil.ignore_patterns("merged", "checkpoints")
            )
            (root / "built").touch()
    return {"full": full, "lora": lora, "adapter_only": adapter_only}


def request(model: dict, body: dict) -> dict:
    data = inference.input_fn(json.dumps(body), "application/json")
    return json.loads(inference.output_fn(inference.predict_fn(data, model), "application/json"))


def test_a_fine_tuned_model_answers_in_its_trained_format_and_stops(trained) -> None:
    model = inference.model_fn(str(trained["full"]))
    reply = request(model, {"messages": [{"role": "user", "content": "What colour is the sky?"}]})
    # The chat template and the trained end-of-turn token are the ones inference uses.
    assert reply["generated_text"] == "The answer is blue."
    assert reply["finish_reason"] == "stop"
    assert reply["usage"]["completion_tokens"] < 20 and reply["usage"]["prompt_tokens"] > 5


def test_merged_model_and_adapter_on_base_give_the_same_answer(trained, tiny_model: Path) -> None:
    merged = inference.model_fn(str(trained["lora"]))
    assert type(merged["model"]).__name__ == "LlamaForCausalLM"
    adapter = inference.model_fn(str(trained["adapter_only"]))
    assert type(adapter["model"]).__name__.startswith("Peft")
    body = {"inputs": "What is 2 plus 2?", "parameters": {"max_new_tokens": 6}}
    assert request(merged, body)["generated_text"] == request(adapter, body)["generated_text"]


def test_prompts_batches_and_generation_parameters(trained) -> None:
    model = inference.model_fn(str(trained["full"]))
    single = request(model, {"inputs": "Say yes.", "parameters": {"max_new_tokens": 3}})
    assert single["usage"]["completion_tokens"] <= 3
    batch = request(
        model,
        {
            "inputs": ["Say yes.", "What colour is grass? Say it twice, please."],
            "parameters": {"max_new_tokens": 4, "temperature": 0.7, "top_p": 0.9, "top_k": 5},
        },
    )
    assert isinstance(batch, list) and len(batch) == 2
    assert all(r["usage"]["completion_tokens"] <= 4 for r in batch)
    as_inputs = request(model, {"inputs": [{"role": "user", "content": "What colour is the sky?"}]})
    assert as_inputs["generated_text"] == "The answer is blue."
    stopped = request(
        model,
        {
            "messages": [{"role": "user", "content": "What colour is the sky?"}],
            "parameters": {"stop": [" is"]},
        },
    )
    assert stopped == {**stopped, "generated_text": "The answer", "finish_reason": "stop"}
    text = inference.input_fn(b"Say yes.", "text/plain; charset=utf-8")
    assert text == {"inputs": "Say yes."}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, 'the request needs "messages", "inputs" or "prompt"'),
        ({"inputs": 3}, '"inputs" must be a string, a list of strings or a list of chat messages'),
        ({"messages": [{"content": "x"}]}, '"messages" must be a non-empty list'),
        ({"inputs": "x", "parameters": {"beams": 2}}, "unknown generation parameter(s) ['beams']"),
        ({"inputs": "x", "parameters": {"max_new_tokens": 0}}, "must be in [1, 4096], found 0"),
        ({"inputs": "x", "parameters": {"max_new_tokens": True}}, "must be a number"),
        ({"inputs": "x", "parameters": {"temperature": -1}}, "must be >= 0, found -1.0"),
        ({"inputs": "x", "parameters": {"stop": [""]}}, "list of non-empty strings"),
    ],
)
def test_bad_requests_say_which_field(trained, body: dict, message: str) -> None:
    model = inference.model_fn(str(trained["full"]))
    with pytest.raises(InvalidRequest) as caught:
        inference.predict_fn(body, model)
    assert message in str(caught.value)


def test_bad_bodies_and_media_types() -> None:
    with pytest.raises(InvalidRequest, match="not valid JSON"):
        inference.input_fn("{", "application/json")
    with pytest.raises(InvalidRequest, match="must be a JSON object"):
        inference.input_fn("[1]", "application/json")
    with pytest.raises(InvalidRequest, match="content type 'text/csv' is not supported"):
        inference.input_fn("a,b", "text/csv")
    with pytest.raises(InvalidRequest, match="accept type 'text/csv' is not supported"):
        inference.output_fn({}, "text/csv")


def test_a_directory_without_a_model_is_reported(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="holds no model"):
        inference.model_fn(str(tmp_path))
