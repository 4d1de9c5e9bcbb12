"""Evaluating local model folders: a tiny random Llama run through transformers on CPU."""

from __future__ import annotations

import json

import pytest
from transformers import AutoTokenizer

from finetuning.cli import main
from finetuning.evaluation.samples import EvaluationSample, ImagePart, TextPart, Turn
from finetuning.evaluation.targets import InferenceParameters, LocalModelTarget, TargetError
from finetuning.testing import make_tiny_llama

RECORDS = [
    {
        "messages": [
            {"role": "system", "content": "Answer with one word."},
            {"role": "user", "content": "Classify the document: invoice or letter?"},
            {"role": "assistant", "content": "invoice"},
        ]
    },
    {"prompt": "Question: what is 12 plus 30? Answer:", "completion": "42"},
    {
        "messages": [
            {"role": "user", "content": "Say hello."},
            {"role": "assistant", "content": "hello"},
        ]
    },
]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    return make_tiny_llama(root / "tuned", seed=0), make_tiny_llama(root / "base", seed=1)


def test_compare_two_local_models(models, tmp_path, capsys):
    tuned, base = models
    test_set = tmp_path / "test.jsonl"
    test_set.write_text("\n".join(json.dumps(r) for r in RECORDS) + "\n")
    out = tmp_path / "local.json"
    args = [
        "evaluate",
        "--local-model",
        str(tuned),
        "--test-set",
        str(test_set),
        "--compare-with-base",
        "--base-model-path",
        str(base),
        "--max-tokens",
        "6",
        "--task",
        "text",
        "--output-file",
        str(out),
        "--no-progress",
        "--device",
        "cpu",
    ]
    assert main(args) == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    data = json.loads(out.read_text())
    # the tuned and the base model were each answered in one batch (3 samples, default 16)
    for entry in data["models"].values():
        assert entry["metrics"]["batch_size"] == 3
        assert entry["metrics"]["samples_per_second"] > 0
        assert entry["metrics"]["generation_seconds"] > 0
    assert printed.count(" samples/s (batch size 3)") == 2, printed
    assert data["target_type"] == "local"
    assert data["models"]["Base Model"]["model_id"] == str(base)
    results = data["results"]
    assert [r["status"] for r in results] == ["success"] * 3
    assert [r["ground_truth"] for r in results] == ["invoice", "42", "hello"]

    # token counts are the model's own: prompt through the chat template, new tokens <= max
    tokenizer = AutoTokenizer.from_pretrained(tuned)
    prompt = tokenizer.apply_chat_template(
        [
            {"role": "system", "content": "Answer with one word."},
            {"role": "user", "content": "Classify the document: invoice or letter?"},
        ],
        add_generation_prompt=True,
        tokenize=True,
        return_dict=True,
    )["input_ids"]
    assert results[0]["input_tokens"] == len(prompt)
    assert all(1 <= r["output_tokens"] <= 6 for r in results)
    metrics = data["metrics"]
    assert metrics["success_rate"] == 1.0
    assert metrics["task"] == "text"
    assert 0.0 <= metrics["token_f1"] <= 1.0
    assert metrics["estimated_cost_usd"] is None
    assert (tmp_path / "local-report" / "report.html").is_file()
    report = (tmp_path / "local-report" / "report.md").read_text()
    assert "| Samples per second |" in report and "| Batch size | 3 | 3 |" in report

    # greedy decoding is deterministic, and one prompt at a time answers as a batch does
    assert main([*args, "--restart", "--no-report", "--batch-size", "1", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["metrics"]["batch_size"] == 1
    assert summary["metrics"]["samples_per_second"] > 0
    again = json.loads(out.read_text())["results"]
    assert [r["response_text"] for r in again] == [r["response_text"] for r in results]

    # a resumed run answers nothing new, so it has no rate to show
    assert main([*args, "--no-report"]) == 0
    assert "samples/s" not in capsys.readouterr().out
    assert json.loads(out.read_text())["metrics"]["samples_per_second"] is None


def test_batch_size_flag(capsys):
    from finetuning.cli import build_parser

    args = build_parser().parse_args(["evaluate", "--local-model", "m", "--test-set", "t"])
    assert args.batch_size == 16
    with pytest.raises(SystemExit):
        main(["evaluate", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "--batch-size BATCH_SIZE local models: prompts answered together" in help_text
    assert "(default 16; 1 answers one at a time)" in help_text
    code = main(["evaluate", "--local-model", "m", "--test-set", "t", "--batch-size", "0"])
    assert code == 2
    assert "--batch-size: expected an integer >= 1, got 0" in capsys.readouterr().err


def test_local_models_refuse_images_and_non_model_folders(models, tmp_path):
    tuned, _ = models
    target = LocalModelTarget(tuned)
    with pytest.raises(TargetError, match="local evaluation runs text models only"):
        target.validate(InferenceParameters(), has_images=True)
    with pytest.raises(TargetError, match="not a model folder"):
        LocalModelTarget(tmp_path)
    with pytest.raises(TargetError, match="is not a directory"):
        LocalModelTarget(tmp_path / "missing")


def test_sampling_parameters_reach_generate(models):
    tuned, _ = models
    target = LocalModelTarget(tuned, device="cpu")
    sample = EvaluationSample("s", (Turn("user", (TextPart("Say hello."),)),))
    params = InferenceParameters(max_tokens=3, temperature=0.7, top_p=0.9, top_k=5)
    generation = target.generate(sample, params)
    assert 1 <= generation.output_tokens <= 3
    assert generation.stop_reason in ("end_turn", "max_tokens")
    # an image part anywhere makes the sample unusable locally
    image = EvaluationSample("i", (Turn("user", (ImagePart("png", data=b"x"),)),))
    assert image.has_images
