"""Token counts and training-cost estimates from a dated price table.

Bedrock bills customization per token trained: "The number of epochs you specify increases
your model customization cost by processing more tokens. Each epoch processes the entire
training dataset once." (https://docs.aws.amazon.com/bedrock/latest/userguide/
cm-hp-titan-text.html and the other custom-model hyperparameter pages), plus a monthly
storage price per custom model. SageMaker bills training per instance-second, so its cost
is hours x instances x the instance price; hours come from the dataset's tokens and a
throughput the user measures (no table can know it for every model and setting).

Reinforcement fine-tuning and distillation are counted in their own units: RFT in prompt
tokens (the answers are generated during training and scored by the grader), distillation in
the tokens sent to the teacher and, at most, ``records x max response length`` tokens it
writes (the teacher's on-demand inference is billed per input and output token, then the
student is fine-tuned on the result). The teacher's list price comes from the on-demand price
table (``finetuning.evaluation.pricing``) when the teacher is named and listed there; training
prices come from the command line.

Only prices found published are in the tables; for anything else pass the price on the
command line. Update the tables (and their dates) when AWS changes prices.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from finetuning.data.models import resolve_model
from finetuning.data.validate import validate_path

__all__ = [
    "BEDROCK_PRICES_AS_OF",
    "BEDROCK_PRICE_SOURCE",
    "BEDROCK_STORAGE_PER_MONTH",
    "BEDROCK_TRAINING_PRICE_PER_1K",
    "SAGEMAKER_PRICES_AS_OF",
    "SAGEMAKER_PRICE_SOURCE",
    "SAGEMAKER_TRAINING_PRICE_PER_HOUR",
    "CostEstimate",
    "EstimateError",
    "estimate_cost",
]

# Amazon Bedrock model customization, us-east-1, USD, "Price to train 1,000 tokens" and
# "Price to store each custom model per month", from https://aws.amazon.com/bedrock/pricing/.
# The three families whose training price was confirmed in March 2024 (Cohere Command and
# Command Light, Titan Text Lite) are no longer customizable (finetuning/data/models.py).
# Searched again on 2026-12-05 for every current family and type (Nova and Nova 2 Lite
# fine-tuning, Nova 2 Lite RFT, distillation students, Llama, Claude 3 Haiku): the pricing
# page renders its customization prices client-side and no copy of them, nor another AWS
# page, could be read, so the table stays empty and --price-per-1k-tokens gives the price.
BEDROCK_PRICE_SOURCE = "https://aws.amazon.com/bedrock/pricing/"
BEDROCK_PRICES_AS_OF = "2026-12"
BEDROCK_TRAINING_PRICE_PER_1K: dict[str, float] = {}
BEDROCK_STORAGE_PER_MONTH = 1.95

# Amazon SageMaker training, on-demand, us-east-1, USD per instance-hour, as read from the AWS
# Price List API (service AmazonSageMaker, Training) in July 2026; the same figures are on
# https://aws.amazon.com/sagemaker/pricing/ under "Training".
SAGEMAKER_PRICE_SOURCE = "https://aws.amazon.com/sagemaker/pricing/"
SAGEMAKER_PRICES_AS_OF = "2026-07"
SAGEMAKER_TRAINING_PRICE_PER_HOUR: dict[str, float] = {
    "ml.g4dn.xlarge": 0.736,
    "ml.g5.xlarge": 1.408,
    "ml.g5.2xlarge": 1.515,
    "ml.g5.4xlarge": 2.03,
    "ml.g5.8xlarge": 3.06,
    "ml.g5.12xlarge": 7.09,
    "ml.g5.24xlarge": 10.18,
    "ml.g5.48xlarge": 20.36,
    "ml.g6e.2xlarge": 2.80,
    "ml.g6e.4xlarge": 3.76,
    "ml.g6e.8xlarge": 5.66,
    "ml.g6e.12xlarge": 13.10,
    "ml.p3.2xlarge": 3.825,
}


class EstimateError(ValueError):
    """An estimate cannot be made with the arguments given."""


@dataclass(frozen=True)
class CostEstimate:
    path: str
    model_id: str
    family: str
    backend: str
    records: int
    tokens: int
    tokens_exact: bool
    epochs: int
    trained_tokens: int
    validation_errors: int
    price_per_1k_tokens: float | None = None
    price_per_hour: float | None = None
    instance_type: str | None = None
    instance_count: int = 1
    tokens_per_second: float | None = None
    hours: float | None = None
    training_cost: float | None = None
    storage_per_month: float | None = None
    price_source: str = ""
    prices_as_of: str = ""
    note: str = ""
    customization: str = "FINE_TUNING"
    # DISTILLATION: tokens sent to the teacher, the most it may write, and their cost.
    teacher_input_tokens: int | None = None
    teacher_max_output_tokens: int | None = None
    teacher_cost: float | None = None
    teacher_model: str | None = None
    teacher_price_per_1k_input: float | None = None
    teacher_price_per_1k_output: float | None = None
    # Where the teacher's prices came from: "command line", or the list-price table's entry.
    teacher_prices_from: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def lines(self) -> list[str]:
        kind = "tokens" if self.tokens_exact else "tokens (estimated)"
        lines = [
            f"{self.path}: {self.records:,} records, {self.tokens:,} {kind} for "
            f"{self.model_id} ({self.family})",
            f"trained tokens: {self.tokens:,} x {self.epochs} epochs = {self.trained_tokens:,}",
        ]
        if self.customization == "REINFORCEMENT_FINE_TUNING":
            lines[1] = (
                f"prompt tokens: {self.tokens:,} x {self.epochs} epochs = "
                f"{self.trained_tokens:,} (answers are generated and graded during training)"
            )
        if self.customization == "DISTILLATION":
            answers = (
                f" + at most {self.teacher_max_output_tokens:,} teacher tokens"
                if self.teacher_max_output_tokens is not None
                else " (+ the teacher's answers: pass --teacher-max-response-length)"
            )
            lines[1] = (
                f"student training tokens: ({self.tokens:,} prompt tokens{answers}) x "
                f"{self.epochs} epochs = at most {self.trained_tokens:,}"
            )
        if self.teacher_input_tokens is not None:
            most = (
                f"at most {self.teacher_max_output_tokens:,} output tokens"
                if self.teacher_max_output_tokens is not None
                else "output up to the max response length per prompt"
            )
            lines.append(f"teacher: {self.teacher_input_tokens:,} input tokens, {most}")
        priced = None not in (self.teacher_price_per_1k_input, self.teacher_price_per_1k_output)
        if self.teacher_model and not priced:
            lines.append(
                f"note: no on-demand list price for {self.teacher_model} in the table; pass "
                f"--teacher-price-per-1k-input and --teacher-price-per-1k-output (see "
                f"{BEDROCK_PRICE_SOURCE})"
            )
        if priced:
            lines.append(
                f"teacher prices: ${self.teacher_price_per_1k_input:g} input, "
                f"${self.teacher_price_per_1k_output:g} output per 1,000 tokens "
                f"({self.teacher_prices_from})"
            )
        if self.teacher_cost is not None:
            lines.append(f"estimated teacher inference cost: at most ${self.teacher_cost:,.2f}")
        if self.validation_errors:
            lines.append(
                f"warning: the file has {self.validation_errors:,} validation errors; run "
                "`finetune data validate` before training"
            )
        if self.price_per_1k_tokens is not None:
            lines.append(f"price: ${self.price_per_1k_tokens:g} per 1,000 tokens trained")
        if self.price_per_hour is not None:
            lines.append(
                f"price: ${self.price_per_hour:g} per hour of {self.instance_type} "
                f"x {self.instance_count}"
            )
        if self.hours is not None:
            lines.append(
                f"training time: {self.hours:,.2f} hours at {self.tokens_per_second:,.0f} "
                "tokens per second per instance"
            )
        if self.training_cost is not None:
            lines.append(f"estimated training cost: ${self.training_cost:,.2f}")
        if self.storage_per_month is not None:
            lines.append(f"custom model storage: ${self.storage_per_month:g} per month")
        if self.note:
            lines.append(f"note: {self.note}")
        if self.price_source:
            lines.append(f"prices: {self.price_source} (us-east-1, as of {self.prices_as_of})")
        return lines


def estimate_cost(
    path: str | os.PathLike[str],
    model_id: str,
    *,
    epochs: int,
    instance_type: str | None = None,
    instance_count: int = 1,
    tokens_per_second: float | None = None,
    price_per_1k_tokens: float | None = None,
    price_per_hour: float | None = None,
    token_counter: Callable[[str], int] | None = None,
    s3_client: Any = None,
    customization: str = "FINE_TUNING",
    teacher_max_response_length: int | None = None,
    teacher_price_per_1k_input: float | None = None,
    teacher_price_per_1k_output: float | None = None,
    teacher_model: str | None = None,
) -> CostEstimate:
    """Count the tokens of ``path`` (one validation pass) and price ``epochs`` of training.

    ``customization`` ``REINFORCEMENT_FINE_TUNING`` counts prompt tokens of RFT records;
    ``DISTILLATION`` counts the teacher's input and (with ``teacher_max_response_length``) its
    most output, priced with the teacher's per-1,000-token prices when given, or else with the
    list price of ``teacher_model`` (checked against the distillation table) when it has one.

    Raises:
        EstimateError: bad numbers, or an instance type with no price and no override.
        UnknownModelError: a Bedrock model id without rules.
    """
    if epochs < 1:
        raise EstimateError(f"epochs must be at least 1, found {epochs}")
    for name, value in (
        ("tokens per second", tokens_per_second),
        ("price per 1,000 tokens", price_per_1k_tokens),
        ("price per hour", price_per_hour),
        ("teacher input price", teacher_price_per_1k_input),
        ("teacher output price", teacher_price_per_1k_output),
        ("teacher maximum response length", teacher_max_response_length),
    ):
        if value is not None and value <= 0:
            raise EstimateError(f"{name} must be positive, found {value}")
    family = resolve_model(model_id)
    # Arguments first: a wrong flag is named before the data is read.
    if family.is_bedrock and instance_type:
        raise EstimateError("--instance-type applies to SageMaker (open) models only")
    if not family.is_bedrock and not instance_type:
        raise EstimateError(
            "open models train on SageMaker: pass --instance-type (for example ml.g5.2xlarge)"
        )
    special = customization in ("REINFORCEMENT_FINE_TUNING", "DISTILLATION")
    if special and not family.is_bedrock:
        raise EstimateError(f"{customization} is a Bedrock customization type")
    teacher_prices = _teacher_prices(
        customization,
        model_id,
        teacher_model,
        teacher_price_per_1k_input,
        teacher_price_per_1k_output,
    )
    report = validate_path(
        path,
        model_id,
        max_problems=0,
        token_counter=token_counter,
        s3_client=s3_client,
        customization=customization if special else None,
    )
    if report.tokens == 0:
        # An empty, binary or wholly invalid file has nothing to price: a $0 estimate with a
        # warning would read as "free" (issue #13).
        found = f"{report.records} records counted, {report.errors} validation errors"
        raise EstimateError(
            f"{path}: no valid record to count ({found}); "
            f"run `finetune data validate {path} --model {model_id}` to see why"
        )
    trained = report.tokens * epochs
    common = dict(
        path=str(path),
        model_id=model_id,
        family=family.name,
        backend=family.backend,
        records=report.records,
        tokens=report.tokens,
        tokens_exact=report.tokens_exact,
        epochs=epochs,
        trained_tokens=trained,
        validation_errors=report.errors,
        customization=customization,
    )
    if customization == "DISTILLATION":
        teacher_output = (
            report.records * teacher_max_response_length if teacher_max_response_length else None
        )
        teacher_cost = None
        price_in, price_out, prices_from = teacher_prices
        if price_in is not None and price_out is not None:
            if teacher_output is None:
                raise EstimateError(
                    "the teacher's cost needs --teacher-max-response-length (the most tokens "
                    "it writes per prompt)"
                )
            teacher_cost = report.tokens / 1000 * price_in + teacher_output / 1000 * price_out
        common.update(
            teacher_input_tokens=report.tokens,
            teacher_max_output_tokens=teacher_output,
            teacher_cost=teacher_cost,
            teacher_model=teacher_model,
            teacher_price_per_1k_input=price_in,
            teacher_price_per_1k_output=price_out,
            teacher_prices_from=prices_from,
            # The student trains on the prompts and the teacher's answers (at most).
            trained_tokens=(report.tokens + (teacher_output or 0)) * epochs,
        )
    if family.is_bedrock:
        price = price_per_1k_tokens
        if price is None:
            price = next(
                (cost for key, cost in BEDROCK_TRAINING_PRICE_PER_1K.items() if key in model_id),
                None,
            )
        note = (
            ""
            if price is not None
            else (
                f"no training price for {family.display_name} in the table; pass "
                f"--price-per-1k-tokens (see {BEDROCK_PRICE_SOURCE})"
            )
        )
        return CostEstimate(
            **common,
            price_per_1k_tokens=price,
            # Distillation trains the student on the prompts and the teacher's answers.
            training_cost=None if price is None else common["trained_tokens"] / 1000 * price,
            # No storage price is published for the open-weight RFT models (their tuned models
            # are used on demand through the OpenAI-compatible APIs,
            # https://docs.aws.amazon.com/bedrock/latest/userguide/fine-tuning-openai-apis.html).
            storage_per_month=None if family.only_customization else BEDROCK_STORAGE_PER_MONTH,
            price_source=BEDROCK_PRICE_SOURCE,
            prices_as_of=BEDROCK_PRICES_AS_OF,
            note=note,
        )
    hourly = price_per_hour or SAGEMAKER_TRAINING_PRICE_PER_HOUR.get(instance_type)
    if hourly is None:
        known = ", ".join(SAGEMAKER_TRAINING_PRICE_PER_HOUR)
        raise EstimateError(
            f"no price for {instance_type} in the table ({known}); pass --price-per-hour"
        )
    hours = cost = None
    note = ""
    if tokens_per_second is None:
        note = (
            "pass --tokens-per-second (measure it with a short run of train.py on the same "
            "instance) to get hours and cost"
        )
    else:
        hours = trained / (tokens_per_second * instance_count) / 3600
        cost = hours * hourly * instance_count
    return CostEstimate(
        **common,
        price_per_hour=hourly,
        instance_type=instance_type,
        instance_count=instance_count,
        tokens_per_second=tokens_per_second,
        hours=hours,
        training_cost=cost,
        price_source=SAGEMAKER_PRICE_SOURCE,
        prices_as_of=SAGEMAKER_PRICES_AS_OF,
        note=note,
    )


def _teacher_prices(
    customization: str,
    student: str,
    teacher_model: str | None,
    price_in: float | None,
    price_out: float | None,
) -> tuple[float | None, float | None, str]:
    """The teacher's input and output prices per 1,000 tokens and where they came from: the
    command line, else the on-demand list price of the named teacher (a pair of the
    distillation table), else none."""
    from finetuning.aws_jobs.bedrock_customization import (
        CustomizationRuleError,
        check_distillation_pair,
    )
    from finetuning.evaluation.pricing import on_demand_prices

    if teacher_model is None:
        return price_in, price_out, "command line"
    if customization != "DISTILLATION":
        raise EstimateError("--teacher-model applies to --customization-type DISTILLATION only")
    try:
        check_distillation_pair(teacher_model, student)
    except CustomizationRuleError as exc:
        raise EstimateError(str(exc)) from None
    if price_in is not None and price_out is not None:
        return price_in, price_out, "command line"
    listed = on_demand_prices(teacher_model)
    if listed is None:
        return price_in, price_out, "command line"
    return (
        listed.input_per_1k if price_in is None else price_in,
        listed.output_per_1k if price_out is None else price_out,
        # The on-demand list prices the evaluation uses too (finetuning/evaluation/pricing.py).
        f"on-demand list price of {teacher_model}, {BEDROCK_PRICE_SOURCE}",
    )
