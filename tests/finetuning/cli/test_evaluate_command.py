"""``finetune evaluate`` end to end with Stubber-backed Bedrock clients (no network)."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest
from botocore.stub import ANY, Stubber

from finetuning.cli import evaluate as evaluate_cli
from finetuning.cli import main

TUNED_ID = "arn:aws:bedrock:us-east-1:123456789012:provisioned-model/abcdef123456"
BASE_ID = "us.amazon.nova-lite-v1:0"

# Answers per image (sorted file names): invoice_0, invoice_1, letter_0, letter_1, memo_0, memo_1
TUNED_ANSWERS = ["invoice", "invoice", "letter", "letter", "memo", "letter"]  # 5/6 right
BASE_ANSWERS = ["invoice", "letter", "letter", "memo", "memo", "invoice"]  # 3/6 right


class FakeSession:
    """Hands out real botocore clients whose calls are answered by Stubbers."""

    def __init__(self) -> None:
        self.runtime = boto3.client("bedrock-runtime", region_name="us-east-1")
        self.stubber = Stubber(self.runtime)
        self.stubber.activate()

    def client(self, name: str, config=None):
        assert name == "bedrock-runtime", f"unexpected client {name}"
        return self.runtime

    def answer(self, model_id: str, labels: list[str]) -> None:
        for label in labels:
            self.stubber.add_response(
                "converse",
                {
                    "output": {
                        "message": {
                            "role": "assistant",
                            "content": [{"text": f'{{"type": "{label}"}}'}],
                        }
                    },
                    "stopReason": "end_turn",
                    "usage": {"inputTokens": 900, "outputTokens": 10, "totalTokens": 910},
                    "metrics": {"latencyMs": 300},
                },
                {
                    "modelId": model_id,
                    "messages": ANY,
                    "system": ANY,
                    "inferenceConfig": {"maxTokens": 100, "temperature": 0.0},
                },
            )


@pytest.fixture
def session(fake_aws_credentials, monkeypatch):
    fake = FakeSession()
    monkeypatch.setattr(evaluate_cli, "_session", lambda args: fake)
    yield fake
    fake.stubber.deactivate()


@pytest.fixture
def labelled(labelled_images, tmp_path):
    folder, truth = labelled_images
    labels = tmp_path / "labels.json"
    labels.write_text(json.dumps(truth))
    return folder, labels


def base_args(folder: Path, labels: Path, out: Path) -> list[str]:
    return [
        "evaluate",
        "--provisioned-model-arn",
        TUNED_ID,
        "--image-directory",
        str(folder),
        "--ground-truth-file",
        str(labels),
        "--temperature",
        "0",
        "--max-tokens",
        "100",
        "--concurrency",
        "1",
        "--output-file",
        str(out),
        "--no-progress",
    ]


def test_comparison_with_gate_report_and_old_json_shape(session, labelled, tmp_path, capsys):
    folder, labels = labelled
    out = tmp_path / "comparison.json"
    session.answer(TUNED_ID, TUNED_ANSWERS)
    session.answer(BASE_ID, BASE_ANSWERS)
    code = main(
        [
            *base_args(folder, labels, out),
            "--compare-with-base",
            "--base-model-id",
            BASE_ID,
            "--min-accuracy",
            "0.8",
            "--min-improvement",
            "0.05",
        ]
    )
    printed = capsys.readouterr().out
    assert code == 0, printed
    session.stubber.assert_no_pending_responses()

    data = json.loads(out.read_text())
    assert data["comparison_type"] == "model_comparison"
    assert data["model_id"] == TUNED_ID
    assert data["model_name"] == "Fine-tuned Model"
    assert set(data["models"]) == {"Fine-tuned Model", "Base Model"}
    assert data["models"]["Base Model"]["model_id"] == BASE_ID
    assert data["metrics"]["accuracy"] == pytest.approx(5 / 6)
    assert data["models"]["Base Model"]["metrics"]["accuracy"] == pytest.approx(0.5)
    assert data["improvement"]["accuracy"] == pytest.approx(1 / 3, abs=1e-6)
    assert data["quality_gate"]["passed"] is True
    first = data["results"][0]
    assert {
        "image_path",
        "status",
        "prediction",
        "ground_truth",
        "correct",
        "inference_time_seconds",
        "input_tokens",
        "output_tokens",
        "total_tokens",
    } <= set(first)
    assert (first["prediction"], first["ground_truth"], first["correct"]) == (
        "invoice",
        "invoice",
        True,
    )
    assert first["total_tokens"] == 910
    for key in (
        "total_images",
        "successful_inferences",
        "success_rate",
        "correct_predictions",
        "accuracy",
        "average_inference_time_seconds",
        "total_tokens_used",
        "average_tokens_per_image",
        "macro_f1",
        "weighted_f1",
        "confusion_matrix",
        "latency_p50_seconds",
        "latency_p90_seconds",
        "latency_p99_seconds",
    ):
        assert key in data["metrics"], key
    # on-demand Nova Lite has list prices; provisioned throughput bills by the hour
    assert data["metrics"]["estimated_cost_usd"] is None
    assert data["models"]["Base Model"]["metrics"]["estimated_cost_usd"] == pytest.approx(
        6 * (0.9 * 0.00006 + 0.01 * 0.00024)
    )

    report = tmp_path / "comparison-report"
    assert (report / "report.html").is_file() and (report / "report.md").is_file()
    assert "Fine-tuned Model Results Summary" in printed
    assert "Accuracy: 83.33%" in printed
    assert "Quality gate PASSED" in printed


def test_failed_gate_exits_1_and_still_reports(session, labelled, tmp_path, capsys):
    folder, labels = labelled
    out = tmp_path / "r.json"
    session.answer(TUNED_ID, TUNED_ANSWERS)
    code = main([*base_args(folder, labels, out), "--min-accuracy", "0.9", "--json"])
    assert code == 1
    summary = json.loads(capsys.readouterr().out)
    assert summary["quality_gate"]["passed"] is False
    assert summary["quality_gate"]["checks"][0]["message"] == "accuracy 0.8333 < 0.9"
    assert Path(summary["report"]["html"]).is_file()
    assert "per_class" not in summary["metrics"]


def test_interrupted_run_resumes(session, labelled, tmp_path, capsys):
    folder, labels = labelled
    out = tmp_path / "r.json"
    session.answer(TUNED_ID, TUNED_ANSWERS[:2])
    session.stubber.add_client_error(
        "converse", service_error_code="ExpiredTokenException", service_message="expired"
    )
    # An expired token is a credentials problem: exit 3 in every command (docs/cli.md).
    assert main(base_args(folder, labels, out)) == 3
    err = capsys.readouterr().err
    assert "AWS rejected the credentials" in err and "ExpiredTokenException" in err
    assert "run the same command again to resume" in err
    assert not out.exists()
    journal = out.with_name("r.json.partial.jsonl")
    assert len(journal.read_text().splitlines()) == 3  # header + two answers

    session.answer(TUNED_ID, TUNED_ANSWERS[2:])  # only the four missing calls
    assert main([*base_args(folder, labels, out), "--no-report"]) == 0
    session.stubber.assert_no_pending_responses()
    data = json.loads(out.read_text())
    assert [r["prediction"] for r in data["results"]] == TUNED_ANSWERS


def test_from_results_regates_without_calls(session, labelled, tmp_path, capsys):
    folder, labels = labelled
    out = tmp_path / "r.json"
    session.answer(TUNED_ID, TUNED_ANSWERS)
    assert main([*base_args(folder, labels, out), "--no-report"]) == 0
    assert not (tmp_path / "r-report").exists()
    capsys.readouterr()
    curves = tmp_path / "training_metrics.csv"
    curves.write_text("step,epoch,loss,learning_rate,tokens_per_second\n1,0.1,2.0,1e-4,900\n")
    code = main(
        [
            "evaluate",
            "--from-results",
            str(out),
            "--min-accuracy",
            "0.95",
            "--training-metrics",
            str(curves),
            "--report-dir",
            str(tmp_path / "again"),
        ]
    )
    assert code == 1
    assert "[FAIL] accuracy 0.8333 < 0.95" in capsys.readouterr().out
    assert (tmp_path / "again" / "charts" / "loss-curves.png").is_file()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ([], "choose the model to evaluate"),
        (["--model-id", BASE_ID], "choose the inputs"),
        (
            ["--model-id", BASE_ID, "--image-path", "x.png", "--compare-with-base"],
            "--compare-with-base needs the base model",
        ),
        (
            ["--model-id", BASE_ID, "--image-path", "x.png", "--min-improvement", "0.1"],
            "--min-improvement compares with the base model",
        ),
        (
            ["--model-id", BASE_ID, "--image-path", "x.png", "--concurrency", "0"],
            "--concurrency: expected an integer >= 1, got 0",
        ),
        (
            ["--model-id", BASE_ID, "--image-path", "x.png", "--input-price-per-1k", "1"],
            "give both --input-price-per-1k and --output-price-per-1k",
        ),
        (
            ["--model-id", BASE_ID, "--test-set", "t.jsonl", "--ground-truth-file", "l.json"],
            "--ground-truth-file labels images",
        ),
    ],
)
def test_usage_errors_exit_2(extra, message, capsys):
    assert main(["evaluate", *extra]) == 2
    assert message in capsys.readouterr().err


def test_input_errors_exit_2_before_any_call(session, tmp_path, capsys):
    bad = tmp_path / "test.jsonl"
    bad.write_text('{"prompt": "q", "completion": "a"}\n{"prompt": "q"}\n')
    assert main(["evaluate", "--model-id", BASE_ID, "--test-set", str(bad)]) == 2
    assert "test.jsonl: line 2: unknown record shape" in capsys.readouterr().err


def test_top_k_on_a_model_without_it_is_bad_usage(session, tmp_path, capsys):
    data = tmp_path / "test.jsonl"
    data.write_text('{"prompt": "q", "completion": "a"}\n')
    code = main(
        [
            "evaluate",
            "--model-id",
            "meta.llama3-1-8b-instruct-v1:0",
            "--test-set",
            str(data),
            "--top-k",
            "5",
            "--output-file",
            str(tmp_path / "o.json"),
        ]
    )
    assert code == 2
    assert "meta models on Bedrock have no top-k parameter" in capsys.readouterr().err


def test_help_lists_the_old_flags(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["evaluate", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for flag in (
        "--model-id",
        "--provisioned-model-arn",
        "--image-path",
        "--image-directory",
        "--ground-truth-file",
        "--compare-with-base",
        "--base-model-id",
        "--temperature",
        "--top-p",
        "--top-k",
        "--max-tokens",
        "--system-prompt-file",
        "--task-prompt-file",
        "--concurrency",
        "--output-file",
        "--verbose",
    ):
        assert flag in text
