"""RFT grader: Bedrock sends a batch of answers, the platform's scoring returns their rewards.

Event: a list of ``{"id", "messages", "reference_answer" | "metadata"}``; result: a list of
``{"id", "aggregate_reward_score", "metrics_list"}`` (finetuning/evaluation/rewards.py).
"""

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from finetuning.evaluation.rewards import grade_batch

logger, tracer, metrics = Logger(), Tracer(), Metrics()


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: Any, context: LambdaContext) -> list[dict[str, Any]]:
    samples = event if isinstance(event, list) else [event]
    rewards = grade_batch(samples)
    metrics.add_metric(name="GradedSamples", unit=MetricUnit.Count, value=len(rewards))
    if rewards:
        mean = sum(r["aggregate_reward_score"] for r in rewards) / len(rewards)
        logger.info("graded batch", extra={"samples": len(rewards), "mean_reward": mean})
    return rewards
