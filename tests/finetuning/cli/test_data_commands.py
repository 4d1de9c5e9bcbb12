"""`finetune data ...`: output shape and exit codes (0 ok, 1 failed, 2 bad usage)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from finetuning.cli import main
from tests.support.records import NOVA, converse, jsonl, prompt_completion

REPO = Path(__file__).resolve().parents[3]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["data", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def nova_file(tmp_path: Path) -> Path:
    path = tmp_path / "train.jsonl"
    path.write_bytes(b"".join(jsonl(*[converse(user=f"Question {i}?") for i in range(10)])))
    return path


@pytest.fixture
def bad_file(tmp_path: Path) -> Path:
    path = tmp_path / "bad.jsonl"
    lines = jsonl(
        *[converse(user=f"Q{i}?") for i in range(8)], converse(user="User: hi"), b"{nope\n", b"\n"
    )
    path.write_bytes(b"".join(lines))
    return path


def test_validate_ok(capsys, nova_file: Path) -> None:
    code, out, _ = run(capsys, "validate", str(nova_file), "--model", NOVA)
    assert code == 0
    # 26 + 11 + 6 characters per record: 8 tokens at 6 characters per token.
    assert out.strip() == (
        f"{nova_file}: 10 records, 0 errors, 0 warnings, 80 tokens (estimated); "
        f"format bedrock-conversation-2024, rules of nova-lite ({NOVA})"
    )


def test_validate_errors_compiler_style(capsys, bad_file: Path) -> None:
    code, out, _ = run(capsys, "validate", str(bad_file), "--model", NOVA)
    lines = out.splitlines()
    assert code == 1
    assert lines[0].startswith(f"{bad_file}:9: error: messages[0].content: 'User:' is a reserved")
    assert lines[1].startswith(f"{bad_file}:10: error: not valid JSON")
    assert lines[2] == f"{bad_file}:11: warning: blank line (skipped; it is not a record)"
    assert lines[-1].startswith(f"{bad_file}: 9 records, 2 errors, 1 warning,")


def test_validate_max_errors_limits_printing_not_counting(capsys, bad_file: Path) -> None:
    code, out, _ = run(capsys, "validate", str(bad_file), "--model", NOVA, "--max-errors", "1")
    assert code == 1
    assert sum(": error: " in line for line in out.splitlines()) == 1
    assert "1 more problems not shown" in out
    assert "2 errors" in out.splitlines()[-1]


def test_validate_json(capsys, bad_file: Path) -> None:
    code, out, _ = run(capsys, "validate", str(bad_file), "--model", NOVA, "--json")
    report = json.loads(out)
    assert code == 1
    assert (report["records"], report["errors"], report["warnings"], report["ok"]) == (
        9,
        2,
        1,
        False,
    )
    assert (
        report["problems"][0]["line"] == 9 and report["problems"][0]["code"] == "reserved-keyword"
    )


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (
            ["validate", "{file}", "--model", "anthropic.claude-v2"],
            "not a Bedrock model this toolkit has dataset rules for",
        ),
        (["validate", "missing.jsonl", "--model", NOVA], "missing.jsonl: no such file"),
        (
            ["validate", "{file}", "--model", NOVA, "--dataset-uri", "http://x"],
            "expected an s3://bucket/key URI",
        ),
    ],
)
def test_validate_bad_usage_exits_2(
    capsys, nova_file: Path, argv: list[str], fragment: str
) -> None:
    code, _, err = run(capsys, *[a.replace("{file}", str(nova_file)) for a in argv])
    assert code == 2 and fragment in err


def test_argparse_errors_exit_2(capsys, nova_file: Path) -> None:
    with pytest.raises(SystemExit) as excinfo:
        main(["data", "validate", str(nova_file)])  # --model missing
    assert excinfo.value.code == 2
    with pytest.raises(SystemExit):
        main(["data", "split", str(nova_file), "--validation-split", "1.5"])
    assert "expected a fraction between 0 and 1" in capsys.readouterr().err


def test_split_cli(capsys, tmp_path: Path) -> None:
    source = tmp_path / "all.jsonl"
    source.write_bytes(
        b"".join(jsonl(*[{**prompt_completion(f"p{i}"), "label": "ab"[i % 2]} for i in range(20)]))
    )
    out_dir = tmp_path / "out"
    code, out, _ = run(
        capsys,
        "split",
        str(source),
        "--validation-split",
        "0.2",
        "--seed",
        "3",
        "--stratify-by",
        "label",
        "--output-dir",
        str(out_dir),
    )
    assert code == 0
    assert out.splitlines() == [
        f"{out_dir / 'train.jsonl'}: 16 records",
        f"{out_dir / 'validation.jsonl'}: 4 records",
        "  a: 8 train, 2 validation",
        "  b: 8 train, 2 validation",
    ]
    first = (out_dir / "validation.jsonl").read_bytes()
    code, _, err = run(
        capsys,
        "split",
        str(source),
        "--output-dir",
        str(out_dir),
        "--validation-split",
        "0.2",
        "--seed",
        "3",
    )
    assert code == 2 and "already exists" in err
    code, out, _ = run(
        capsys,
        "split",
        str(source),
        "--output-dir",
        str(out_dir),
        "--validation-split",
        "0.2",
        "--seed",
        "3",
        "--stratify-by",
        "label",
        "--force",
        "--json",
    )
    assert code == 0 and json.loads(out)["validation_records"] == 4
    assert (out_dir / "validation.jsonl").read_bytes() == first


def test_convert_cli(capsys, tmp_path: Path) -> None:
    source = tmp_path / "pc.jsonl"
    source.write_bytes(b"".join(jsonl(*[prompt_completion(f"Q{i}?") for i in range(3)])))
    system = tmp_path / "system.txt"
    system.write_text("You summarize.\n")
    out = tmp_path / "nova.jsonl"
    code, stdout, _ = run(
        capsys,
        "convert",
        str(source),
        str(out),
        "--to",
        "bedrock-conversation",
        "--system-prompt-file",
        str(system),
    )
    assert (
        code == 0
        and stdout.strip() == f"{out}: 3 records written in bedrock-conversation-2024 format"
    )
    assert json.loads(out.read_text().splitlines()[0])["system"] == [{"text": "You summarize."}]
    code, stdout, err = run(
        capsys,
        "convert",
        str(out),
        str(tmp_path / "pc2.jsonl"),
        "--to",
        "prompt-completion",
        "--map",
        "bad",
    )
    assert code == 2 and "expected SOURCE=TARGET" in err
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b"".join(jsonl({"q": 1}, prompt_completion())))
    code, stdout, err = run(
        capsys, "convert", str(bad), str(tmp_path / "x.jsonl"), "--to", "messages"
    )
    assert code == 1 and f"{bad}:1: error:" in stdout and "nothing was written" in err
    assert not (tmp_path / "x.jsonl").exists()


def test_prepare_images_cli(capsys, tmp_path: Path) -> None:
    for label in ("invoice", "memo"):
        (tmp_path / "src" / label).mkdir(parents=True)
        for i in range(3):
            Image.new("L", (30, 40), 50 * i).save(tmp_path / "src" / label / f"{i}.png")
    mapping = tmp_path / "labels.json"
    mapping.write_text(json.dumps({"memo": "memorandum"}))
    code, out, _ = run(
        capsys,
        "prepare-images",
        str(tmp_path / "src"),
        str(tmp_path / "out"),
        "--samples-per-label",
        "2",
        "--validation-split",
        "0.5",
        "--s3-prefix",
        "s3://bucket/ds",
        "--bucket-owner",
        "123456789012",
        "--label-mapping",
        str(mapping),
        "--json",
    )
    summary = json.loads(out)
    assert code == 0
    assert summary["labels"] == {
        "invoice": {"train": 1, "validation": 1, "failed": 0},
        "memorandum": {"train": 1, "validation": 1, "failed": 0},
    }
    code, _, err = run(capsys, "prepare-images", str(tmp_path / "src"), str(tmp_path / "out2"))
    assert code == 2 and "--s3-prefix" in err


def test_estimate_cli(capsys, tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_bytes(
        b"".join(jsonl(*[prompt_completion(f"{i:03d}" + "x" * 591, "y" * 6) for i in range(10)]))
    )
    code, out, _ = run(
        capsys,
        "estimate",
        str(path),
        "--model",
        "amazon.titan-text-express-v1:0:8k",
        "--epochs",
        "2",
        "--price-per-1k-tokens",
        "0.004",
        "--json",
    )
    data = json.loads(out)
    assert code == 0 and data["trained_tokens"] == 2000
    assert data["training_cost"] == pytest.approx(2000 / 1000 * 0.004)
    code, _, err = run(capsys, "estimate", str(path), "--model", "org/model", "--epochs", "1")
    assert code == 2 and "--instance-type" in err
    # A family Bedrock no longer customizes is bad usage, with the reason.
    code, _, err = run(
        capsys, "estimate", str(path), "--model", "cohere.command-text-v14", "--epochs", "1"
    )
    assert code == 2 and "no longer customizes" in err


def test_validate_and_estimate_rft_and_distillation_data(capsys, tmp_path: Path) -> None:
    rft = tmp_path / "rft.jsonl"
    rft.write_text(
        json.dumps({"messages": [{"role": "user", "content": "2+2?"}], "reference_answer": "4"})
        + "\n"
        + json.dumps({"messages": [{"role": "user", "content": "3+3?"}]})
        + "\n"
    )
    nova_2 = "amazon.nova-2-lite-v1:0:256k"
    kind = ["--customization-type", "REINFORCEMENT_FINE_TUNING"]
    code, out, _ = run(capsys, "validate", str(rft), "--model", nova_2, *kind)
    assert code == 1 and f"{rft}:2: error: reference_answer" in out
    code, out, _ = run(
        capsys, "estimate", str(rft), "--model", nova_2, "--epochs", "1", *kind, "--json"
    )
    assert code == 0 and json.loads(out)["customization"] == "REINFORCEMENT_FINE_TUNING"
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(
        json.dumps(
            {
                "schemaVersion": "bedrock-conversation-2024",
                "messages": [{"role": "user", "content": [{"text": "Summarise."}]}],
            }
        )
        + "\n"
    )
    code, out, _ = run(
        capsys,
        "estimate",
        str(prompts),
        "--model",
        "amazon.nova-lite-v1:0:300k",
        "--epochs",
        "1",
        "--customization-type",
        "DISTILLATION",
        "--teacher-max-response-length",
        "100",
        "--teacher-price-per-1k-input",
        "0.001",
        "--teacher-price-per-1k-output",
        "0.004",
    )
    assert code == 0 and "teacher:" in out and "at most 100 output tokens" in out
    code, out, _ = run(
        capsys,
        "estimate",
        str(prompts),
        "--model",
        "amazon.nova-lite-v1:0:300k",
        "--epochs",
        "1",
        "--customization-type",
        "DISTILLATION",
        "--teacher-model",
        "us.amazon.nova-pro-v1:0",
        "--teacher-max-response-length",
        "100",
    )
    assert code == 0 and "teacher prices: $0.0008 input, $0.0032 output" in out
    code, _, err = run(
        capsys,
        "estimate",
        str(prompts),
        "--model",
        "amazon.nova-lite-v1:0:300k",
        "--epochs",
        "1",
        "--customization-type",
        "DISTILLATION",
        "--teacher-model",
        "us.amazon.nova-premier-v1:0",
    )
    assert code == 2 and "end of life on 2026-09-14" in err


def test_help_runs_as_a_subprocess() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-m", "finetuning.cli", "data", "--help"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert done.returncode == 0
    for command in ("validate", "convert", "split", "prepare-images", "estimate"):
        assert command in done.stdout


def test_validate_training_and_validation_files(capsys, nova_file: Path, tmp_path: Path) -> None:
    validation = tmp_path / "validation.jsonl"
    validation.write_bytes(b"".join(jsonl(converse(user="Held out?"), b"\n")))
    code, out, _ = run(
        capsys, "validate", str(nova_file), "--model", NOVA, "--validation-file", str(validation)
    )
    lines = out.splitlines()
    assert code == 0
    assert lines[0] == f"{validation}:2: warning: blank line (skipped; it is not a record)"
    assert lines[1].startswith(f"{nova_file}: 10 records, 0 errors")
    assert lines[2].startswith(f"{validation}: 1 record, 0 errors, 1 warning,")
    code, out, _ = run(
        capsys,
        "validate",
        str(nova_file),
        "--model",
        NOVA,
        "--validation-file",
        str(validation),
        "--json",
    )
    assert [report["role"] for report in json.loads(out)] == ["train", "validation"]


def test_missing_s3_object_is_bad_usage(capsys, fake_aws_credentials) -> None:
    import boto3
    from moto import mock_aws

    with mock_aws():
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="data-bucket")
        code, _, err = run(capsys, "validate", "s3://data-bucket/none.jsonl", "--model", NOVA)
    assert code == 2 and "s3://data-bucket/none.jsonl" in err and "NoSuchKey" in err


def test_exact_token_counts_with_a_tokenizer(capsys, tmp_path: Path) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {
        "[UNK]": 0,
        **{word: i + 1 for i, word in enumerate(["the", "quick", "brown", "fox", "42"])},
    }
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    (tmp_path / "tok").mkdir()
    tokenizer.save(str(tmp_path / "tok" / "tokenizer.json"))
    path = tmp_path / "t.jsonl"
    # 4 + 2 words: exactly 6 tokens, whatever the character count.
    path.write_bytes(b"".join(jsonl(prompt_completion("the quick brown fox", "answer 42"))))
    args = [
        "validate",
        str(path),
        "--model",
        str(tmp_path / "tok"),
        "--tokenizer",
        str(tmp_path / "tok"),
    ]
    code, out, _ = run(capsys, *args, "--max-tokens", "5", "--json")
    report = json.loads(out)
    assert code == 0 and report["tokens_exact"] is True and report["tokens"] == 6
    assert report["problems"][0]["code"] == "truncated"
