"""train.py end to end on a tiny Llama: loss falls, outputs load, bad input is refused."""

from __future__ import annotations

import csv
import hashlib
import json
import math
import re
from pathlib import Path

import pytest
import torch

from tests.support.training import chat_records, read_metric_lines, run_script, write_jsonl
from training_scripts.metric_definitions import METRIC_DEFINITIONS


def losses(stdout: str) -> list[float]:
    return [float(row["train_loss"]) for row in read_metric_lines(stdout, "metrics")]


def test_lora_run_learns_reports_and_writes_loadable_outputs(
    tiny_model: Path, tmp_path: Path, run_train
) -> None:
    train_file = write_jsonl(tmp_path / "data" / "train.jsonl", chat_records(64))
    out = tmp_path / "out"
    code, stdout, stderr = run_train(
        "--model_name_or_path", tiny_model, "--train_file", train_file, "--output_dir", out,
        "--method", "lora", "--max_steps", 30, "--learning_rate", 5e-3, "--logging_steps", 5,
        "--per_device_train_batch_size", 2, "--max_seq_length", 128, "--validation_split", 0.1,
        "--eval_steps", 15, "--save_steps", 15, "--merge_adapter", "true",
    )  # fmt: skip
    assert code == 0, stderr
    # Loss falls.
    train_losses = losses(stdout)
    assert len(train_losses) == 6
    assert train_losses[-1] < train_losses[0] - 0.3
    # One progress line per logging step, ending at the total.
    progress = re.findall(r"^progress: step=(\d+)/(\d+)$", stdout, flags=re.M)
    assert progress[0] == ("0", "30") and progress[-1] == ("30", "30")
    assert [int(s) for s, _ in progress[1:-1]] == [5, 10, 15, 20, 25, 30]
    # Every SageMaker metric definition finds its value in the log.
    for definition in METRIC_DEFINITIONS:
        assert re.search(definition["Regex"], stdout), definition["Name"]
    assert "data: train: 58 records -> 58 examples" in stdout
    # training_metrics.csv: one row per logging step, the agreed columns.
    with (out / "training_metrics.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["step", "epoch", "loss", "learning_rate", "tokens_per_second"]
    assert [int(r["step"]) for r in rows] == [5, 10, 15, 20, 25, 30]
    assert all(float(r["tokens_per_second"]) > 0 for r in rows)
    assert [float(r["loss"]) for r in rows] == pytest.approx(train_losses, rel=1e-5)
    # metrics.json
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["global_step"] == 30 and metrics["max_steps"] == 30
    assert metrics["eval_perplexity"] == pytest.approx(math.exp(metrics["eval_loss"]))
    assert metrics["train_loss"] == pytest.approx(train_losses[-1])
    assert metrics["train_tokens"] > 0 and metrics["train_tokens_per_second"] > 0
    assert metrics["train_examples"] == 58 and metrics["validation_examples"] == 6
    assert metrics["dropped_examples"] == 0 and metrics["stopped_early"] is False
    # training_config.json: arguments, data hashes, library versions.
    config = json.loads((out / "training_config.json").read_text())
    assert config["arguments"]["model"]["method"] == "lora"
    assert config["arguments"]["run"]["max_steps"] == 30
    digest = hashlib.sha256(train_file.read_bytes()).hexdigest()
    assert config["data"]["train"]["sha256"] == {str(train_file): digest}
    assert config["data"]["train"]["formats"] == {str(train_file): "messages"}
    # On CPU with SDPA: padding-free micro-batches of 2 examples, each attending to itself only.
    batching = config["resolved"]["batching"]
    assert batching["mode"] == "padding_free" and batching["variable_length_attention"] is True
    assert batching["requested"] == "auto" and batching["examples_per_micro_batch"] == 2
    assert config["resolved"]["training_attn_implementation"] == "sdpa_varlen"
    assert config["resolved"]["attn_implementation"] == "sdpa"
    assert "batching: padding_free, 2 examples per micro-batch in every mode; sdpa_varlen" in stdout
    assert "batching=padding_free" in stdout
    # Per-step progress lines (never more than one per step) with throughput and ETA.
    steps = re.findall(
        r"^step: (\d+)/30 \d+% .*tokens/s=\d+ elapsed=\S+(?: eta=\S+)?$", stdout, re.M
    )
    assert steps[0] == "1" and steps[-1] == "30" and len(steps) == len(set(steps))
    assert metrics["peak_rss_gib"] > 0
    # The saved model loads with the attention it was loaded with, not train.py's stand-in.
    assert "sdpa_varlen" not in (out / "adapter_config.json").read_text()
    for library in ("torch", "transformers", "peft", "accelerate"):
        assert config["versions"][library]
    # The adapter loads with peft, the merged model with plain transformers, and agree.
    from peft import AutoPeftModelForCausalLM
    from transformers import AutoModelForCausalLM, AutoTokenizer

    assert (out / "adapter_model.safetensors").is_file()
    assert (out / "merged" / "model.safetensors").is_file()
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert tokenizer.chat_template
    adapter = AutoPeftModelForCausalLM.from_pretrained(out).eval()
    merged = AutoModelForCausalLM.from_pretrained(out / "merged").eval()
    ids = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Say yes."}], add_generation_prompt=True, return_tensors="pt"
    )
    ids = ids["input_ids"] if not torch.is_tensor(ids) else ids
    with torch.no_grad():
        torch.testing.assert_close(
            adapter(input_ids=ids).logits, merged(input_ids=ids).logits, rtol=1e-3, atol=1e-3
        )


def test_full_fine_tuning_with_padding_learns_and_saves_a_plain_model(
    tiny_model_pad_is_eos: Path, tmp_path: Path, run_train
) -> None:
    train_file = write_jsonl(tmp_path / "train.jsonl", chat_records(48))
    out = tmp_path / "out"
    code, stdout, stderr = run_train(
        "--model_name_or_path", tiny_model_pad_is_eos, "--train_file", train_file,
        "--output_dir", out, "--method", "full", "--max_steps", 25, "--learning_rate", 3e-3,
        "--logging_steps", 5, "--packing", "false", "--per_device_train_batch_size", 4,
    )  # fmt: skip
    assert code == 0, stderr
    train_losses = losses(stdout)
    assert train_losses[-1] < train_losses[0] / 2
    assert "batching=padded" in stdout
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(out)
    assert model.config.use_cache is True
    assert not (out / "adapter_config.json").exists()
    config = json.loads((out / "training_config.json").read_text())
    assert config["resolved"]["batching"]["mode"] == "padded"


def test_every_data_format_trains_from_one_directory(
    tiny_model: Path, tmp_path: Path, run_train
) -> None:
    data = tmp_path / "data"
    write_jsonl(data / "a_messages.jsonl", chat_records(4))
    write_jsonl(
        data / "b_bedrock.jsonl",
        [
            {
                "schemaVersion": "bedrock-conversation-2024",
                "system": [{"text": "Be brief."}],
                "messages": [
                    {"role": "user", "content": [{"text": "Say yes."}]},
                    {"role": "assistant", "content": [{"text": "yes"}]},
                ],
            }
        ]
        * 4,
    )
    write_jsonl(
        data / "c_alpaca.jsonl",
        [{"instruction": "Say no.", "input": "", "output": "no"}] * 4,
    )
    write_jsonl(data / "d_prompt.jsonl", [{"prompt": "2 plus 2 is", "completion": " 4"}] * 4)
    out = tmp_path / "out"
    code, _, stderr = run_train(
        "--model_name_or_path", tiny_model, "--train_file", data, "--output_dir", out,
        "--max_steps", 3, "--logging_steps", 1,
    )  # fmt: skip
    assert code == 0, stderr
    config = json.loads((out / "training_config.json").read_text())
    assert sorted(config["data"]["train"]["formats"].values()) == [
        "alpaca",
        "bedrock-conversation-2024",
        "messages",
        "prompt-completion",
    ]
    assert config["data"]["train_tokenization"]["examples"] == 16


def test_a_finished_run_started_again_writes_its_outputs_without_training(
    tiny_model: Path, tmp_path: Path, run_train
) -> None:
    train_file = write_jsonl(tmp_path / "train.jsonl", chat_records(16))
    out = tmp_path / "out"
    argv = ["--model_name_or_path", tiny_model, "--train_file", train_file, "--output_dir", out]
    argv += ["--max_steps", 4, "--logging_steps", 2]
    code, _, stderr = run_train(*argv)
    assert code == 0, stderr
    code, second, stderr = run_train(*argv)
    assert code == 0, stderr
    assert "is the last step of a finished run" in second
    assert read_metric_lines(second, "metrics") == []  # no step was trained again
    assert json.loads((out / "metrics.json").read_text())["global_step"] == 4
    with (out / "training_metrics.csv").open() as handle:
        assert [int(r["step"]) for r in csv.DictReader(handle)] == [2, 4]


def test_early_stopping_keeps_the_best_checkpoint(tiny_model: Path, tmp_path: Path, run_train):
    train_file = write_jsonl(tmp_path / "train.jsonl", chat_records(40))
    out = tmp_path / "out"
    code, stdout, stderr = run_train(
        "--model_name_or_path", tiny_model, "--train_file", train_file, "--output_dir", out,
        "--method", "full", "--learning_rate", 5e-2, "--max_steps", 12, "--logging_steps", 2,
        "--validation_split", 0.2, "--eval_steps", 2, "--early_stopping_patience", 1,
    )  # fmt: skip
    assert code == 0, stderr
    evals = [float(row["eval_loss"]) for row in read_metric_lines(stdout, "eval")]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["best_checkpoint"]
    # The saved model is the best one seen, whether or not training stopped early.
    assert metrics["eval_loss"] == pytest.approx(min(evals[:-1]), rel=1e-4)


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("missing", "error: --train_file {tmp}/missing.jsonl: no such file or directory"),
        ("empty", "error: {tmp}/empty.jsonl: no records (the file is empty)"),
        ("unknown", "error: {tmp}/unknown.jsonl line 1: unknown data format: found"),
        ("no_assistant", "error: {tmp}/no_assistant.jsonl line 2: no assistant turn"),
        ("qlora_on_cpu", "error: --method qlora needs a CUDA GPU"),
        ("bad_model", "error: --model_name_or_path {tmp}/no-model: cannot load a tokenizer"),
        ("all_dropped", "error: --train_file {tmp}/long.jsonl: none of the 2 records has a"),
    ],
)
def test_bad_input_exits_2_with_one_error_line_and_writes_nothing(
    tiny_model: Path, tmp_path: Path, run_train, case: str, expected: str
) -> None:
    if case == "qlora_on_cpu" and torch.cuda.is_available():
        pytest.skip("this machine has a GPU, so QLoRA is allowed")
    good = write_jsonl(tmp_path / "good.jsonl", chat_records(4))
    (tmp_path / "empty.jsonl").write_text("")
    write_jsonl(tmp_path / "unknown.jsonl", [{"question": "q", "answer": "a"}])
    write_jsonl(
        tmp_path / "no_assistant.jsonl",
        [*chat_records(1), {"messages": [{"role": "user", "content": "hi"}]}],
    )
    write_jsonl(
        tmp_path / "long.jsonl",
        [
            {
                "messages": [
                    {"role": "user", "content": "word " * 200},
                    {"role": "assistant", "content": "x"},
                ]
            }
        ]
        * 2,
    )
    train_file, model, extra = good, tiny_model, []
    if case in ("missing", "empty", "unknown", "no_assistant"):
        train_file = tmp_path / f"{case}.jsonl"
    elif case == "qlora_on_cpu":
        extra = ["--method", "qlora"]
    elif case == "bad_model":
        model = tmp_path / "no-model"
    elif case == "all_dropped":
        train_file, extra = tmp_path / "long.jsonl", ["--max_seq_length", "32"]
    out = tmp_path / "out"
    code, _, stderr = run_train(
        "--model_name_or_path", model, "--train_file", train_file, "--output_dir", out, *extra
    )
    assert code == 2
    lines = stderr.strip().splitlines()
    assert lines[-1].startswith(expected.format(tmp=tmp_path)), stderr
    assert [line for line in lines if line.startswith("error:")] == [lines[-1]]
    assert not (out / "metrics.json").exists()
    assert not (out / "adapter_model.safetensors").exists()


def test_the_command_line_contract_as_a_subprocess(tmp_path: Path) -> None:
    """Exit code and stderr line as the job service sees them; --help works without torch."""
    result = run_script(
        "--model_name_or_path", "unused", "--train_file", tmp_path / "nope.jsonl",
        "--output_dir", tmp_path / "out",
    )  # fmt: skip
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        == f"error: --train_file {tmp_path}/nope.jsonl: no such file or directory"
    )
    assert not (tmp_path / "out").exists()
    result = run_script("--max_steps", "ten")
    assert result.returncode == 2
    assert result.stderr.strip() == "error: argument --max_steps: invalid int value: 'ten'"
    result = run_script("--help")
    assert result.returncode == 0
    assert "--lora_target_modules" in result.stdout
