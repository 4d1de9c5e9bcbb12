"""A monthly AWS Budgets cost budget for one environment, notifying SNS and e-mail.

Notification limits (ten per budget, ten e-mail subscribers each) are checked by
``stacks.settings.monitoring.BudgetSettings``, see
https://docs.aws.amazon.com/aws-cost-management/latest/APIReference/API_budgets_NotificationWithSubscribers.html
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import aws_budgets as budgets
from aws_cdk import aws_sns as sns
from constructs import Construct

from stacks.constructs.logical_ids import keep_stack_logical_ids
from stacks.settings.monitoring import BudgetSettings


@dataclass(frozen=True)
class CostBudgetProps:
    """The budget and whom it tells.

    - ``prefix``: ``<project>-<environment>``; the budget is ``<prefix>-monthly``.
    - ``project``, ``environment``: the cost allocation tag values a ``tags`` scope filters on.
    - ``budget``: ``monitoring.budget`` of the environment's settings.
    - ``topic``: subscribed to every threshold (the topic must let Budgets publish).
    - ``keep_stack_logical_ids``: give the resources the logical ids they would have as
      direct children of the stack (for stacks that built them so before).
    """

    prefix: str
    project: str
    environment: str
    budget: BudgetSettings
    topic: sns.ITopic
    keep_stack_logical_ids: bool = False


class CostBudget(Construct):
    """One ``AWS::Budgets::Budget`` (:attr:`budget`)."""

    def __init__(self, scope: Construct, construct_id: str, *, props: CostBudgetProps):
        super().__init__(scope, construct_id)
        self._props = props
        self.budget = self._budget(props.budget)
        if props.keep_stack_logical_ids:
            keep_stack_logical_ids(self)

    def _budget(self, budget: BudgetSettings) -> budgets.CfnBudget:
        settings = self._props
        filter_expression = None
        if budget.scope == "tags":
            # The tags apply_tags puts on every resource; activate them as cost allocation
            # tags, see https://docs.aws.amazon.com/awsaccountbilling/latest/aboutv2/activating-tags.html
            filter_expression = budgets.CfnBudget.ExpressionProperty(
                and_=[
                    budgets.CfnBudget.ExpressionProperty(
                        tags=budgets.CfnBudget.TagValuesProperty(
                            key=key, values=[value], match_options=["EQUALS"]
                        )
                    )
                    for key, value in (
                        ("project", settings.project),
                        ("environment", settings.environment),
                    )
                ]
            )
        subscribers = [
            budgets.CfnBudget.SubscriberProperty(
                subscription_type="SNS", address=self._props.topic.topic_arn
            ),
            *(
                budgets.CfnBudget.SubscriberProperty(subscription_type="EMAIL", address=address)
                for address in budget.email_subscribers
            ),
        ]
        return budgets.CfnBudget(
            self,
            "Budget",
            budget=budgets.CfnBudget.BudgetDataProperty(
                budget_name=f"{self._props.prefix}-monthly",
                budget_type="COST",
                time_unit="MONTHLY",
                budget_limit=budgets.CfnBudget.SpendProperty(
                    amount=budget.monthly_limit_usd, unit="USD"
                ),
                filter_expression=filter_expression,
            ),
            notifications_with_subscribers=[
                budgets.CfnBudget.NotificationWithSubscribersProperty(
                    notification=budgets.CfnBudget.NotificationProperty(
                        notification_type=threshold.type.value,
                        comparison_operator="GREATER_THAN",
                        threshold=threshold.percent,
                        threshold_type="PERCENTAGE",
                    ),
                    subscribers=subscribers,
                )
                for threshold in budget.thresholds
            ],
        )
