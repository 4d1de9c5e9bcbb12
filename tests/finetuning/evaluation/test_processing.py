"""The evaluation Processing job's entry point, run on a temporary channel layout.

The models are a tiny random Llama (with a tokenizer trained here) packed the way
training_scripts/train.py leaves its output in model.tar.gz: a fully fine-tuned model, a LoRA
adapter with merged/, and a bare adapter that needs its base model.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest

from finetuning.evaluation import processing
from finetuning.evaluation.processing import InputError, main, safe_extract

JOB = "open-model-0123456789"
OUTPUT_URI = f"s3://evaluation-bucket/evaluation/reports/{JOB}/"
TEST_SET_URI = "s3://data-bucket/evaluation/test.jsonl"
RECORDS = [
    {
        "messages": [
            {"role": "user", "content": "Say hello."},
            {"role": "assistant", "content": "hello"},
        ]
    },
    {"prompt": "Question: what is 12 plus 30? Answer:", "completion": "42"},
    {
        "messages": [
            {"role": "system", "content": "Answer with one word."},
            {"role": "user", "content": "Classify the document: invoice or letter?"},
            {"role": "assistant", "content": "invoice"},
        ]
    },
]
TRAINING_CSV = (
    "step,epoch,loss,learning_rate,tokens_per_second\n1,0.5,2.5,0.0002,100\n2,1.0,2.1,0.0001,110\n"
)
EVAL_CSV = "step,epoch,eval_loss,eval_perplexity\n2,1.0,2.3,9.97\n"
PASSING_GATE = {"min": {"success_rate": 1.0}}
# A random model never reproduces the references word for word.
FAILING_GATE = {"min": {"exact_match": 0.99}}


@pytest.fixture(autouse=True)
def one_torch_thread():
    """One intra-op thread: the suite runs on two xdist workers sharing two cores."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from finetuning.testing import make_tiny_llama

    return make_tiny_llama(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="module")
def adapter(tiny: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A LoRA adapter as train.py saves it on SageMaker: its recorded base is the training
    job's model channel, which does not exist in the Processing container."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = tmp_path_factory.mktemp("adapter") / "model"
    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(tiny),
        LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"),
    )
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(tiny).save_pretrained(folder)
    config_path = folder / "adapter_config.json"
    config = json.loads(config_path.read_text())
    config["base_model_name_or_path"] = "/opt/ml/input/data/model"
    config_path.write_text(json.dumps(config))
    return folder


def pack(folder: Path, archive: Path, extra: dict[str, str] | None = None) -> Path:
    """model.tar.gz with the folder's files at the top level (as SageMaker packs /opt/ml/model)."""
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(folder.rglob("*")):
            tar.add(path, arcname=path.relative_to(folder).as_posix(), recursive=False)
        for name, text in (extra or {}).items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return archive


def layout(
    root: Path,
    *,
    model: Path | None = None,
    config: dict[str, Any] | None = None,
    records: list[Any] | None = None,
    base: Path | None = None,
) -> tuple[Path, Path]:
    """input/{config,model,test,base} under ``root``; returns (input dir, output dir)."""
    inputs = root / "input"
    (inputs / "config").mkdir(parents=True)
    request = {
        "job_name": JOB,
        "test_set_uri": TEST_SET_URI,
        "output_uri": OUTPUT_URI,
        "inference": {"max_tokens": 4},
        "task": "text",
        **(config or {}),
    }
    (inputs / "config" / "evaluation-request.json").write_text(json.dumps(request))
    if model is not None:
        (inputs / "model").mkdir()
        if model.suffix == ".gz":
            shutil.copy(model, inputs / "model" / "model.tar.gz")
        else:
            shutil.copytree(model, inputs / "model", dirs_exist_ok=True)
    (inputs / "test").mkdir()
    lines = [json.dumps(r) if not isinstance(r, str) else r for r in (records or RECORDS)]
    (inputs / "test" / "test.jsonl").write_text("\n".join(lines) + "\n")
    if base is not None:
        shutil.copytree(base, inputs / "base")
    return inputs, root / "output"


def run_job(root: Path, inputs: Path, output: Path) -> tuple[int, Path]:
    message = root / "message"
    code = main(
        [
            "--input-dir",
            str(inputs),
            "--output-dir",
            str(output),
            "--work-dir",
            str(root / "work"),
            "--message-file",
            str(message),
        ]
    )
    return code, message


@pytest.fixture(scope="module")
def full_archive(tiny: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fully fine-tuned model's model.tar.gz, with the files train.py writes next to it."""
    return pack(
        tiny,
        tmp_path_factory.mktemp("full") / "model.tar.gz",
        {
            "metrics.json": json.dumps({"train_loss": 2.1, "eval_loss": 2.3}),
            "training_config.json": "{}",
            "training_metrics.csv": TRAINING_CSV,
            "eval_metrics.csv": EVAL_CSV,
        },
    )


def test_full_model_passing_gate(full_archive: Path, tmp_path: Path, capsys) -> None:
    config = {"quality_gate": PASSING_GATE, "batch_size": 2}
    inputs, output = layout(tmp_path, model=full_archive, config=config)
    code, message = run_job(tmp_path, inputs, output)
    assert code == 0, capsys.readouterr().err
    # the request's batch size reached the generation, and the log says how fast it went
    assert re.search(
        r"Fine-tuned Model: [\d.]+ samples/s \(batch size 2\)", capsys.readouterr().out
    )

    outcome = json.loads((output / "outcome.json").read_text())
    assert outcome["job_name"] == JOB
    assert outcome["quality_gate_passed"] is True
    assert outcome["evaluation_results_uri"] == f"{OUTPUT_URI}results.json"
    assert outcome["report_uri"] == f"{OUTPUT_URI}report.html"
    assert outcome["report_markdown_uri"] == f"{OUTPUT_URI}report.md"
    assert outcome["metrics"]["success_rate"] == 1.0
    assert outcome["metrics"]["batch_size"] == 2 and outcome["metrics"]["samples_per_second"] > 0
    assert outcome["reason"] == f"quality gate passed (1 checks); report: {OUTPUT_URI}report.html"
    assert message.read_text() == outcome["reason"]

    results = json.loads((output / "results.json").read_text())
    assert [r["status"] for r in results["results"]] == ["success"] * 3
    assert [r["ground_truth"] for r in results["results"]] == ["hello", "42", "invoice"]
    assert all(r["output_tokens"] <= 4 for r in results["results"])
    assert results["inputs"]["test_set"] == TEST_SET_URI
    assert results["inputs"]["model_folder"] == "full"
    # loss curves came from the CSV files inside the archive
    assert results["training_metrics"]["final_training_loss"] == 2.1
    assert results["training_metrics"]["final_validation_loss"] == 2.3
    assert (output / "report.md").read_text().startswith(f"# Evaluation: {JOB}")
    assert "<html" in (output / "report.html").read_text()
    charts = sorted(p.name for p in (output / "charts").iterdir())
    assert any("loss" in name for name in charts), charts
    # nothing but the report goes to the output prefix: archives are extracted elsewhere
    assert sorted(p.name for p in output.iterdir()) == [
        "charts",
        "outcome.json",
        "report.html",
        "report.md",
        "results.json",
    ]


def test_failing_gate_with_base_comparison_is_a_verdict_not_an_error(
    full_archive: Path, tiny: Path, tmp_path: Path, capsys
) -> None:
    gate = {**FAILING_GATE, "min_improvement_over_base": {"success_rate": 0.0}}
    inputs, output = layout(
        tmp_path,
        model=full_archive,
        base=tiny,
        config={"quality_gate": gate, "base_model_id": "tiny-llama-base", "model_id": "tuned-x"},
    )
    code, message = run_job(tmp_path, inputs, output)
    assert code == 0, capsys.readouterr().err

    outcome = json.loads((output / "outcome.json").read_text())
    assert outcome["quality_gate_passed"] is False
    assert outcome["reason"].startswith("quality gate failed: exact_match")
    assert outcome["reason"].endswith(f"report: {OUTPUT_URI}report.html")
    checks = {c["check"]: c["passed"] for c in outcome["quality_gate"]["checks"]}
    assert checks == {"min": False, "min_improvement_over_base": True}
    assert message.read_text() == outcome["reason"]
    results = json.loads((output / "results.json").read_text())
    assert results["models"]["Base Model"]["model_id"] == "tiny-llama-base"
    assert results["models"]["Fine-tuned Model"]["model_id"] == "tuned-x"


def test_merged_model_is_preferred_over_the_adapter(
    adapter: Path, tiny: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "trained"
    shutil.copytree(adapter, folder)
    shutil.copytree(tiny, folder / "merged")
    archive = pack(folder, tmp_path / "archive" / "model.tar.gz")
    inputs, output = layout(tmp_path / "job", model=archive)
    code, _ = run_job(tmp_path / "job", inputs, output)
    assert code == 0
    results = json.loads((output / "results.json").read_text())
    assert results["inputs"]["model_folder"] == "merged"
    outcome = json.loads((output / "outcome.json").read_text())
    assert outcome["quality_gate_passed"] is None
    assert outcome["reason"].startswith("no quality gate in the job spec")


def test_adapter_loads_on_the_base_channel(adapter: Path, tiny: Path, tmp_path: Path) -> None:
    # an extracted folder works as well as an archive; no base_model_id: no comparison
    inputs, output = layout(tmp_path, model=adapter, base=tiny)
    code, _ = run_job(tmp_path, inputs, output)
    assert code == 0
    results = json.loads((output / "results.json").read_text())
    assert results["inputs"]["model_folder"] == "adapter"
    assert "models" not in results  # no comparison
    assert results["model_id"] == str(inputs / "model")  # the config names no model_id
    assert [r["status"] for r in results["results"]] == ["success"] * 3


def test_adapter_without_its_base_fails_with_the_fix(adapter: Path, tmp_path: Path, capsys) -> None:
    archive = pack(adapter, tmp_path / "archive" / "model.tar.gz")
    inputs, output = layout(tmp_path / "job", model=archive)
    code, message = run_job(tmp_path / "job", inputs, output)
    assert code == 2
    err = capsys.readouterr().err
    assert "LoRA adapter" in err and "--merge_adapter true" in err
    assert message.read_text().startswith("error: ")
    assert "base channel" in message.read_text()
    assert not (output / "outcome.json").exists()


def test_training_metrics_channel_with_output_archive(full_archive: Path, tmp_path: Path) -> None:
    inputs, output = layout(tmp_path, model=full_archive)
    empty = tmp_path / "empty"
    empty.mkdir()
    channel = inputs / "training-metrics"
    pack(empty, channel / "output.tar.gz", {"training_metrics.csv": "step,loss\n1,9.5\n5,7.25\n"})
    code, _ = run_job(tmp_path, inputs, output)
    assert code == 0
    results = json.loads((output / "results.json").read_text())
    # the channel wins over the CSV files inside the model archive
    assert results["training_metrics"]["final_training_loss"] == 7.25
    assert results["training_metrics"]["training_steps"] == 5


def _evil_archive(path: Path, member: tarfile.TarInfo, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        ok = tarfile.TarInfo("config.json")
        ok.size = 2
        tar.addfile(ok, io.BytesIO(b"{}"))
        if member.isfile():
            member.size = len(data)
            tar.addfile(member, io.BytesIO(data))
        else:
            tar.addfile(member)
    return path


@pytest.mark.parametrize(
    ("name", "kind", "expected"),
    [
        ("../escape.txt", tarfile.REGTYPE, "points outside"),
        ("/etc/escape.txt", tarfile.REGTYPE, "points outside"),
        ("weights/../../escape.txt", tarfile.REGTYPE, "points outside"),
        ("link", tarfile.SYMTYPE, "link or special file"),
    ],
)
def test_safe_extract_refuses_members_outside_the_folder(
    tmp_path: Path, name: str, kind: bytes, expected: str
) -> None:
    member = tarfile.TarInfo(name)
    member.type = kind
    if kind == tarfile.SYMTYPE:
        member.linkname = "/etc/passwd"
    archive = _evil_archive(tmp_path / "in" / "model.tar.gz", member)
    target = tmp_path / "deep" / "out"
    with pytest.raises(InputError, match=expected):
        safe_extract(archive, target)
    assert not (tmp_path / "deep" / "escape.txt").exists()
    assert not (target / "config.json").exists()  # nothing extracted from a refused archive


def _bad_config(inputs: Path, text: str) -> None:
    (inputs / "config" / "evaluation-request.json").write_text(text)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda i: _bad_config(i, "{not json"), "not a readable JSON file"),
        (lambda i: _bad_config(i, "[1, 2]"), "expected a JSON object"),
        (
            lambda i: _bad_config(i, json.dumps({"job_name": JOB, "output_uri": OUTPUT_URI})),
            "test_set_uri: expected a non-empty string",
        ),
        (
            lambda i: _bad_config(i, json.dumps({"job_name": JOB, "test_set_uri": TEST_SET_URI})),
            "output_uri: expected an s3://",
        ),
        (
            lambda i: _bad_config(
                i,
                json.dumps(
                    {
                        "job_name": JOB,
                        "test_set_uri": TEST_SET_URI,
                        "output_uri": OUTPUT_URI,
                        "quality_gate": {"min_improvement_over_base": {"accuracy": 0.1}},
                    }
                ),
            ),
            "base_model_id is not set",
        ),
        (
            lambda i: _bad_config(
                i,
                json.dumps(
                    {
                        "job_name": JOB,
                        "test_set_uri": TEST_SET_URI,
                        "output_uri": OUTPUT_URI,
                        "base_model_id": "base",
                    }
                ),
            ),
            "base channel|input/base",
        ),
        (
            lambda i: _bad_config(
                i,
                json.dumps(
                    {
                        "job_name": JOB,
                        "test_set_uri": TEST_SET_URI,
                        "output_uri": OUTPUT_URI,
                        "batch_size": 0,
                    }
                ),
            ),
            "batch_size: expected an integer >= 1, got 0",
        ),
        (lambda i: shutil.rmtree(i / "config"), "config channel is missing"),
        (lambda i: shutil.rmtree(i / "model"), "model channel is missing"),
        (lambda i: (i / "model" / "model.tar.gz").write_bytes(b"not gzip"), "cannot extract"),
        (
            lambda i: (i / "test" / "test.jsonl").write_text('{"messages": [}\n'),
            "line 1: not valid JSON",
        ),
        (
            lambda i: (i / "test" / "more.jsonl").write_text("{}\n"),
            "expected one JSONL test set file",
        ),
        (
            lambda i: (i / "test" / "test.jsonl").write_text(
                json.dumps({"messages": [{"role": "user", "content": "no answer"}]}) + "\n"
            ),
            "last turn must be the assistant",
        ),
    ],
    ids=[
        "config-not-json",
        "config-not-object",
        "no-test-set-uri",
        "no-output-uri",
        "gate-needs-base",
        "base-id-without-channel",
        "batch-size-zero",
        "no-config",
        "no-model",
        "model-not-an-archive",
        "test-set-bad-json",
        "two-test-files",
        "test-set-no-reference",
    ],
)
def test_bad_inputs_exit_2_with_one_message(
    full_archive: Path, tmp_path: Path, capsys, change, expected: str
) -> None:
    inputs, output = layout(tmp_path, model=full_archive)
    change(inputs)
    code, message = run_job(tmp_path, inputs, output)
    err = capsys.readouterr().err
    assert code == 2
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, err
    assert re.search(expected, lines[0]), lines[0]
    assert message.read_text() == lines[0]
    assert not (output / "outcome.json").exists()


def test_unexpected_failure_exits_1(
    full_archive: Path, tmp_path: Path, capsys, monkeypatch
) -> None:
    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("CUDA error: out of memory")

    monkeypatch.setattr("finetuning.evaluation.evaluator.evaluate", broken)
    inputs, output = layout(tmp_path, model=full_archive)
    code, message = run_job(tmp_path, inputs, output)
    assert code == 1
    assert "Traceback" in capsys.readouterr().err
    assert message.read_text() == "error: RuntimeError: CUDA error: out of memory"


def test_exit_message_is_cut_to_1_kb_of_utf8(tmp_path: Path) -> None:
    path = tmp_path / "output" / "message"
    processing.write_message("é" * 600, path)  # 1200 bytes
    data = path.read_bytes()
    assert len(data) == 1024
    assert data.decode("utf-8") == "é" * 512


def test_help_runs_as_a_module() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "finetuning.evaluation.processing", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    for text in ("--input-dir", "--output-dir", "training-metrics/", "outcome.json", "exit codes"):
        assert text in result.stdout
