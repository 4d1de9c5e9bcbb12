"""Model families and the dataset rules each one imposes.

A model id (``amazon.nova-lite-v1:0:300k``), an inference-profile id (``us.amazon...``), a
foundation-model or custom-model ARN, or a Hugging Face id / local path resolves to one
``ModelFamily``: the record formats it reads and the documented limits its training data
must respect. Every number below comes from the AWS page named in the comment beside it.

Standard library only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from finetuning.data.formats import DataFormat

__all__ = [
    "BEDROCK_CHARS_PER_TOKEN",
    "OPEN_MODEL_CHARS_PER_TOKEN",
    "MediaRules",
    "ModelFamily",
    "RetiredModelError",
    "UnknownModelError",
    "bedrock_families",
    "customization_model_id",
    "invoke_model_id",
    "resolve_model",
]

# "Character quota per sample in dataset: Token quota x 6 (estimated)" and "Use approximately
# 6 characters per token to estimate the number of tokens for planning dataset size".
# https://docs.aws.amazon.com/bedrock/latest/userguide/model-customization-prepare.html
BEDROCK_CHARS_PER_TOKEN = 6
# Ratio at which a record is flagged as *possibly* over a token limit: English text with
# BPE tokenizers runs at about 4 characters per token, so a record between 4x and 6x the
# token limit in characters may fail even though it passes AWS's own character quota.
CAUTIOUS_CHARS_PER_TOKEN = 4
# Planning estimate for open models when no tokenizer is given (same reasoning as above).
OPEN_MODEL_CHARS_PER_TOKEN = 4


class UnknownModelError(ValueError):
    """A Bedrock model id that this toolkit has no dataset rules for."""


class RetiredModelError(UnknownModelError):
    """A Bedrock model that Bedrock no longer customizes."""


@dataclass(frozen=True)
class MediaRules:
    """What images and videos a family accepts in training records."""

    image_formats: frozenset[str] = frozenset()
    video_formats: frozenset[str] = frozenset()
    max_images_per_record: int | None = None
    max_videos_per_record: int | None = None
    # Images and videos may not both appear in one dataset.
    no_mixed_media: bool = False
    # Media objects must live in the S3 bucket that holds the dataset.
    same_bucket_as_dataset: bool = False
    # Media must be referenced by s3Location (no inline bytes, URLs or local paths).
    s3_only: bool = True
    # Object keys limited to letters, digits, "_", "-", "/", "." (AWS's reference validator).
    strict_key_characters: bool = False
    max_image_bytes: int | None = None
    min_image_side: int | None = None
    max_image_side: int | None = None

    @property
    def allows_media(self) -> bool:
        return bool(self.image_formats or self.video_formats)


TEXT_ONLY = MediaRules()


@dataclass(frozen=True)
class ModelFamily:
    """The dataset rules of one group of models that share them."""

    name: str
    display_name: str
    backend: str  # "bedrock" or "sagemaker"
    formats: tuple[DataFormat, ...]
    source_url: str
    min_records: int | None = None
    max_train_records: int | None = None
    max_validation_records: int | None = None
    # Training plus validation records (a service quota; checked per file here).
    max_total_records: int | None = None
    max_total_tokens: int | None = None  # input + output tokens of one record
    max_input_tokens: int | None = None
    max_output_tokens: int | None = None
    max_train_file_bytes: int | None = None
    max_validation_file_bytes: int | None = None
    reserved_keywords: tuple[str, ...] = ()
    media: MediaRules = TEXT_ONLY
    # Whether keys beyond the format's own are an error (Claude) or a warning.
    extra_keys_are_errors: bool = False
    # Dataset file names limited to letters, digits, "_", "-", "/", "." (Nova).
    strict_file_names: bool = False
    chars_per_token: int = BEDROCK_CHARS_PER_TOKEN
    model_ids: tuple[str, ...] = field(default=())
    # Regions where Bedrock customizes the model (the supported-models page).
    regions: tuple[str, ...] = ()
    # Set when Bedrock no longer lists the family as customizable: (what, date seen).
    retired: tuple[str, str] | None = None
    # False where training takes no validation file (Nova 2 Lite SFT), so none is split off.
    accepts_validation_file: bool = True
    # The one customization type Bedrock offers for the family (the open-weight models are
    # reinforcement fine-tuned only); None: the types of the family's own rules.
    only_customization: str | None = None

    @property
    def default_format(self) -> DataFormat:
        return self.formats[0]

    @property
    def is_bedrock(self) -> bool:
        return self.backend == "bedrock"


_GB = 1024**3
_MB = 1024**2

_BEDROCK_REQUIREMENTS = (
    "https://docs.aws.amazon.com/bedrock/latest/userguide/model-customization-prepare.html"
)
_NOVA_PREPARE = (
    "https://docs.aws.amazon.com/nova/latest/userguide/fine-tune-prepare-data-understanding.html"
)

# Amazon Nova (understanding models), from three AWS sources:
# - https://docs.aws.amazon.com/nova/latest/userguide/fine-tune-prepare-data-understanding.html
#   roles user/assistant, first user, last assistant; images and videos in the dataset's
#   bucket; no mixing images and videos in one dataset; one video per record, several
#   images; dataset file names of letters, digits, "_", "-", "/", "."; reserved keywords
#   User:, Bot:, Assistant:, System:, <image>, <video>, [EOS] anywhere in a prompt.
# - https://docs.aws.amazon.com/nova/latest/userguide/customization.html
#   customizable ids and their context windows: nova-micro-v1:0:128k, nova-lite-v1:0:300k,
#   nova-pro-v1:0:300k.
# - AWS's reference validator that the Nova guide links to (aws-samples/amazon-bedrock-samples,
#   custom-models/bedrock-fine-tuning/nova/understanding/dataset_validation/
#   nova_ft_dataset_validator.py): 8 to 20,000 records per model, at most 10 images per
#   record, image formats jpeg/png/gif/webp, video formats mov/mkv/mp4/webm, no media for Nova
#   Micro, no media in assistant turns, reserved keywords also in upper case plus "Thought:".
_NOVA_RESERVED = (
    "User:",
    "USER:",
    "Bot:",
    "BOT:",
    "Assistant:",
    "ASSISTANT:",
    "System:",
    "SYSTEM:",
    "Thought:",
    "<image>",
    "<video>",
    "[EOS]",
)
_NOVA_MEDIA = MediaRules(
    image_formats=frozenset({"jpeg", "png", "gif", "webp"}),
    video_formats=frozenset({"mov", "mkv", "mp4", "webm"}),
    max_images_per_record=10,
    max_videos_per_record=1,
    no_mixed_media=True,
    same_bucket_as_dataset=True,
    strict_key_characters=True,
)


def _nova(name: str, display: str, context: int, media: MediaRules, ids: tuple[str, ...]):
    return ModelFamily(
        regions=_US_EAST_1,
        name=name,
        display_name=display,
        backend="bedrock",
        formats=(DataFormat.BEDROCK_CONVERSATION,),
        source_url=_NOVA_PREPARE,
        min_records=8,
        max_train_records=20_000,
        max_total_tokens=context,
        reserved_keywords=_NOVA_RESERVED,
        media=media,
        strict_file_names=True,
        model_ids=ids,
    )


# Amazon Nova 2 Lite (supervised fine-tuning), "Supervised fine-tuning on Amazon Nova 2.0",
# https://docs.aws.amazon.com/bedrock/latest/userguide/nova-2-sft-data-prep.html
#   the Converse format of Nova 1 plus optional reasoning content; images png/jpeg/gif, videos
#   mov/mkv/mp4 in user turns; a dataset is text only, text + image or text + video (no
#   mixing); tool use and validation sets are not supported in training. The page gives no
#   record-count limits, so none are checked. Context window 256k: the customization id
#   amazon.nova-2-lite-v1:0:256k on the supported-models page (below).
_NOVA_2_MEDIA = MediaRules(
    image_formats=frozenset({"png", "jpeg", "gif"}),
    video_formats=frozenset({"mov", "mkv", "mp4"}),
    max_videos_per_record=1,
    no_mixed_media=True,
    same_bucket_as_dataset=True,
    strict_key_characters=True,
)

# Customizable models and their Regions, "Supported models and Regions for fine-tuning and
# continued pre-training" (read 2026-12-05):
# https://docs.aws.amazon.com/bedrock/latest/userguide/custom-model-supported.html
# | model                 | customization id                              | Regions              |
# |-----------------------|-----------------------------------------------|----------------------|
# | Nova 2 Lite           | amazon.nova-2-lite-v1:0:256k                  | us-east-1            |
# | Nova Lite/Micro/Pro   | amazon.nova-{lite,pro}-v1:0:300k, micro :128k | us-east-1            |
# | Titan Text G1-Express | amazon.titan-text-express-v1:0:8k             | us-east-1, us-west-2 |
# | Claude 3 Haiku        | anthropic.claude-3-haiku-20240307-v1:0:200k   | us-west-2            |
# | Llama 3.1 / 3.2       | meta.llama3-{1,2}-*-instruct-v1:0:128k        | us-west-2            |
# Titan Text G1 - Lite, Titan Text Premier and Cohere Command were listed on the older
# version of the page and are no longer: they are marked retired below (refused, not kept).
# The copy of the page read ends after Llama 3.2 90B, so Llama 3.3 70B is kept as it was
# (its id without a context suffix) until the page is read in full. The page's image and
# embedding models (Nova Canvas, Titan Image Generator, Titan Multimodal Embeddings) take
# image datasets this text-model toolkit has no rules for; they stay refused as unknown.
_US_EAST_1 = ("us-east-1",)
_US_WEST_2 = ("us-west-2",)
_NOT_LISTED = "no longer on Bedrock's supported-models page for customization"
_SEEN = "2026-12-05"

# Titan Text, Cohere Command, Meta Llama and Claude 3 Haiku: "Model requirements for training
# and validation datasets", https://docs.aws.amazon.com/bedrock/latest/userguide/
# model-customization-prepare.html#model-training-validation-requirements
#
# | family             | tokens (input+output)     | records              | train / val file |
# |--------------------|---------------------------|----------------------|------------------|
# | Titan Text Premier | 4,096 (batch size 1)      | (service quota)      | 1 GB / 100 MB    |
# | Titan Text Express | 4,096 (batch size 1)      | (service quota)      | 1 GB / 100 MB    |
# | Titan Text Lite    | 4,096 (batch size 1 or 2) | (service quota)      | 1 GB / 100 MB    |
# | Cohere Command     | in 4,096 / out 2,048      | 10,000 / 1,000       |                  |
# | Meta Llama 3.1     | 16,000 (in, out, sum)     | 100 to 10,000 total  |                  |
# | Meta Llama 3.2/3.3 | 16,000 (10,000 for 90B)   | 100 to 10,000 total  |                  |
# | Claude 3 Haiku     | 32,000                    | 32 min; 10,000 train | 10 GB / 1 GB     |
# |                    |                           | 1,000 val; 10,000 all|                  |
# Character quota per sample: token quota x 6 for every family above.
# Llama 3.2 vision: gif/jpeg/png/webp images up to 10 MB, 10 to 8,192 pixels a side.
_TITAN = dict(
    backend="bedrock",
    formats=(DataFormat.PROMPT_COMPLETION,),
    source_url=_BEDROCK_REQUIREMENTS,
    max_total_tokens=4_096,
    max_train_file_bytes=1 * _GB,
    max_validation_file_bytes=100 * _MB,
)
_LLAMA_CONVERSE_MEDIA = MediaRules(
    image_formats=frozenset({"gif", "jpeg", "png", "webp"}),
    max_image_bytes=10 * _MB,
    min_image_side=10,
    max_image_side=8_192,
)

# Open-weight models that Bedrock reinforcement fine-tunes, "Models supported for
# reinforcement fine-tuning" (read 2026-12-05):
# https://docs.aws.amazon.com/bedrock/latest/userguide/reinforcement-fine-tuning.html
# | provider | model       | model id           | Region    |
# |----------|-------------|--------------------|-----------|
# | OpenAI   | gpt-oss-20b | openai.gpt-oss-20b | us-west-2 |
# | Qwen     | Qwen3 32B   | qwen.qwen3-32b     | us-west-2 |
# Their data, "Prepare data for open-weight models":
# https://docs.aws.amazon.com/bedrock/latest/userguide/rft-prepare-data-open-weight.html
#   OpenAI chat completions format, one prompt per line: ``messages`` (system, user or
#   assistant turns holding the prompt) and ``reference_answer``; optional keys for the
#   grader; "100-20K examples", "A minimum of 100 records in training dataset".
# Bedrock trains them through its OpenAI-compatible fine-tuning API, not
# CreateModelCustomizationJob (finetuning.aws_jobs.bedrock_customization.OPEN_WEIGHT_RFT).
OPEN_WEIGHT_RFT_DATA_URL = (
    "https://docs.aws.amazon.com/bedrock/latest/userguide/rft-prepare-data-open-weight.html"
)
OPEN_WEIGHT_RFT_FAMILY = "open-weight-rft"

_FAMILIES: tuple[tuple[str, ModelFamily], ...] = (
    (
        r"(^|[./])(openai\.gpt-oss-20b|qwen\.qwen3-32b)($|[:/])",
        ModelFamily(
            name=OPEN_WEIGHT_RFT_FAMILY,
            display_name="Open-weight models gpt-oss-20b / Qwen3 32B (reinforcement fine-tuning)",
            backend="bedrock",
            formats=(DataFormat.MESSAGES,),
            source_url=OPEN_WEIGHT_RFT_DATA_URL,
            min_records=100,
            max_train_records=20_000,
            chars_per_token=OPEN_MODEL_CHARS_PER_TOKEN,
            model_ids=("openai.gpt-oss-20b", "qwen.qwen3-32b"),
            regions=_US_WEST_2,
            only_customization="REINFORCEMENT_FINE_TUNING",
        ),
    ),
    (
        r"amazon\.nova-2-lite-v1",
        ModelFamily(
            name="nova-2-lite",
            display_name="Amazon Nova 2 Lite",
            backend="bedrock",
            formats=(DataFormat.BEDROCK_CONVERSATION,),
            source_url="https://docs.aws.amazon.com/bedrock/latest/userguide/nova-2-sft-data-prep.html",
            max_total_tokens=256_000,
            media=_NOVA_2_MEDIA,
            strict_file_names=True,
            model_ids=("amazon.nova-2-lite-v1:0:256k",),
            regions=_US_EAST_1,
            accepts_validation_file=False,
        ),
    ),
    (
        r"amazon\.nova-micro-v1",
        _nova(
            "nova-micro", "Amazon Nova Micro", 128_000, TEXT_ONLY, ("amazon.nova-micro-v1:0:128k",)
        ),
    ),
    (
        r"amazon\.nova-lite-v1",
        _nova(
            "nova-lite", "Amazon Nova Lite", 300_000, _NOVA_MEDIA, ("amazon.nova-lite-v1:0:300k",)
        ),
    ),
    (
        r"amazon\.nova-pro-v1",
        _nova("nova-pro", "Amazon Nova Pro", 300_000, _NOVA_MEDIA, ("amazon.nova-pro-v1:0:300k",)),
    ),
    (
        r"amazon\.titan-text-premier-v1",
        ModelFamily(
            name="titan-text-premier",
            display_name="Amazon Titan Text Premier",
            model_ids=("amazon.titan-text-premier-v1:0",),
            retired=(_NOT_LISTED, _SEEN),
            **_TITAN,
        ),
    ),
    (
        r"amazon\.titan-text-express-v1",
        ModelFamily(
            name="titan-text-express",
            display_name="Amazon Titan Text G1 - Express",
            model_ids=("amazon.titan-text-express-v1:0:8k",),
            regions=("us-east-1", "us-west-2"),
            **_TITAN,
        ),
    ),
    (
        r"amazon\.titan-text-lite-v1",
        ModelFamily(
            name="titan-text-lite",
            display_name="Amazon Titan Text G1 - Lite",
            model_ids=("amazon.titan-text-lite-v1",),
            retired=(_NOT_LISTED, _SEEN),
            **_TITAN,
        ),
    ),
    (
        r"cohere\.command-(light-)?text-v14",
        ModelFamily(
            name="cohere-command",
            display_name="Cohere Command / Command Light",
            backend="bedrock",
            formats=(DataFormat.PROMPT_COMPLETION,),
            source_url=_BEDROCK_REQUIREMENTS,
            max_input_tokens=4_096,
            max_output_tokens=2_048,
            max_train_records=10_000,
            max_validation_records=1_000,
            model_ids=("cohere.command-text-v14", "cohere.command-light-text-v14"),
            retired=(_NOT_LISTED, _SEEN),
        ),
    ),
    (
        r"meta\.llama3-1-(8|70)b-instruct-v1",
        ModelFamily(
            name="llama3.1",
            display_name="Meta Llama 3.1 Instruct",
            backend="bedrock",
            formats=(DataFormat.PROMPT_COMPLETION,),
            source_url=_BEDROCK_REQUIREMENTS,
            min_records=100,
            max_total_records=10_000,
            max_input_tokens=16_000,
            max_output_tokens=16_000,
            max_total_tokens=16_000,
            model_ids=(
                "meta.llama3-1-8b-instruct-v1:0:128k",
                "meta.llama3-1-70b-instruct-v1:0:128k",
            ),
            regions=_US_WEST_2,
        ),
    ),
    (
        r"meta\.llama3-2-90b-instruct-v1",
        ModelFamily(
            name="llama3.2-90b",
            display_name="Meta Llama 3.2 90B Instruct (vision)",
            backend="bedrock",
            formats=(DataFormat.BEDROCK_CONVERSATION,),
            source_url=_BEDROCK_REQUIREMENTS,
            min_records=100,
            max_total_records=10_000,
            max_total_tokens=10_000,
            media=_LLAMA_CONVERSE_MEDIA,
            model_ids=("meta.llama3-2-90b-instruct-v1:0:128k",),
            regions=_US_WEST_2,
        ),
    ),
    (
        r"meta\.llama3-2-(1|3)b-instruct-v1",
        ModelFamily(
            name="llama3.2-text",
            display_name="Meta Llama 3.2 1B / 3B Instruct",
            backend="bedrock",
            formats=(DataFormat.BEDROCK_CONVERSATION,),
            source_url=_BEDROCK_REQUIREMENTS,
            min_records=100,
            max_total_records=10_000,
            max_total_tokens=16_000,
            model_ids=(
                "meta.llama3-2-1b-instruct-v1:0:128k",
                "meta.llama3-2-3b-instruct-v1:0:128k",
            ),
            regions=_US_WEST_2,
        ),
    ),
    (
        r"meta\.llama3-2-11b-instruct-v1|meta\.llama3-3-70b-instruct-v1",
        ModelFamily(
            name="llama3.2-vision",
            display_name="Meta Llama 3.2 11B Vision / 3.3 70B Instruct",
            backend="bedrock",
            formats=(DataFormat.BEDROCK_CONVERSATION,),
            source_url=_BEDROCK_REQUIREMENTS,
            min_records=100,
            max_total_records=10_000,
            max_total_tokens=16_000,
            media=_LLAMA_CONVERSE_MEDIA,
            model_ids=(
                "meta.llama3-2-11b-instruct-v1:0:128k",
                "meta.llama3-3-70b-instruct-v1:0",
            ),
            regions=_US_WEST_2,
        ),
    ),
    (
        r"anthropic\.claude-3-haiku-20240307-v1",
        ModelFamily(
            name="claude-3-haiku",
            display_name="Anthropic Claude 3 Haiku",
            backend="bedrock",
            formats=(DataFormat.MESSAGES,),
            source_url=_BEDROCK_REQUIREMENTS,
            min_records=32,
            max_train_records=10_000,
            max_validation_records=1_000,
            max_total_records=10_000,
            max_total_tokens=32_000,
            max_train_file_bytes=10 * _GB,
            max_validation_file_bytes=1 * _GB,
            # "No extraneous keys are allowed": Anthropic's Bedrock fine-tuning guide,
            # https://platform.claude.com/cookbook/finetuning-finetuning-on-bedrock
            extra_keys_are_errors=True,
            model_ids=("anthropic.claude-3-haiku-20240307-v1:0:200k",),
            regions=_US_WEST_2,
        ),
    ),
)

# Open-weight models trained by train.py on SageMaker (or locally): every format it reads.
OPEN_MODEL = ModelFamily(
    name="open-model",
    display_name="open model (SageMaker / local backend)",
    backend="sagemaker",
    formats=(
        DataFormat.MESSAGES,
        DataFormat.PROMPT_COMPLETION,
        DataFormat.ALPACA,
        DataFormat.BEDROCK_CONVERSATION,
    ),
    source_url="training_scripts/train.py",
    min_records=1,
    media=MediaRules(
        image_formats=frozenset({"jpeg", "png", "gif", "webp"}),
        video_formats=frozenset({"mov", "mkv", "mp4", "webm"}),
        s3_only=False,
    ),
    chars_per_token=OPEN_MODEL_CHARS_PER_TOKEN,
)

# Provider prefixes of Bedrock model ids: an unknown id with one of them is a mistake,
# not an open model.
_BEDROCK_PROVIDERS = re.compile(
    r"^(?:[a-z]{2,4}\.)?(amazon|anthropic|meta|cohere|mistral|ai21|stability|deepseek|"
    r"writer|openai|qwen|twelvelabs|luma)\.[a-z0-9-]+"
)


def bedrock_families() -> tuple[ModelFamily, ...]:
    """Every Bedrock family with rules, in the order they are matched."""
    return tuple(family for _, family in _FAMILIES)


def resolve_model(model_id: str) -> ModelFamily:
    """The family whose rules apply to ``model_id``.

    Accepts base-model ids with or without a context suffix, cross-region inference profile
    ids, foundation-model and custom-model ARNs (which embed the base model id), and, for the
    SageMaker backend, Hugging Face ids (``org/name``) or local paths.

    Raises:
        UnknownModelError: a Bedrock model id that cannot be fine-tuned or has no rules here.
    """
    text = model_id.strip()
    if not text:
        raise UnknownModelError("a model id is required")
    lowered = text.lower()
    for pattern, family in _FAMILIES:
        if re.search(pattern, lowered):
            if family.retired is not None:
                what, seen = family.retired
                raise RetiredModelError(
                    f"{model_id!r}: {family.display_name} is {what} (checked {seen}); "
                    f"Bedrock no longer customizes it. Customizable models: "
                    f"{_supported()}; see {_SUPPORTED_PAGE}"
                )
            return family
    bedrock_like = lowered.startswith("arn:aws") or _BEDROCK_PROVIDERS.match(lowered)
    if bedrock_like:
        supported = _supported()
        raise UnknownModelError(
            f"{model_id!r} is not a Bedrock model this toolkit has dataset rules for; "
            f"supported: {supported}; or give a Hugging Face id (org/name) for SageMaker"
        )
    return OPEN_MODEL


_SUPPORTED_PAGE = "https://docs.aws.amazon.com/bedrock/latest/userguide/custom-model-supported.html"
# The context-window suffix of a customization id (":256k", ":300k", ":8k"); the model is
# invoked by the id without it (or an inference profile such as us.amazon.nova-2-lite-v1:0).
# Provisioned Throughput and customization take "a context variant" of the model id:
# https://docs.aws.amazon.com/bedrock/latest/userguide/prov-thru-supported.html
_CONTEXT_SUFFIX = re.compile(r"^(?P<base>[a-z0-9-]+\.[a-z0-9.-]+-v\d+(?::\d+)?):\d+k$")


def _supported() -> str:
    return ", ".join(
        model_id
        for _, family in _FAMILIES
        if family.retired is None
        for model_id in family.model_ids
    )


def region_refusal(model_id: str, region: str | None) -> str | None:
    """Why Bedrock does not customize ``model_id`` in ``region``; None where it does, or where
    the model or the Region is unknown here (Bedrock then decides). A customization job runs
    in the Region of the client that starts it, so the family's Regions (the supported-models
    page, above) are the Regions a job may be started in."""
    if not region:
        return None
    try:
        family = resolve_model(model_id)
    except UnknownModelError:
        return None
    if not family.regions or region in family.regions:
        return None
    regions = ", ".join(family.regions)
    return (
        f"a model Bedrock customizes in {region}; Bedrock customizes {family.display_name} in "
        f"{regions} only (checked {_SEEN}, {_SUPPORTED_PAGE}): start the job in {regions} "
        f"(--region {family.regions[0]}, or a platform deployed there)"
    )


def invoke_model_id(customization_id: str) -> str:
    """The on-demand model id of a customization id: ``amazon.nova-2-lite-v1:0:256k`` gives
    ``amazon.nova-2-lite-v1:0``; an id without a context suffix is returned unchanged."""
    match = _CONTEXT_SUFFIX.match(customization_id.strip())
    return match.group("base") if match else customization_id.strip()


def customization_model_id(model_id: str) -> str | None:
    """The id Bedrock customizes for ``model_id`` (an invoke id, inference profile or the
    customization id itself), e.g. ``us.amazon.nova-2-lite-v1:0`` gives
    ``amazon.nova-2-lite-v1:0:256k``; None when no current family lists it."""
    text = model_id.strip().lower()
    text = re.sub(r"^(?:[a-z]{2,4}\.)(?=[a-z]+\.)", "", text)
    for _, family in _FAMILIES:
        if family.retired is not None:
            continue
        for candidate in family.model_ids:
            if text in (candidate, invoke_model_id(candidate)):
                return candidate
    return None
