"""SageMaker metric definitions for the log lines ``train.py`` prints.

Standard library only: the CDK stacks and the SageMaker backend import this module where torch is
not installed.

``train.py`` prints one line per logging step and one per evaluation, each a tag followed by
space-separated ``name=value`` pairs::

    metrics: step=20 epoch=0.5 train_loss=1.2345 learning_rate=0.000196 grad_norm=0.81
        tokens_per_second=5321.4
    eval: step=20 epoch=0.5 eval_loss=1.3012 eval_perplexity=3.67349

(each line is one line on stdout; the metrics line is wrapped here to fit)

Every regex below starts with a space so that a name never matches inside a longer one
(``tokens_per_second=`` must not match ``train_tokens_per_second=`` in the final summary line).

Limits (CreateTrainingJob ``AlgorithmSpecification.MetricDefinitions``): at most 40 definitions,
``Name`` 1-255 characters, ``Regex`` 1-500 characters.
https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_MetricDefinition.html
https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_AlgorithmSpecification.html
"""

from __future__ import annotations

# A decimal or scientific-notation number as Python formats floats (1.5, 2.000e-04). One plain
# character class and a single capture group: nothing that differs between regex dialects.
NUMBER = r"([-+0-9.eE]+)"

# The keys train.py prints, which are also the metric names SageMaker and CloudWatch show and the
# keys of metrics.json. One tuple, so the printer and the regexes cannot drift apart.
LOGGED_METRICS: tuple[str, ...] = (
    "train_loss",
    "learning_rate",
    "grad_norm",
    "epoch",
    "tokens_per_second",
    "eval_loss",
    "eval_perplexity",
)

MAX_METRIC_DEFINITIONS = 40
MAX_NAME_LENGTH = 255
MAX_REGEX_LENGTH = 500

METRIC_DEFINITIONS: list[dict[str, str]] = [
    {"Name": key, "Regex": rf" {key}={NUMBER}"} for key in LOGGED_METRICS
]

assert len(METRIC_DEFINITIONS) <= MAX_METRIC_DEFINITIONS
assert all(
    1 <= len(d["Name"]) <= MAX_NAME_LENGTH and 1 <= len(d["Regex"]) <= MAX_REGEX_LENGTH
    for d in METRIC_DEFINITIONS
)
