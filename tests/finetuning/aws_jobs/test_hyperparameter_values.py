"""How hyperparameter values are written for Bedrock, train.py and script mode."""

from __future__ import annotations

import pytest

from finetuning.aws_jobs.hyperparameter_values import (
    bedrock_value,
    json_decoded,
    json_encoded,
    plain_decimal,
    train_argument_value,
)


@pytest.mark.parametrize(
    ("value", "bedrock", "train"),
    [
        (2, "2", "2"),
        (2.0, "2", "2"),
        (1e-05, "0.00001", "0.00001"),
        (1e-13, "0.0000000000001", "0.0000000000001"),
        (0.5, "0.5", "0.5"),
        (True, "true", "True"),
        (False, "false", "False"),
        ("cosine", "cosine", "cosine"),
    ],
)
def test_values(value: object, bedrock: str, train: str) -> None:
    assert bedrock_value(value) == bedrock
    assert train_argument_value(value) == train


def test_plain_decimal_never_uses_an_exponent() -> None:
    assert plain_decimal(2e-4) == "0.0002"
    assert plain_decimal(1e20) == "100000000000000000000"


def test_script_mode_values_round_trip_through_json() -> None:
    encoded = json_encoded({"lr": "0.0002", "level": 20, "torchrun": True})
    assert encoded == {"lr": '"0.0002"', "level": "20", "torchrun": "true"}
    assert {k: json_decoded(v) for k, v in encoded.items()} == {
        "lr": "0.0002",
        "level": "20",
        "torchrun": "true",
    }
    assert json_decoded("not json") == "not json"
