"""Reports: markdown with PNG charts, self-contained HTML, escaping, and upload to S3 (moto)."""

from __future__ import annotations

import base64
import io
import re

import boto3
import pytest
from moto import mock_aws
from PIL import Image

from finetuning.evaluation.curves import LossCurves, Point
from finetuning.evaluation.document import EvaluationDocument, ModelRun
from finetuning.evaluation.evaluator import regate
from finetuning.evaluation.gate import QualityGate
from finetuning.evaluation.report import confusion_chart, upload_report, write_report
from finetuning.evaluation.scoring import Task, score_results


def run(name: str, answers: list[str], truth: list[str]) -> ModelRun:
    results = [
        {
            "sample_id": f"/data/{i}.png",
            "image_path": f"/data/{i}.png",
            "status": "success",
            "response_text": f'{{"type": "{answer}"}}',
            "inference_time_seconds": 0.5 + i / 10,
            "input_tokens": 800,
            "output_tokens": 12,
        }
        for i, answer in enumerate(answers)
    ]
    metrics = score_results(results, truth, task=Task.CLASSIFICATION)
    return ModelRun(name, f"model-{name}", "bedrock", results, metrics)


@pytest.fixture
def document() -> EvaluationDocument:
    truth = ["invoice", "invoice", "letter", "letter", "a<b", "a<b"]
    tuned = run(
        "Fine-tuned Model",
        ["invoice", "invoice", "letter", "letter", "a<b", "letter"],
        truth,
    )
    base = run("Base Model", ["invoice", "letter", "letter", "memo", "a<b", "invoice"], truth)
    doc = EvaluationDocument(tuned=tuned, base=base, parameters={"max_tokens": 512})
    return regate(
        doc, QualityGate(min={"accuracy": 0.9}, min_improvement_over_base={"accuracy": 0.05})
    )


def curves() -> LossCurves:
    return LossCurves(
        training=[Point(s, 2.0 / (s + 1)) for s in range(10)],
        validation=[Point(s, 2.2 / (s + 1)) for s in (3, 6, 9)],
        sources=["training_metrics.csv"],
    )


def test_report_files_and_charts(tmp_path, document):
    files = write_report(document, tmp_path / "report", curves=curves())
    names = sorted(p.name for p in files.charts)
    assert names == [
        "confusion-base-model.png",
        "confusion-fine-tuned-model.png",
        "latency.png",
        "loss-curves.png",
        "per-class-f1.png",
        "quality.png",
    ]
    for chart in files.charts:
        with Image.open(chart) as image:
            assert image.format == "PNG"
            assert image.width > 300 and image.height > 200
    markdown = files.markdown.read_text()
    for chart in files.charts:
        assert f"(charts/{chart.name})" in markdown
    assert "## Quality gate: FAILED" in markdown
    assert "| FAIL | min | accuracy | accuracy 0.8333 < 0.9 |" in markdown
    assert "| Accuracy | 0.8333 | 0.5000 | +0.3333 |" in markdown


def test_html_is_self_contained_and_escaped(tmp_path, document):
    files = write_report(document, tmp_path, curves=curves(), title="Deeds <v2>")
    page = files.html.read_text()
    # nothing is fetched: no external URLs, stylesheets or scripts
    assert not re.search(r'(src|href)="(?!data:)', page)
    assert "<script" not in page and "<link" not in page
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(images) == len(files.charts)
    for data in images:
        with Image.open(io.BytesIO(base64.b64decode(data))) as image:
            assert image.format == "PNG"
    assert "<title>Deeds &lt;v2&gt;</title>" in page
    assert "a&lt;b" in page
    assert "a<b" not in page
    assert 'class="verdict fail">FAILED' in page


def test_single_model_report_without_curves(tmp_path, document):
    single = EvaluationDocument(tuned=document.tuned)
    files = write_report(single, tmp_path)
    assert {p.name for p in files.charts} == {
        "quality.png",
        "per-class-f1.png",
        "confusion-fine-tuned-model.png",
        "latency.png",
    }
    assert "Change" not in files.markdown.read_text()


def test_same_document_gives_same_png_bytes(document):
    # no timestamps in the PNGs: a report rebuilt from the same results is byte-identical
    assert confusion_chart(document.tuned).png == confusion_chart(document.tuned).png


def test_upload_report_to_evaluation_prefix(tmp_path, document, fake_aws_credentials):
    files = write_report(EvaluationDocument(tuned=document.tuned), tmp_path / "report")
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="evaluation")
        uris = upload_report(
            files.all, files.directory, "s3://evaluation/evaluation/reports/run-1", s3
        )
        assert "s3://evaluation/evaluation/reports/run-1/report.html" in uris
        assert "s3://evaluation/evaluation/reports/run-1/charts/quality.png" in uris
        head = s3.head_object(Bucket="evaluation", Key="evaluation/reports/run-1/report.html")
        assert head["ContentType"] == "text/html; charset=utf-8"
        with pytest.raises(ValueError, match="expected an s3:// URI"):
            upload_report(files.all, files.directory, "evaluation/reports", s3)
