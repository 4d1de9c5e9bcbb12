"""The one strict settings base and the one default instance type (finetuning/settings.py).

The library's models (job manifest, serving settings, quality gate) and the stacks' settings
share one base and one instance-type check; every default instance type is the one constant.
"""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from finetuning.approved_model_deployment import EndpointSettings, ServingSettings
from finetuning.aws_jobs.instance_types import DEFAULT_INSTANCE_TYPE
from finetuning.cli import main
from finetuning.evaluation.gate import QualityGate
from finetuning.orchestration.manifest import EvaluationSpec, JobManifest
from finetuning.settings import INSTANCE_TYPE_RULE, InstanceType, StrictModel
from stacks.settings import TrainingSettings
from stacks.settings.base import StrictModel as StacksStrictModel


def test_the_default_instance_type_is_pinned() -> None:
    assert DEFAULT_INSTANCE_TYPE == "ml.g5.2xlarge"


def test_every_default_instance_type_is_the_one_constant() -> None:
    assert EndpointSettings().instance_type == DEFAULT_INSTANCE_TYPE
    assert EvaluationSpec().instance_type == DEFAULT_INSTANCE_TYPE
    assert TrainingSettings().default_instance_type == DEFAULT_INSTANCE_TYPE


def test_the_cli_names_the_default_it_applies(capsys: pytest.CaptureFixture[str]) -> None:
    # The library applies DEFAULT_INSTANCE_TYPE to SageMaker jobs that name none.
    with pytest.raises(SystemExit):
        main(["job", "create", "--help"])
    assert f"default {DEFAULT_INSTANCE_TYPE}" in " ".join(capsys.readouterr().out.split())


def test_library_and_stacks_share_one_strict_base() -> None:
    assert StacksStrictModel is StrictModel
    for model in (ServingSettings, EndpointSettings, JobManifest, EvaluationSpec, QualityGate):
        assert issubclass(model, StrictModel), model
    assert issubclass(TrainingSettings, StrictModel)


class _Example(StrictModel):
    instance_type: InstanceType = DEFAULT_INSTANCE_TYPE


def test_strict_base_refuses_unknown_fields_and_changes() -> None:
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        _Example(instance_tpye="ml.g5.xlarge")
    example = _Example()
    with pytest.raises(ValidationError, match="frozen"):
        example.instance_type = "ml.g5.xlarge"


@pytest.mark.parametrize("value", ["g5.2xlarge", "ml.g5", "ml.G5.2xlarge", "ml.g5.2xlarge "])
def test_one_instance_type_rule_everywhere(value: str) -> None:
    for build in (
        lambda: _Example(instance_type=value),
        lambda: EndpointSettings(instance_type=value),
        lambda: EvaluationSpec(instance_type=value),
        lambda: TrainingSettings(default_instance_type=value),
    ):
        with pytest.raises(ValidationError) as error:
            build()
        assert INSTANCE_TYPE_RULE in str(error.value)
    assert "ml.<family>.<size>" in INSTANCE_TYPE_RULE


def test_instance_types_in_the_rule_pass() -> None:
    assert _Example(instance_type="ml.p4d.24xlarge").instance_type == "ml.p4d.24xlarge"
    assert EndpointSettings(instance_type="ml.g6e.xlarge").instance_family == "g6e"
