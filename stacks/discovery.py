"""Publishing resource names as SSM parameters so clients find the platform by itself."""

from __future__ import annotations

from aws_cdk import aws_ssm as ssm
from constructs import Construct

from finetuning.platform import PlatformParameter, parameter_name
from stacks.settings import PlatformSettings


def publish_parameter(
    scope: Construct, settings: PlatformSettings, parameter: PlatformParameter, value: str
) -> ssm.StringParameter:
    """One String parameter at ``/<project>/<environment>/<parameter>``."""
    construct_id = "Param" + "".join(
        part.capitalize() for part in parameter.value.replace("/", "-").split("-")
    )
    return ssm.StringParameter(
        scope,
        construct_id,
        parameter_name=parameter_name(settings.project, settings.environment, parameter),
        string_value=value,
        description=f"{settings.resource_prefix}: {parameter.name.lower().replace('_', ' ')}",
    )
