"""Notification texts, cost estimates and the orchestration settings."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from finetuning.orchestration import notifications
from finetuning.orchestration.cost import PriceTable, estimate
from finetuning.orchestration.manifest import parse_manifest
from finetuning.orchestration.records import JobStatus
from finetuning.orchestration.state import JobState, finite_metrics
from stacks.settings.orchestration import OrchestrationSettings
from tests.support.platform_fakes import bedrock_manifest, sagemaker_manifest

JOB = {
    "job_id": "support-bot-0123456789",
    "job_name": "support-bot",
    "backend": "sagemaker",
    "base_model": "s3://bucket/models/base/",
    "stage": "training",
    "metrics": {"train_loss": 0.123456789, "eval_loss": 0.5},
    "artifacts": {"model_uri": "s3://bucket/models/final/x/model.tar.gz"},
    "cost": {"estimated_usd": 1.5, "basis": "3600 s x 1 x 1.5 USD/h"},
    "execution_arn": "arn:aws:states:us-east-1:123456789012:execution:m:support-bot-0123456789",
}


def test_success_message_names_job_status_metrics_and_links() -> None:
    message = notifications.job_succeeded("llm-finetuning-dev", "eu-west-1", JOB)
    assert (
        message.subject == "[llm-finetuning-dev] Fine-tuning job support-bot-0123456789 completed"
    )
    body = message.body
    assert "Status:     completed" in body
    assert "train_loss: 0.123457" in body and "eval_loss: 0.5" in body
    assert "Estimated cost: 1.5 USD" in body
    assert (
        "https://eu-west-1.console.aws.amazon.com/states/home?region=eu-west-1#/v2/executions/"
        "details/arn%3Aaws%3Astates%3Aus-east-1%3A123456789012%3Aexecution" in body
    )
    assert "sagemaker/home?region=eu-west-1#/jobs/support-bot-0123456789" in body


def test_failure_and_expiry_messages() -> None:
    failed = notifications.job_failed(
        "p-dev",
        "us-east-1",
        JOB,
        status="failed",
        error="JobFailedError",
        cause="out of memory",
        cleaned_up=["stopped sagemaker job x"],
    )
    assert failed.subject.endswith("failed: JobFailedError")
    assert "Cause:      out of memory" in failed.body and "stopped sagemaker job x" in failed.body
    warning = notifications.expiry_warning(
        "p-dev",
        "us-east-1",
        kind="endpoint",
        name="ep",
        arn="arn:ep",
        expires_at="2026-01-01T00:00:00Z",
        job_id="j",
    )
    assert "finetuning:keep=true" in warning.body and warning.kind == "expiry-warning"
    long_subject = notifications.job_failed(
        "p-dev", "us-east-1", JOB, status="failed", error="E" * 200, cause="", cleaned_up=[]
    ).subject
    assert len(long_subject) == notifications.SUBJECT_LIMIT and long_subject.endswith("...")


def test_sagemaker_cost_from_billable_seconds_and_published_prices() -> None:
    manifest = parse_manifest(sagemaker_manifest(instance_count=2))
    state = JobState(
        job_name="x",
        status=JobStatus.COMPLETED,
        backend_status="Completed",
        usage={"instance_type": "ml.g5.2xlarge", "instance_count": 2, "billable_seconds": 1800},
    )
    prices = PriceTable.published()
    result = estimate(manifest, state, dataset_tokens=None, prices=prices)
    hourly = prices.instance_hour["ml.g5.2xlarge"]
    assert result["estimated_usd"] == pytest.approx(0.5 * 2 * hourly)
    assert result["prices_source"].startswith("https://aws.amazon.com/sagemaker/pricing/")


def test_bedrock_cost_uses_tokens_times_epochs_and_says_when_unpriced() -> None:
    prices = PriceTable.published().overridden_by(
        PriceTable(per_thousand_tokens={"amazon.nova-lite-v1": 0.002}, as_of="2026-01")
    )
    manifest = parse_manifest(bedrock_manifest())  # epochCount 2
    state = JobState(job_name="x", status=JobStatus.COMPLETED, backend_status="Completed")
    result = estimate(manifest, state, dataset_tokens=50_000, prices=prices)
    assert result["usage"] == {"dataset_tokens": 50_000, "epochs": 2, "tokens": 100_000}
    assert result["estimated_usd"] == pytest.approx(0.2)
    assert result["prices_as_of"] == "2026-01"
    unpriced = estimate(
        parse_manifest(bedrock_manifest(base_model="meta.llama3-1-8b-instruct-v1:0")),
        state,
        dataset_tokens=10,
        prices=PriceTable(),
    )
    assert unpriced["estimated_usd"] is None and "no per-1k-token price" in unpriced["basis"]


def test_metrics_drop_values_json_and_dynamodb_cannot_hold() -> None:
    assert finite_metrics({"a": 1, "b": float("nan"), "c": float("inf"), "d": True, "e": "x"}) == {
        "a": 1.0
    }


def test_orchestration_settings_validation() -> None:
    settings = OrchestrationSettings()
    assert settings.max_polls == 72 and settings.cleanup_interval_minutes == 60
    assert OrchestrationSettings(cleanup_schedule="rate(30 minutes)").cleanup_interval_minutes == 30
    with pytest.raises(ValidationError, match="rate expression"):
        OrchestrationSettings(cleanup_schedule="cron(0 * * * ? *)")
    with pytest.raises(ValidationError, match="expected email addresses"):
        OrchestrationSettings(notification_emails=("not-an-email",))
    with pytest.raises(ValidationError, match="exceeds max_job_hours"):
        OrchestrationSettings(poll_interval_minutes=180, max_job_hours=2)
    with pytest.raises(ValidationError, match="inside the serving lifetime"):
        OrchestrationSettings(expiry_warning_hours=24, default_serving_hours=24)
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        OrchestrationSettings(unknown=1)
