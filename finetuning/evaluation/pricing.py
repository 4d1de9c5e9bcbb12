"""Token prices for the estimated cost of an evaluation run.

Only on-demand Bedrock base models are priced per token. A provisioned model, a custom model
deployment or a SageMaker endpoint bills by the hour whatever the evaluation sends, so their
token cost is unknown (None) unless prices are given explicitly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class TokenPrices:
    """US dollars per 1,000 input and output tokens."""

    input_per_1k: float
    output_per_1k: float

    def __post_init__(self) -> None:
        if self.input_per_1k < 0 or self.output_per_1k < 0:
            raise ValueError(
                f"token prices must be >= 0, got input {self.input_per_1k} "
                f"and output {self.output_per_1k} per 1k tokens"
            )

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        return round(
            input_tokens / 1000 * self.input_per_1k + output_tokens / 1000 * self.output_per_1k, 10
        )


# On-demand list prices in us-east-1, USD per 1,000 tokens (input, output), from
# https://aws.amazon.com/bedrock/pricing/ ; prices change and differ by region, so
# `finetune evaluate --input-price-per-1k/--output-price-per-1k` override them.
ON_DEMAND_PRICES: dict[str, TokenPrices] = {
    "amazon.nova-micro-v1": TokenPrices(0.000035, 0.00014),
    "amazon.nova-lite-v1": TokenPrices(0.00006, 0.00024),
    "amazon.nova-pro-v1": TokenPrices(0.0008, 0.0032),
    "anthropic.claude-3-haiku-20240307-v1": TokenPrices(0.00025, 0.00125),
    "amazon.titan-text-express-v1": TokenPrices(0.0002, 0.0006),
    "amazon.titan-text-lite-v1": TokenPrices(0.00015, 0.0002),
}

_REGION_PREFIX = re.compile(r"^(us|eu|apac|us-gov|global|ca|jp|au)\.")


def base_model_key(model_id: str) -> str:
    """``us.amazon.nova-lite-v1:0`` or a foundation-model ARN -> ``amazon.nova-lite-v1``."""
    key = model_id.rsplit("/", 1)[-1] if model_id.startswith("arn:") else model_id
    key = _REGION_PREFIX.sub("", key)
    return key.split(":", 1)[0]


def on_demand_prices(model_id: str) -> TokenPrices | None:
    """List prices for an on-demand base model id, or None (unknown or not billed per token)."""
    if model_id.startswith("arn:") and ":foundation-model/" not in model_id:
        return None
    return ON_DEMAND_PRICES.get(base_model_key(model_id))
