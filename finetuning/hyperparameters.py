"""Hyperparameter names, types and ranges: per Bedrock model family, and for ``train.py``.

Bedrock rejects a customization job whose hyperparameters are out of range only after the
request is made (and some mistakes, such as ``batchSize`` for Nova, silently did nothing in
the old tooling). Checking here, against the tables Bedrock documents, turns each of them into
an error that names the field and lists what is allowed, before any AWS call.

Open-model backends (``sagemaker``, ``local``) pass hyperparameters to ``train.py`` as
``--name value``; their names and types come from ``training_scripts/arguments.py`` itself, so
this module cannot drift from the script.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from finetuning.errors import HyperparameterError, InvalidJobConfigError
from finetuning.orchestration.aws_jobs.hyperparameter_values import plain_decimal


@dataclass(frozen=True)
class HyperparameterSpec:
    """One row of a Bedrock hyperparameter table."""

    name: str
    kind: type  # int or float
    minimum: float
    maximum: float
    default: float
    description: str

    def describe(self) -> str:
        low, high = plain_decimal(self.minimum), plain_decimal(self.maximum)
        return f"{self.name} ({self.kind.__name__}, {low}-{high})"


@dataclass(frozen=True)
class HyperparameterTable:
    """Bedrock base models that share one hyperparameter table."""

    key: str
    display_name: str
    # Base model id prefixes (the part of the id before ':' versions), e.g. amazon.nova-lite.
    model_id_prefixes: tuple[str, ...]
    hyperparameters: tuple[HyperparameterSpec, ...]
    doc_url: str
    # Bedrock supports on-demand custom model deployment for this family (no Provisioned
    # Throughput needed to invoke the custom model).
    on_demand_deployment: bool = False

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(spec.name for spec in self.hyperparameters)

    def spec(self, name: str) -> HyperparameterSpec | None:
        return next((spec for spec in self.hyperparameters if spec.name == name), None)

    def defaults(self) -> dict[str, str]:
        return {spec.name: _format(spec.default, spec.kind) for spec in self.hyperparameters}


def _hp(name: str, kind: type, minimum: float, maximum: float, default: float, what: str):
    return HyperparameterSpec(name, kind, minimum, maximum, default, what)


_EPOCHS = "passes over the training data"
_LR = "learning rate"
_WARMUP = "steps over which the learning rate ramps up"
_BATCH = "samples per parameter update"

# Amazon Nova Micro, Lite and Pro: one table for all three.
# https://docs.aws.amazon.com/bedrock/latest/userguide/cm-hp-nova-mm.html
NOVA = HyperparameterTable(
    key="nova",
    display_name="Amazon Nova (Micro, Lite, Pro)",
    model_id_prefixes=("amazon.nova-micro", "amazon.nova-lite", "amazon.nova-pro"),
    hyperparameters=(
        _hp("epochCount", int, 1, 5, 2, _EPOCHS),
        _hp("learningRate", float, 1e-6, 1e-4, 1e-5, _LR),
        _hp("learningRateWarmupSteps", int, 0, 100, 10, _WARMUP),
    ),
    doc_url="https://docs.aws.amazon.com/bedrock/latest/userguide/cm-hp-nova-mm.html",
    # On-demand inference for custom Nova models:
    # https://docs.aws.amazon.com/bedrock/latest/userguide/deploy-custom-model-on-demand.html
    on_demand_deployment=True,
)

# Amazon Nova 2 Lite (supervised fine-tuning). The Bedrock hyperparameter reference has one
# table for the Nova understanding models (cm-hp-nova-mm, which names Micro, Lite and Pro)
# and no separate Nova 2 table, so Nova 2 Lite is checked against it; its customization id
# is on https://docs.aws.amazon.com/bedrock/latest/userguide/custom-model-supported.html.
# Reinforcement fine-tuning of Nova 2 Lite takes its own typed hyperparameters (rftConfig),
# checked by finetuning.orchestration.aws_jobs.bedrock_customization.
NOVA_2 = HyperparameterTable(
    key="nova-2",
    display_name="Amazon Nova 2 Lite",
    model_id_prefixes=("amazon.nova-2-lite",),
    hyperparameters=NOVA.hyperparameters,
    doc_url="https://docs.aws.amazon.com/bedrock/latest/userguide/cm-hp-nova-mm.html",
)

# Amazon Titan Text G1 - Lite and Express.
# https://docs.aws.amazon.com/bedrock/latest/userguide/cm-hp-titan-text.html
TITAN_TEXT = HyperparameterTable(
    key="titan-text",
    display_name="Amazon Titan Text (Lite, Express)",
    model_id_prefixes=("amazon.titan-text-lite", "amazon.titan-text-express"),
    hyperparameters=(
        _hp("epochCount", int, 1, 10, 5, _EPOCHS),
        _hp("batchSize", int, 1, 64, 1, _BATCH),
        _hp("learningRate", float, 0.0, 1.0, 1e-5, _LR),
        _hp("learningRateWarmupSteps", int, 0, 250, 5, _WARMUP),
    ),
    doc_url="https://docs.aws.amazon.com/bedrock/latest/userguide/cm-hp-titan-text.html",
)

# Amazon Titan Text G1 - Premier (same page, its own table).
# https://docs.aws.amazon.com/bedrock/latest/userguide/cm-hp-titan-text.html
TITAN_TEXT_PREMIER = HyperparameterTable(
    key="titan-text-premier",
    display_name="Amazon Titan Text Premier",
    model_id_prefixes=("amazon.titan-text-premier",),
    hyperparameters=(
        _hp("epochCount", int, 1, 5, 2, _EPOCHS),
        _hp("batchSize", int, 1, 1, 1, _BATCH),
        _hp("learningRate", float, 1e-7, 1e-5, 1e-6, _LR),
        _hp("learningRateWarmupSteps", int, 0, 20, 5, _WARMUP),
    ),
    doc_url="https://docs.aws.amazon.com/bedrock/latest/userguide/cm-hp-titan-text.html",
)

# Meta Llama 3.1 (8B, 70B Instruct) and 3.2 (1B, 3B, 11B, 90B Instruct) share one table.
# https://docs.aws.amazon.com/bedrock/latest/userguide/cm-hp-meta-llama31.html
# https://docs.aws.amazon.com/bedrock/latest/userguide/cm-hp-meta-llama32.html
LLAMA_3 = HyperparameterTable(
    key="llama3",
    display_name="Meta Llama 3.1 / 3.2",
    model_id_prefixes=("meta.llama3-1-", "meta.llama3-2-"),
    hyperparameters=(
        _hp("epochCount", int, 1, 10, 5, _EPOCHS),
        _hp("batchSize", int, 1, 1, 1, _BATCH),
        _hp("learningRate", float, 5e-6, 0.1, 1e-4, _LR),
    ),
    doc_url="https://docs.aws.amazon.com/bedrock/latest/userguide/cm-hp-meta-llama31.html",
)

# Anthropic Claude 3 Haiku.
# https://docs.aws.amazon.com/bedrock/latest/userguide/cm-hp-anth-claude-3.html
CLAUDE_3_HAIKU = HyperparameterTable(
    key="claude3-haiku",
    display_name="Anthropic Claude 3 Haiku",
    model_id_prefixes=("anthropic.claude-3-haiku",),
    hyperparameters=(
        _hp("epochCount", int, 1, 10, 2, "maximum passes over the training data"),
        _hp("batchSize", int, 4, 256, 32, _BATCH),
        _hp("learningRateMultiplier", float, 0.1, 2.0, 1.0, "multiplier of the learning rate"),
        _hp("earlyStoppingThreshold", float, 0.0, 0.1, 0.001, "minimum validation-loss gain"),
        _hp("earlyStoppingPatience", int, 1, 10, 2, "evaluations without gain before stopping"),
    ),
    doc_url="https://docs.aws.amazon.com/bedrock/latest/userguide/cm-hp-anth-claude-3.html",
)

BEDROCK_FAMILIES: tuple[HyperparameterTable, ...] = (
    NOVA_2,
    NOVA,
    TITAN_TEXT_PREMIER,
    TITAN_TEXT,
    LLAMA_3,
    CLAUDE_3_HAIKU,
)

# The old library's ``model_type`` values, mapped to the families they may name.
MODEL_TYPES: dict[str, tuple[str, ...]] = {
    "nova": ("nova", "nova-2"),
    "titan": ("titan-text", "titan-text-premier"),
    "llama": ("llama3",),
    "claude": ("claude3-haiku",),
}


def base_model_id(identifier: str) -> str:
    """The model id inside a foundation-model or custom-model ARN (or the id itself).

    ``arn:aws:bedrock:us-east-1::foundation-model/amazon.nova-lite-v1:0:300k`` and
    ``arn:aws:bedrock:us-east-1:123456789012:custom-model/amazon.nova-lite-v1:0:300k/abcdef123456``
    both give ``amazon.nova-lite-v1:0:300k``.
    """
    if identifier.startswith("arn:"):
        resource = identifier.split(":", 5)[-1]
        kind, _, rest = resource.partition("/")
        if kind == "custom-model":
            return rest.rsplit("/", 1)[0] if "/" in rest else rest
        return rest
    return identifier


def family_for_model(identifier: str) -> HyperparameterTable | None:
    model_id = base_model_id(identifier)
    for family in BEDROCK_FAMILIES:
        if model_id.startswith(family.model_id_prefixes):
            return family
    return None


def require_family(identifier: str, field_name: str = "base_model") -> HyperparameterTable:
    """The hyperparameter family of a Bedrock base model that Bedrock still customizes."""
    from finetuning.data.models import RetiredModelError, resolve_model

    try:
        resolve_model(base_model_id(identifier))
    except RetiredModelError as exc:
        raise InvalidJobConfigError(
            field_name, "a model Bedrock customizes", identifier, hint=str(exc)
        ) from None
    except ValueError:
        pass  # no dataset rules: the hyperparameter table below decides
    family = family_for_model(identifier)
    if family is None:
        prefixes = ", ".join(p for f in BEDROCK_FAMILIES for p in f.model_id_prefixes)
        raise InvalidJobConfigError(
            field_name,
            f"a Bedrock base model this library has a hyperparameter table for (ids starting "
            f"with {prefixes})",
            identifier,
        )
    return family


def check_model_type(model_type: str | None, family: HyperparameterTable) -> None:
    if model_type is None:
        return
    allowed = MODEL_TYPES.get(model_type)
    if allowed is None:
        raise InvalidJobConfigError("model_type", f"one of {', '.join(MODEL_TYPES)}", model_type)
    if family.key not in allowed:
        raise InvalidJobConfigError(
            "model_type",
            f"a type that matches the base model, a {family.display_name} model",
            model_type,
        )


def _format(value: float, kind: type) -> str:
    return str(int(value)) if kind is int else plain_decimal(value)


def _coerce_number(name: str, value: Any, kind: type, source: str) -> float:
    where = f"hyperparameters.{name}"
    expected = "an integer" if kind is int else "a number"
    if isinstance(value, bool):
        raise HyperparameterError(where, expected, value, hint=source)
    number: float
    if isinstance(value, int | float):
        number = value
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            raise HyperparameterError(where, expected, value, hint=source) from None
    else:
        raise HyperparameterError(where, expected, value, hint=source)
    if not math.isfinite(number):
        raise HyperparameterError(where, f"a finite {expected[2:]}", value, hint=source)
    if kind is int and number != int(number):
        raise HyperparameterError(where, expected, value, hint=source)
    return int(number) if kind is int else float(number)


def validate_bedrock_hyperparameters(
    family: HyperparameterTable,
    values: Mapping[str, Any],
    sources: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Check names, types and ranges; return the string map CreateModelCustomizationJob takes.

    ``sources`` maps a name to where its value came from (shown in errors), e.g.
    ``config model_finetuning.hyperparameters.default``.
    """
    sources = sources or {}
    checked: dict[str, str] = {}
    for name, value in values.items():
        spec = family.spec(name)
        source = sources.get(name, "")
        if spec is None:
            raise HyperparameterError(
                f"hyperparameters.{name}",
                f"one of the {family.display_name} hyperparameters: "
                + ", ".join(s.describe() for s in family.hyperparameters)
                + f"; see {family.doc_url}",
                name,
                hint=f"unknown hyperparameter{'; from ' + source if source else ''}",
            )
        number = _coerce_number(name, value, spec.kind, source)
        if not spec.minimum <= number <= spec.maximum:
            raise HyperparameterError(
                f"hyperparameters.{name}",
                f"{spec.kind.__name__} from {plain_decimal(spec.minimum)} to "
                f"{plain_decimal(spec.maximum)} for "
                f"{family.display_name} (see {family.doc_url})",
                value,
                hint=f"from {source}" if source else "",
            )
        checked[name] = _format(number, spec.kind)
    return checked


# ---------------------------------------------------------------------------------------------
# train.py (sagemaker and local backends)

# Set by the backend from the job config, never by a hyperparameter.
RESERVED_TRAIN_ARGUMENTS: dict[str, str] = {
    "model_name_or_path": "base_model",
    "train_file": "training_data_uri",
    "validation_file": "validation_data_uri",
    "output_dir": "output_uri",
    "output_data_dir": "output_uri",
    "checkpoint_dir": "checkpoint_uri",
    "method": "method",
    "validation_split": "validation_split",
}

# Bedrock spellings accepted for open models, so one config preset serves every backend.
OPEN_MODEL_ALIASES: dict[str, str] = {
    "epochCount": "num_train_epochs",
    "learningRate": "learning_rate",
    "batchSize": "per_device_train_batch_size",
}


@dataclass(frozen=True)
class TrainArgument:
    name: str
    kind: type  # int, float, bool or str
    choices: tuple[str, ...] = ()


def train_arguments() -> dict[str, TrainArgument]:
    """The hyperparameters ``train.py`` accepts, read from its argument dataclasses."""
    from training_scripts import arguments

    found: dict[str, TrainArgument] = {}
    for group in (arguments.ModelArguments, arguments.DataArguments, arguments.RunArguments):
        hints = typing.get_type_hints(group, vars(arguments))
        for item in dataclasses.fields(group):
            if item.name in RESERVED_TRAIN_ARGUMENTS:
                continue
            found[item.name] = _train_argument(item.name, hints[item.name])
    return found


def _train_argument(name: str, annotation: Any) -> TrainArgument:
    options = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        annotation = next(option for option in options if option is not type(None))
        options = typing.get_args(annotation)
    if typing.get_origin(annotation) is Literal:
        return TrainArgument(name, str, tuple(str(option) for option in options))
    if annotation in (int, float, bool, str):
        return TrainArgument(name, annotation)
    return TrainArgument(name, str)


def validate_train_hyperparameters(
    values: Mapping[str, Any], sources: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Check names and types against train.py; return ``--name value`` strings.

    Booleans become ``True``/``False``, the form SageMaker script mode passes and train.py
    parses.
    """
    if not values:
        return {}
    sources = sources or {}
    allowed = train_arguments()
    checked: dict[str, str] = {}
    for raw_name, value in values.items():
        name = OPEN_MODEL_ALIASES.get(raw_name, raw_name)
        source = sources.get(raw_name, "")
        where = f"hyperparameters.{raw_name}"
        if name in RESERVED_TRAIN_ARGUMENTS:
            raise HyperparameterError(
                where,
                f"a training hyperparameter; {name} is set from the job's "
                f"{RESERVED_TRAIN_ARGUMENTS[name]} field",
                raw_name,
            )
        argument = allowed.get(name)
        if argument is None:
            raise HyperparameterError(
                where,
                "one of the train.py hyperparameters: "
                + ", ".join(sorted(allowed))
                + " (or epochCount, learningRate, batchSize)",
                raw_name,
                hint=f"unknown hyperparameter{'; from ' + source if source else ''}",
            )
        checked[name] = _train_value(argument, value, where, source)
    return checked


def _train_value(argument: TrainArgument, value: Any, where: str, source: str) -> str:
    if argument.kind is bool:
        if isinstance(value, bool):
            return str(value)
        text = str(value).strip().lower()
        if text in ("true", "1", "yes"):
            return "True"
        if text in ("false", "0", "no"):
            return "False"
        raise HyperparameterError(where, "true or false", value, hint=source)
    if argument.kind in (int, float):
        number = _coerce_number(where.split(".", 1)[1], value, argument.kind, source)
        return str(number) if argument.kind is int else plain_decimal(number)
    text = str(value)
    if argument.choices and text not in argument.choices:
        raise HyperparameterError(where, f"one of {', '.join(argument.choices)}", value)
    return text
