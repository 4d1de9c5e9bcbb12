"""The job manifest: schema, error messages with lines, and the idempotent job id."""

from __future__ import annotations

import json
import re

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from finetuning.orchestration import names
from finetuning.orchestration.errors import ManifestError
from finetuning.orchestration.manifest import (
    Backend,
    JobManifest,
    load_manifest,
    parse_manifest,
)
from tests.support.platform_fakes import NOVA, bedrock_manifest, sagemaker_manifest

# Name rules of the services the job id doubles as (see names.py for the sources).
SAGEMAKER_JOB_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
BEDROCK_JOB_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9\+\-\.])*$")
BEDROCK_MODEL_NAME = re.compile(r"^([0-9a-zA-Z][_-]?){1,63}$")
EXECUTION_NAME_FORBIDDEN = re.compile(r"[\s<>{}\[\]?*\"#%\\^|~`$&,;:/]")


def test_yaml_and_json_manifests_give_the_same_job() -> None:
    spec = bedrock_manifest()
    from_yaml = load_manifest(yaml.safe_dump(spec), "job.yaml")
    from_json = load_manifest(json.dumps(spec), "job.json")
    assert from_yaml == from_json
    assert from_yaml.job_id == from_json.job_id
    assert from_yaml.backend is Backend.BEDROCK


def test_spec_round_trips_through_the_execution_input() -> None:
    manifest = parse_manifest(sagemaker_manifest())
    again = parse_manifest(json.loads(json.dumps(manifest.to_spec())))
    assert again == manifest
    assert again.job_id == manifest.job_id
    # The other backend's fields never enter the spec (or the id).
    assert "customization_type" not in manifest.to_spec()
    assert "instance_type" not in parse_manifest(bedrock_manifest()).to_spec()


def test_job_id_changes_with_any_field_and_with_revision() -> None:
    base = parse_manifest(bedrock_manifest())
    assert parse_manifest(bedrock_manifest()).job_id == base.job_id
    changed = parse_manifest(bedrock_manifest(hyperparameters={"epochCount": 3}))
    rerun = parse_manifest(bedrock_manifest(revision=2))
    assert len({base.job_id, changed.job_id, rerun.job_id}) == 3
    assert base.job_id.startswith("support-bot-")


def test_unknown_field_names_the_line_and_the_allowed_fields() -> None:
    text = (
        "job_name: x\nbackend: bedrock\nbase_model: m.n\ntraining_data_uri: s3://bkt/k\nepochs: 3\n"
    )
    with pytest.raises(ManifestError) as error:
        load_manifest(text, "jobs/x.yaml")
    message = str(error.value)
    assert "jobs/x.yaml:5: epochs: unknown field: expected one of" in message
    assert "job_name" in message and "training_data_uri" in message


def test_nested_error_names_the_nested_field_and_line() -> None:
    text = yaml.safe_dump(
        bedrock_manifest(serving={"provisioned_throughput": {"model_units": 0}}), sort_keys=False
    )
    with pytest.raises(ManifestError) as error:
        load_manifest(text, "job.yaml")
    line = next(i for i, row in enumerate(text.splitlines(), 1) if "model_units" in row)
    assert f"job.yaml:{line}: serving.provisioned_throughput.model_units:" in str(error.value)
    assert "(got 0)" in str(error.value)


def test_bad_yaml_and_json_report_the_line() -> None:
    with pytest.raises(ManifestError, match=r"job.yaml:2: not valid YAML"):
        load_manifest("job_name: x\n  bad: [\n", "job.yaml")
    with pytest.raises(ManifestError, match=r"job.json:2: not valid JSON"):
        load_manifest('{"job_name": "x",\n oops}', "job.json")
    with pytest.raises(ManifestError, match="expected a mapping"):
        load_manifest("- a\n- b\n", "job.yaml")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"training_data_uri": "https://example.com/x"}, "expected an s3://bucket/key URI"),
        ({"instance_type": "ml.g5.2xlarge"}, "apply only to the sagemaker backend"),
        ({"tags": {"finetuning:job-id": "x"}}, "the finetuning: prefix is the platform's"),
        ({"model_name": "bad name!"}, "expected 1-63 letters and digits"),
        (
            {
                "serving": {
                    "provisioned_throughput": {"commitment": "OneMonth", "expires_after_hours": 5}
                }
            },
            "cannot be deleted before its term",
        ),
        ({"job_name": "!!!"}, "expected at least one letter or digit"),
        ({"customization_type": "DISTILLATION"}, "DISTILLATION needs distillation.teacher_model"),
        ({"customization_type": "IMPORTED"}, "'REINFORCEMENT_FINE_TUNING'"),
    ],
)
def test_bedrock_manifest_errors(overrides: dict, message: str) -> None:
    with pytest.raises(ManifestError, match=re.escape(message)):
        parse_manifest(bedrock_manifest(**overrides))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        # One Backend enum for library and platform; the platform runs no local jobs.
        ({"backend": "local"}, "backend: Input should be 'bedrock' or 'sagemaker' (got 'local')"),
        (
            {"serving": {"provisioned_throughput": {"commitment": "OneYear"}}},
            "commitment: Input should be 'none', 'OneMonth' or 'SixMonths' (got 'OneYear')",
        ),
    ],
)
def test_manifest_accepts_part_of_the_shared_enums(overrides: dict, message: str) -> None:
    with pytest.raises(ManifestError, match=re.escape(message)):
        parse_manifest(bedrock_manifest(**overrides))


def test_commitment_values_round_trip() -> None:
    for commitment in ("none", "OneMonth", "SixMonths"):
        manifest = parse_manifest(
            bedrock_manifest(serving={"provisioned_throughput": {"commitment": commitment}})
        )
        assert manifest.serving.provisioned_throughput.commitment == commitment
        dumped = manifest.model_dump(mode="json")["serving"]["provisioned_throughput"]
        assert dumped["commitment"] == commitment


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"base_model": "meta-llama/Llama-3.1-8B"}, "cannot download from a model hub"),
        ({"source_dir_uri": None}, "source_dir_uri is required"),
        ({"model_name": "x"}, "apply only to the bedrock backend"),
        ({"serving": {"provisioned_throughput": {}}}, "applies only to the bedrock backend"),
        ({"max_run_seconds": 7200, "max_wait_seconds": 3600}, "needs max_wait_seconds >="),
        ({"entry_point": "../evil.py"}, "relative to the source directory"),
        ({"instance_type": "g5.2xlarge"}, "expected a SageMaker instance type"),
    ],
)
def test_sagemaker_manifest_errors(overrides: dict, message: str) -> None:
    spec = {k: v for k, v in sagemaker_manifest(**overrides).items() if v is not None}
    with pytest.raises(ManifestError, match=re.escape(message)):
        parse_manifest(spec)


TEST_SET = "s3://llm-finetuning-test-data-123456789012-us-east-1/training-data/processed/t.jsonl"
GATE = {"min": {"accuracy": 0.85}}


@pytest.mark.parametrize(
    ("backend", "evaluation", "message"),
    [
        ("sagemaker", {"quality_gate": GATE}, "quality_gate need test_set_uri"),
        ("sagemaker", {"test_set_uri": "https://x/t.jsonl"}, "expected an s3://bucket/key URI"),
        ("sagemaker", {"test_set_uri": TEST_SET}, "register_model needs a quality_gate"),
        (
            "sagemaker",
            {"test_set_uri": TEST_SET, "quality_gate": {"min_improvement_over_base": {"f1": 0.1}}},
            "needs compare_with_base: true",
        ),
        ("sagemaker", {"quality_gate": {"min": {}}}, "expected at least one check"),
        ("sagemaker", {"base_model_id": "x"}, "evaluation.base_model_id apply only to the bedrock"),
        ("bedrock", {"instance_type": "ml.g5.xlarge"}, "apply only to the sagemaker backend"),
        ("bedrock", {"batch_size": 8}, "apply only to the sagemaker backend"),
        ("sagemaker", {"batch_size": 0}, "greater than or equal to 1"),
        # A Bedrock evaluation without serving: test_on_demand_serving.py.
        ("sagemaker", {"max_runtime_seconds": 777_601}, "less than or equal to 777600"),
        ("sagemaker", {"model_name": "-bad"}, "starting with one"),
        ("sagemaker", {"inference": {"top_p": 1.5}}, "less than or equal to 1"),
    ],
)
def test_evaluation_section_errors(backend: str, evaluation: dict, message: str) -> None:
    base = bedrock_manifest if backend == "bedrock" else sagemaker_manifest
    with pytest.raises(ManifestError, match=re.escape(message)):
        parse_manifest(base(evaluation=evaluation))


def test_evaluation_section_defaults_and_spec_per_backend() -> None:
    open_model = parse_manifest(
        sagemaker_manifest(evaluation={"test_set_uri": TEST_SET, "register_model": False})
    )
    assert open_model.evaluation.runs and open_model.evaluation.instance_type == "ml.g5.2xlarge"
    assert parse_manifest(open_model.to_spec()) == open_model
    bedrock = parse_manifest(bedrock_manifest())
    assert not bedrock.evaluation.runs
    # Processing-job settings do not reach a Bedrock spec (or its job id), and vice versa.
    assert "instance_type" not in bedrock.to_spec()["evaluation"]
    # Unset, the batch size stays out of the spec (and so of existing job ids).
    assert open_model.evaluation.batch_size is None
    assert "batch_size" not in open_model.to_spec()["evaluation"]
    assert "base_model_id" not in open_model.to_spec()["evaluation"]


def test_spot_wait_defaults_to_twice_the_run_time() -> None:
    manifest = parse_manifest(sagemaker_manifest(max_run_seconds=3600))
    assert manifest.use_spot_instances is True
    assert manifest.wait_seconds == 7200
    manifest = parse_manifest(sagemaker_manifest(max_run_seconds=3600, max_wait_seconds=5000))
    assert manifest.wait_seconds == 5000


def test_documented_example_manifests_parse() -> None:
    """The manifests shown in docs/orchestration.md are valid."""
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[3] / "docs" / "orchestration.md").read_text()
    blocks = re.findall(r"```yaml\n(# job\.yaml.*?)```", doc, flags=re.S)
    assert len(blocks) >= 2
    for block in blocks:
        assert isinstance(load_manifest(block, "docs/orchestration.md"), JobManifest)


@settings(max_examples=200, deadline=None)
@given(
    job_name=st.text(min_size=1, max_size=52).filter(lambda s: names.slug(s) != ""),
    revision=st.integers(min_value=1, max_value=10**6),
)
def test_job_id_satisfies_every_service_name_rule(job_name: str, revision: int) -> None:
    manifest = parse_manifest(bedrock_manifest(job_name=job_name, revision=revision))
    job_id = manifest.job_id
    assert len(job_id) <= 63
    assert SAGEMAKER_JOB_NAME.match(job_id)
    assert BEDROCK_JOB_NAME.match(job_id)
    assert BEDROCK_MODEL_NAME.match(job_id)
    assert not EXECUTION_NAME_FORBIDDEN.search(job_id)
    derived = names.derived_name(job_id, "pt")
    assert len(derived) <= 63 and BEDROCK_MODEL_NAME.match(derived)
    assert derived.endswith(job_id.rsplit("-", 1)[1] + "-pt")


# -- reinforcement fine-tuning and distillation ----------------------------------------------

NOVA_2 = "amazon.nova-2-lite-v1:0:256k"


def rft_manifest(**overrides) -> dict:
    spec = bedrock_manifest(base_model=NOVA_2, customization_type="REINFORCEMENT_FINE_TUNING")
    spec.pop("hyperparameters")
    spec.update(overrides)
    return spec


def test_an_rft_manifest_keeps_typed_hyperparameters_and_an_optional_grader() -> None:
    manifest = parse_manifest(rft_manifest(rft={"hyperparameters": {"epochCount": "3"}}))
    assert manifest.rft is not None and manifest.rft.grader_lambda_arn is None
    assert manifest.rft.hyperparameters == {"epochCount": 3}
    assert manifest.to_spec()["rft"] == {"hyperparameters": {"epochCount": 3}}
    assert parse_manifest(rft_manifest()).rft is None  # the platform grader, API defaults


OPEN_WEIGHT_GRADER = "arn:aws:lambda:us-west-2:123456789012:function:my-reward-function"


def open_weight_manifest(**overrides) -> dict:
    spec = rft_manifest(
        base_model="openai.gpt-oss-20b",
        rft={"grader_lambda_arn": OPEN_WEIGHT_GRADER, "hyperparameters": {"n_epochs": 1}},
    )
    for name in ("tags", "validation_data_uri", "output_uri", "model_name"):
        spec.pop(name, None)  # the API takes none of them
    spec.update(overrides)
    return spec


@pytest.mark.parametrize("model", ["openai.gpt-oss-20b", "qwen.qwen3-32b"])
def test_an_open_weight_rft_manifest_is_accepted_with_its_grader_and_hyperparameters(
    model: str,
) -> None:
    manifest = parse_manifest(
        open_weight_manifest(
            base_model=model,
            rft={
                "grader_lambda_arn": OPEN_WEIGHT_GRADER,
                "hyperparameters": {
                    "n_epochs": "2",
                    "batch_size": 4,
                    "learning_rate_multiplier": 1,
                },
            },
        )
    )
    assert manifest.rft is not None
    assert manifest.rft.grader_lambda_arn == OPEN_WEIGHT_GRADER
    assert manifest.rft.hyperparameters == {
        "n_epochs": 2,
        "batch_size": 4,
        "learning_rate_multiplier": 1.0,
    }
    assert manifest.serving_mode.value == "none"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"rft": {"hyperparameters": {"n_epochs": 1}}}, "rft.grader_lambda_arn is required"),
        (
            {
                "rft": {
                    "grader_lambda_arn": OPEN_WEIGHT_GRADER,
                    "hyperparameters": {"epochCount": 2},
                }
            },
            "rft.hyperparameters.epochCount: expected one of n_epochs, batch_size, "
            "learning_rate_multiplier",
        ),
        (
            {"rft": {"grader_lambda_arn": OPEN_WEIGHT_GRADER, "hyperparameters": {"n_epochs": 0}}},
            "n_epochs: expected a positive integer",
        ),
        (
            {"validation_data_uri": "s3://bucket/training-data/processed/v.jsonl"},
            "validation_data_uri does not apply to openai.gpt-oss-20b",
        ),
        ({"model_name": "my-model"}, "model_name does not apply"),
        ({"tags": {"team": "ml"}}, "tags does not apply"),
        (
            {
                "evaluation": {
                    "test_set_uri": "s3://bucket/training-data/processed/t.jsonl",
                    "register_model": False,
                }
            },
            "evaluation.test_set_uri does not apply",
        ),
        ({"serving": {"mode": "on_demand"}}, "serving does not apply"),
    ],
)
def test_an_open_weight_rft_manifest_refuses_what_its_api_does_not_take(
    overrides: dict, message: str
) -> None:
    with pytest.raises(ManifestError) as caught:
        parse_manifest(open_weight_manifest(**overrides))
    assert message in str(caught.value)


def test_nova_rft_refuses_the_open_weight_hyperparameter_names() -> None:
    with pytest.raises(ManifestError) as caught:
        parse_manifest(rft_manifest(rft={"hyperparameters": {"n_epochs": 1}}))
    assert "rft.hyperparameters.n_epochs: expected one of epochCount" in str(caught.value)


def test_rft_and_distillation_errors_name_the_line_and_the_field() -> None:
    text = yaml.safe_dump(rft_manifest(rft={"hyperparameters": {"batchSize": 8}}), sort_keys=False)
    with pytest.raises(ManifestError) as error:
        load_manifest(text, "jobs/rft.yaml")
    line = 1 + text.splitlines().index("  hyperparameters:")
    assert f"jobs/rft.yaml:{line}: rft.hyperparameters: batchSize: expected 16 to 512" in str(
        error.value
    )
    assert "API_RFTHyperParameters.html); got 8" in str(error.value)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (lambda: rft_manifest(base_model=NOVA), "REINFORCEMENT_FINE_TUNING: base_model must be"),
        (
            lambda: rft_manifest(base_model="openai.gpt-oss-20b"),
            "rft.grader_lambda_arn is required for openai.gpt-oss-20b",
        ),
        (
            lambda: rft_manifest(hyperparameters={"epochCount": 2}),
            "takes its hyperparameters in rft.hyperparameters",
        ),
        (
            lambda: rft_manifest(rft={"grader_lambda_arn": "arn:aws:lambda:*"}),
            "expected a Lambda function ARN",
        ),
        (
            lambda: bedrock_manifest(rft={"hyperparameters": {}}),
            "rft applies only to REINFORCEMENT_FINE_TUNING",
        ),
        (
            lambda: {
                **bedrock_manifest(
                    customization_type="DISTILLATION",
                    distillation={"teacher_model": "amazon.nova-lite-v1:0"},
                ),
                "hyperparameters": {},
            },
            "distillation.teacher_model: a teacher of the distillation table",
        ),
        (
            lambda: {
                k: v
                for k, v in bedrock_manifest(
                    customization_type="DISTILLATION",
                    distillation={"teacher_model": "amazon.nova-pro-v1:0"},
                ).items()
                if k not in ("training_data_uri", "hyperparameters")
            },
            "training_data_uri is required",
        ),
    ],
)
def test_customization_type_rules(spec, message) -> None:
    with pytest.raises(ManifestError, match=re.escape(message)):
        parse_manifest(spec())


def test_a_distillation_from_invocation_logs_needs_no_training_file() -> None:
    spec = bedrock_manifest(
        customization_type="DISTILLATION",
        distillation={
            "teacher_model": "us.amazon.nova-pro-v1:0",
            "invocation_logs_uri": "s3://data-bucket/training-data/raw/logs/",
            "use_prompt_response": True,
        },
    )
    del spec["training_data_uri"], spec["hyperparameters"]
    manifest = parse_manifest(spec)
    assert manifest.training_data_uri is None
    assert manifest.distillation.use_prompt_response is True


def test_the_open_weight_manifest_of_docs_bedrock_md_is_valid() -> None:
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[3] / "docs" / "bedrock.md").read_text()
    (block,) = re.findall(r"```yaml\n(# jobs/rft-oss\.yaml.*?)```", doc, flags=re.S)
    block = block.replace("<data bucket>", "llm-finetuning-dev-data-123456789012-us-west-2")
    manifest = load_manifest(block, "docs/bedrock.md")
    assert manifest.base_model == "openai.gpt-oss-20b"
    assert manifest.rft is not None and manifest.rft.hyperparameters == {
        "n_epochs": 1,
        "batch_size": 4,
        "learning_rate_multiplier": 1.0,
    }
