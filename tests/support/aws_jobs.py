"""Checks shared by the tests of the shared request builders."""

from __future__ import annotations

from typing import Any

import botocore.session
from botocore.validate import ParamValidator


def assert_valid(service: str, operation: str, params: dict[str, Any]) -> None:
    """``params`` satisfy botocore's service model for ``operation``."""
    model = botocore.session.get_session().get_service_model(service)
    report = ParamValidator().validate(params, model.operation_model(operation).input_shape)
    assert not report.has_errors(), report.generate_report()
