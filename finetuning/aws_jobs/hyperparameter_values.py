"""How a hyperparameter value is written into a request.

Both services take hyperparameters as a map of strings. Bedrock reads plain numbers and
``true``/``false``. ``train.py`` parses ``--name value`` arguments, booleans as
``True``/``False``; SageMaker script mode passes each value through JSON, the way the
SageMaker Python SDK's framework estimators encode them (``Framework._json_encode_hyperparameters``)
and the training toolkit decodes them (``json.loads`` per value, falling back to the raw
string) before turning them into arguments:
https://github.com/aws/sagemaker-python-sdk/blob/master/src/sagemaker/estimator.py
https://github.com/aws/sagemaker-training-toolkit/blob/master/src/sagemaker_training/environment.py
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any


def plain_decimal(value: float) -> str:
    """A number as plain decimal text, no exponent: 1e-05 -> ``0.00001``, 2.0 -> ``2``."""
    return format(Decimal(repr(float(value))).normalize(), "f")


def bedrock_value(value: Any) -> str:
    """``2``, ``0.00001``, ``true``: the strings CreateModelCustomizationJob takes."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return plain_decimal(value)
    return str(value)


def train_argument_value(value: Any) -> str:
    """``2``, ``0.0002``, ``True``: a ``train.py`` argument as the script parses it."""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return plain_decimal(value)
    return str(value)


def json_encoded(values: Mapping[str, Any]) -> dict[str, str]:
    """Script-mode HyperParameters: every value JSON-encoded."""
    return {name: json.dumps(value) for name, value in values.items()}


def json_decoded(value: str) -> str:
    """A script-mode value back as text (a value that is not JSON is returned as it is)."""
    try:
        decoded = json.loads(value)
    except ValueError:
        return value
    return decoded if isinstance(decoded, str) else json.dumps(decoded)
