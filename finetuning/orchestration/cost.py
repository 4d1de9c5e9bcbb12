"""Cost estimate of a finished job: what it used, priced from a dated price table.

Usage is exact where the service reports it (SageMaker ``BillableTimeInSeconds``, which
already reflects managed spot savings) and estimated otherwise (Bedrock bills trained
tokens: dataset tokens from validation, which are an estimate for most families, times
epochs). Prices come from the dataset toolkit's dated tables (``finetuning.data.estimate``,
us-east-1), overridden by the settings (``orchestration.prices``, passed to the function as
JSON) for other regions or newer prices; an estimate without a price says so instead of
guessing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from finetuning.orchestration.aws_jobs.backends import Backend
from finetuning.orchestration.manifest import JobManifest
from finetuning.orchestration.state import JobState

# Bedrock hyperparameter names for the epoch count, by model family, see
# https://docs.aws.amazon.com/bedrock/latest/userguide/custom-models-hp.html
EPOCH_HYPERPARAMETERS = ("epochCount", "epochs")
DEFAULT_EPOCHS = 1


@dataclass(frozen=True)
class PriceTable:
    """USD prices: per instance-hour (SageMaker training) and per 1,000 trained tokens
    (Bedrock customization, keyed by base model id), with the date and page they came from."""

    instance_hour: Mapping[str, float] = field(default_factory=dict)
    per_thousand_tokens: Mapping[str, float] = field(default_factory=dict)
    as_of: str | None = None
    source: str | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PriceTable:
        return cls(
            instance_hour={k: float(v) for k, v in (data.get("instance_hour") or {}).items()},
            per_thousand_tokens={
                k: float(v) for k, v in (data.get("per_thousand_tokens") or {}).items()
            },
            as_of=data.get("as_of"),
            source=data.get("source"),
        )

    @classmethod
    def published(cls) -> PriceTable:
        """The dataset toolkit's dated tables (finetuning.data.estimate, sources named there)."""
        from finetuning.data import estimate

        return cls(
            instance_hour=dict(estimate.SAGEMAKER_TRAINING_PRICE_PER_HOUR),
            per_thousand_tokens=dict(estimate.BEDROCK_TRAINING_PRICE_PER_1K),
            as_of=f"SageMaker {estimate.SAGEMAKER_PRICES_AS_OF}, "
            f"Bedrock {estimate.BEDROCK_PRICES_AS_OF}",
            source=f"{estimate.SAGEMAKER_PRICE_SOURCE} {estimate.BEDROCK_PRICE_SOURCE}",
        )

    def overridden_by(self, other: PriceTable) -> PriceTable:
        """These prices with ``other``'s on top (settings override the published table)."""
        return PriceTable(
            instance_hour={**self.instance_hour, **other.instance_hour},
            per_thousand_tokens={**self.per_thousand_tokens, **other.per_thousand_tokens},
            as_of=other.as_of or self.as_of,
            source=other.source or self.source,
        )

    def token_price(self, model_id: str) -> float | None:
        """Exact id first, else the longest id the model's id starts with
        (``amazon.titan-text-lite-v1`` prices ``amazon.titan-text-lite-v1:0:4k``)."""
        if model_id in self.per_thousand_tokens:
            return self.per_thousand_tokens[model_id]
        matches = [key for key in self.per_thousand_tokens if model_id.startswith(key)]
        return self.per_thousand_tokens[max(matches, key=len)] if matches else None


def _epochs(manifest: JobManifest) -> int:
    for name in EPOCH_HYPERPARAMETERS:
        if name in manifest.hyperparameters:
            try:
                return max(1, int(float(manifest.hyperparameters[name])))
            except (TypeError, ValueError):
                break
    return DEFAULT_EPOCHS


def estimate(
    manifest: JobManifest,
    state: JobState,
    *,
    dataset_tokens: int | None,
    prices: PriceTable,
) -> dict[str, Any]:
    """``{"usage": {...}, "estimated_usd": float | None, "basis": "..."}``."""
    result: dict[str, Any] = {"estimated_usd": None, "currency": "USD"}
    if manifest.backend == Backend.SAGEMAKER:
        instance_type = state.usage.get("instance_type") or manifest.instance_type
        count = int(state.usage.get("instance_count") or manifest.instance_count)
        seconds = state.usage.get("billable_seconds")
        result["usage"] = {
            "instance_type": instance_type,
            "instance_count": count,
            "billable_seconds": seconds,
            "spot": state.usage.get("spot", manifest.use_spot_instances),
        }
        price = prices.instance_hour.get(str(instance_type))
        if seconds is None:
            result["basis"] = "SageMaker reported no billable time"
        elif price is None:
            result["basis"] = f"no instance-hour price for {instance_type} in the price table"
        else:
            result["estimated_usd"] = round(seconds / 3600 * count * price, 4)
            result["basis"] = f"{seconds} s x {count} x {price} USD/h"
    else:
        epochs = _epochs(manifest)
        tokens = dataset_tokens * epochs if dataset_tokens is not None else None
        result["usage"] = {"dataset_tokens": dataset_tokens, "epochs": epochs, "tokens": tokens}
        price = prices.token_price(manifest.base_model)
        if tokens is None:
            result["basis"] = "dataset token count unknown"
        elif price is None:
            result["basis"] = f"no per-1k-token price for {manifest.base_model} in the price table"
        else:
            result["estimated_usd"] = round(tokens / 1000 * price, 4)
            result["basis"] = f"{tokens} tokens x {price} USD/1k (tokens estimated)"
    if prices.as_of:
        result["prices_as_of"] = prices.as_of
    if prices.source:
        result["prices_source"] = prices.source
    return result
