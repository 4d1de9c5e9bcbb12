"""On-demand serving of Bedrock custom models: which models can be deployed on demand, and
the CreateCustomModelDeployment request (the library's ``BedrockInference`` and the
workflow both build it here).

An on-demand custom model deployment has no hourly charge: its tokens are billed as used.
Bedrock allows one only for some base models, customization types, Regions and models
customized after a date; everything else needs Provisioned Throughput.

The conditions, from the docs:
https://docs.aws.amazon.com/bedrock/latest/userguide/deploy-custom-model-on-demand.html
  ("Supported base models": Amazon Nova Lite, Micro, Pro; Regions: US East (N. Virginia),
  US West (Oregon); "You must customize the model on or after 7/16/2025")
https://docs.aws.amazon.com/nova/latest/userguide/custom-fine-tune-odi.html
  (Nova Pro, Lite and Micro custom *understanding* models trained after July 16, 2025;
  models customized with Bedrock customization and students distilled with Bedrock)
https://docs.aws.amazon.com/nova/latest/userguide/deploy-custom-model.html
  (deployable after a fine-tuning, distillation or continued pre-training job)
Nova Canvas (image generation) is listed on the last page too, but the platform tunes no
image models. Models the pages do not list (Nova 2 Lite, Titan, Llama, Claude 3 Haiku) and
reinforcement fine-tuning are treated as not eligible until the docs list them.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any

from finetuning.aws_jobs.tags import as_key_value_list

# Base model id prefixes (the id before its ':' version) -> the name the docs give.
# "amazon.nova-lite" does not match "amazon.nova-2-lite" (Nova 2 is not listed).
ON_DEMAND_BASE_MODELS: dict[str, str] = {
    "amazon.nova-micro": "Amazon Nova Micro",
    "amazon.nova-lite": "Amazon Nova Lite",
    "amazon.nova-pro": "Amazon Nova Pro",
}
ON_DEMAND_REGIONS: tuple[str, ...] = ("us-east-1", "us-west-2")
ON_DEMAND_CUSTOMIZATION_TYPES: tuple[str, ...] = (
    "FINE_TUNING",
    "DISTILLATION",
    "CONTINUED_PRE_TRAINING",
)
CUSTOMIZED_ON_OR_AFTER = date(2025, 7, 16)

# GetCustomModelDeployment status values (Creating | Active | Failed), see
# https://docs.aws.amazon.com/bedrock/latest/APIReference/API_GetCustomModelDeployment.html
DEPLOYMENT_CREATING = "Creating"
DEPLOYMENT_ACTIVE = "Active"
DEPLOYMENT_FAILED = "Failed"


def _model_id(base_model: str) -> str:
    """``amazon.nova-lite-v1:0:300k`` or a foundation-model ARN -> ``amazon.nova-lite-v1``."""
    model = base_model.rsplit("/", 1)[-1] if base_model.startswith("arn:") else base_model
    return model.split(":", 1)[0]


def base_model_name(base_model: str) -> str | None:
    """The docs' name of an eligible base model, or None."""
    model = _model_id(base_model)
    for prefix, name in ON_DEMAND_BASE_MODELS.items():
        if model == prefix or model.startswith(f"{prefix}-"):
            return name
    return None


def ineligibility(
    base_model: str,
    customization_type: str,
    *,
    region: str | None = None,
    customized_at: datetime | None = None,
) -> str | None:
    """Why a custom model of this base model cannot be deployed on demand, or None.

    ``region`` and ``customized_at`` are checked when given (a manifest alone knows
    neither; the workflow checks the Region before any job starts)."""
    if base_model_name(base_model) is None:
        listed = ", ".join(ON_DEMAND_BASE_MODELS.values())
        return (
            f"base model {base_model} is not one Bedrock deploys on demand after "
            f"customization (supported: {listed})"
        )
    if customization_type not in ON_DEMAND_CUSTOMIZATION_TYPES:
        return (
            f"customization type {customization_type} is not one Bedrock deploys on demand "
            f"(supported: {', '.join(ON_DEMAND_CUSTOMIZATION_TYPES)})"
        )
    if region is not None and region not in ON_DEMAND_REGIONS:
        return (
            f"Region {region} has no on-demand custom model deployments "
            f"(supported: {', '.join(ON_DEMAND_REGIONS)})"
        )
    if customized_at is not None:
        day = (customized_at.astimezone(UTC) if customized_at.tzinfo else customized_at).date()
        if day < CUSTOMIZED_ON_OR_AFTER:
            return (
                f"the model was customized on {day.isoformat()}; on-demand deployment needs "
                f"a model customized on or after {CUSTOMIZED_ON_OR_AFTER.isoformat()}"
            )
    return None


def custom_model_deployment_request(
    *,
    model_arn: str,
    deployment_name: str,
    description: str | None = None,
    tags: Mapping[str, str] | None = None,
    client_request_token: str | None = None,
) -> dict[str, Any]:
    """CreateCustomModelDeployment arguments (modelDeploymentName and modelArn required;
    description, tags and clientRequestToken optional), see
    https://docs.aws.amazon.com/bedrock/latest/APIReference/API_CreateCustomModelDeployment.html
    """
    request: dict[str, Any] = {"modelDeploymentName": deployment_name, "modelArn": model_arn}
    if description:
        request["description"] = description
    if tags:
        request["tags"] = as_key_value_list(tags)
    if client_request_token:
        request["clientRequestToken"] = client_request_token
    return request
