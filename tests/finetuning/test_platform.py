"""The one SSM contract (``finetuning/platform.py``): every stack's parameter names, the
prefix, and the project/environment defaults that the library, the CLI and the CDK app share."""

from __future__ import annotations

from finetuning import discovery, platform_client
from finetuning.platform import (
    DEFAULT_ENVIRONMENT,
    DEFAULT_PROJECT,
    ENVIRONMENT_VARIABLE,
    PROJECT_VARIABLE,
    OrchestrationParameter,
    PlatformParameter,
    ServingParameter,
    parameter_name,
)
from stacks.settings import PlatformSettings

ALL = (*PlatformParameter, *OrchestrationParameter, *ServingParameter)


def test_defaults_and_variables_are_pinned() -> None:
    assert (DEFAULT_PROJECT, DEFAULT_ENVIRONMENT) == ("llm-finetuning", "dev")
    assert (PROJECT_VARIABLE, ENVIRONMENT_VARIABLE) == ("FINETUNE_PROJECT", "FINETUNE_ENVIRONMENT")
    assert PlatformSettings.model_fields["project"].default == DEFAULT_PROJECT


def test_library_and_cli_read_the_same_coordinates(monkeypatch) -> None:
    monkeypatch.setenv(PROJECT_VARIABLE, "acme")
    monkeypatch.setenv(ENVIRONMENT_VARIABLE, "prod")
    client = platform_client.PlatformClient(clients=lambda service: None)
    assert discovery.platform_coordinates() == ("acme", "prod")
    assert (client.project, client.environment) == ("acme", "prod")


def test_every_name_is_unique_and_under_its_stacks_folder() -> None:
    leaves = [parameter.value for parameter in ALL]
    assert len(leaves) == len(set(leaves))
    assert {p.value.split("/")[0] for p in OrchestrationParameter} == {"orchestration"}
    assert {p.value.split("/")[0] for p in ServingParameter} == {"serving"}


def test_full_names() -> None:
    assert parameter_name("llm-finetuning", "dev", ServingParameter.DEPLOY_FUNCTION) == (
        "/llm-finetuning/dev/serving/deploy-function-arn"
    )
    assert parameter_name("p", "e", OrchestrationParameter.STATE_MACHINE_ARN) == (
        "/p/e/orchestration/state-machine-arn"
    )
    assert parameter_name("p", "e", PlatformParameter.DATA_BUCKET) == "/p/e/buckets/data"
