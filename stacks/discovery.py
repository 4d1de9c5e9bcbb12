"""Publishing resource names as SSM parameters so clients find the platform by itself.

Every stack publishes through :func:`publish_parameter`; the names are the contract in
``finetuning/platform.py`` (``PlatformParameter``, ``OrchestrationParameter``,
``ServingParameter``).
"""

from __future__ import annotations

from aws_cdk import aws_ssm as ssm
from constructs import Construct

from finetuning.platform import Parameter, parameter_name
from stacks.settings import PlatformSettings


def parameter_construct_id(parameter: Parameter) -> str:
    """``Param`` + the leaf name in CamelCase: ``buckets/data`` -> ``ParamBucketsData``."""
    return "Param" + "".join(
        part.capitalize() for part in parameter.value.replace("/", "-").split("-")
    )


def publish_parameter(
    scope: Construct,
    settings: PlatformSettings,
    parameter: Parameter,
    value: str,
    *,
    construct_id: str | None = None,
) -> ssm.StringParameter:
    """One String parameter at ``/<project>/<environment>/<parameter>``.

    ``construct_id`` keeps the id a stack gave the parameter before it published here: a
    named parameter cannot be replaced in place, so its logical id must never change."""
    return ssm.StringParameter(
        scope,
        construct_id or parameter_construct_id(parameter),
        parameter_name=parameter_name(settings.project, settings.environment, parameter),
        string_value=value,
        description=f"{settings.resource_prefix}: {parameter.name.lower().replace('_', ' ')}",
    )
