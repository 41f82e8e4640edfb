"""Alarms, the alarm topic and the ``BillingDashboard``."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Duration, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn

from infra.config import BillingConfig
from infra.expiry import Expiry
from infra.functions import removal_policy
from infra.live import Live

ONE_MINUTE = Duration.minutes(1)
FIVE_MINUTES = Duration.minutes(5)


@dataclass(frozen=True)
class Monitoring:
    topic: sns.Topic
    alarms: dict[str, cloudwatch.Alarm]
    dashboard: cloudwatch.Dashboard


def build_monitoring(
    stack: Stack,
    config: BillingConfig,
    *,
    queue: sqs.Queue,
    dlq: sqs.Queue,
    rule_dlq: sqs.Queue,
    ingest: lambda_.Function,
    close_functions: dict[str, lambda_.Function],
    state_machine: sfn.StateMachine,
    live: Live,
    expiry: Expiry,
) -> Monitoring:
    # CloudWatch can publish only to topics encrypted with a key whose policy lets it.
    topic_key = kms.Key(
        stack,
        "AlarmTopicKey",
        description=f"billing-{config.stage}: encrypts the alarm topic",
        enable_key_rotation=True,
        removal_policy=removal_policy(config),
    )
    topic_key.grant(
        iam.ServicePrincipal("cloudwatch.amazonaws.com"), "kms:Decrypt", "kms:GenerateDataKey*"
    )
    topic = sns.Topic(
        stack,
        "AlarmTopic",
        display_name=f"billing-{config.stage} alarms",
        master_key=topic_key,
        enforce_ssl=True,
    )
    if config.alarm_email:
        topic.add_subscription(subscriptions.EmailSubscription(config.alarm_email))
    action = cw_actions.SnsAction(topic)

    def alarm(
        construct_id: str,
        metric: cloudwatch.IMetric,
        description: str,
        *,
        threshold: float = 0,
        periods: int = 1,
    ) -> cloudwatch.Alarm:
        created = cloudwatch.Alarm(
            stack,
            construct_id,
            alarm_name=f"billing-{config.stage}-{construct_id.removesuffix('Alarm')}",
            alarm_description=description,
            metric=metric,
            threshold=threshold,
            evaluation_periods=periods,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        created.add_alarm_action(action)
        return created

    def close_metric(name: str, statistic: str) -> cloudwatch.Metric:
        """A metric the month close's tasks publish (``billing.close``)."""
        return cloudwatch.Metric(
            namespace="Billing",
            metric_name=name,
            dimensions_map={"service": "billing-close"},
            period=FIVE_MINUTES,
            statistic=statistic,
        )

    def expiry_metric(name: str) -> cloudwatch.Metric:
        """A metric the expiry guard publishes (``functions.expiry.handler``)."""
        return cloudwatch.Metric(
            namespace="Billing",
            metric_name=name,
            dimensions_map={"service": "billing-expiry"},
            period=FIVE_MINUTES,
            statistic="Sum",
        )

    close_errors = cloudwatch.MathExpression(
        expression=" + ".join(f"FILL(e{i}, 0)" for i in range(len(close_functions))),
        using_metrics={
            f"e{i}": function.metric_errors(period=FIVE_MINUTES, statistic="Sum")
            for i, function in enumerate(close_functions.values())
        },
        label="Month-close function errors",
        period=FIVE_MINUTES,
    )
    alarms = {
        "IntakeDlqAlarm": alarm(
            "IntakeDlqAlarm",
            dlq.metric_approximate_number_of_messages_visible(
                period=ONE_MINUTE, statistic="Maximum"
            ),
            "Usage events failed ingestion repeatedly and wait in the intake DLQ",
        ),
        "UsageRuleDlqAlarm": alarm(
            "UsageRuleDlqAlarm",
            rule_dlq.metric_approximate_number_of_messages_visible(
                period=ONE_MINUTE, statistic="Maximum"
            ),
            "EventBridge could not deliver usage events from the bus to the intake queue",
        ),
        "IngestErrorsAlarm": alarm(
            "IngestErrorsAlarm",
            ingest.metric_errors(period=FIVE_MINUTES, statistic="Sum"),
            "The ingest function failed whole invocations",
        ),
        "IntakeAgeAlarm": alarm(
            "IntakeAgeAlarm",
            queue.metric_approximate_age_of_oldest_message(
                period=FIVE_MINUTES, statistic="Maximum"
            ),
            "Usage events wait in the intake queue for more than 15 minutes",
            threshold=900,
            periods=3,
        ),
        "MonthCloseFailedAlarm": alarm(
            "MonthCloseFailedAlarm",
            state_machine.metric_failed(period=FIVE_MINUTES, statistic="Sum"),
            "A month-close execution failed",
        ),
        "MonthCloseTimedOutAlarm": alarm(
            "MonthCloseTimedOutAlarm",
            state_machine.metric_timed_out(period=FIVE_MINUTES, statistic="Sum"),
            "A month-close execution timed out",
        ),
        "LiveLagAlarm": alarm(
            "LiveLagAlarm",
            live.function.metric(
                "IteratorAge",
                period=FIVE_MINUTES,
                statistic="Maximum",
                unit=cloudwatch.Unit.MILLISECONDS,
            ),
            "The live view of usage lags the fact log by more than 10 minutes",
            threshold=600_000,
            periods=2,
        ),
        "LiveDlqAlarm": alarm(
            "LiveDlqAlarm",
            live.dlq.metric_approximate_number_of_messages_visible(
                period=ONE_MINUTE, statistic="Maximum"
            ),
            "Stream records the live view could not process after retries (the close's "
            "reconciliation and billing usage --recompute still give the exact figures)",
        ),
        "LiveViewDifferencesAlarm": alarm(
            "LiveViewDifferencesAlarm",
            close_metric("LiveViewDifferences", "Sum"),
            "The month close found figures where the live view differs from the invoice",
        ),
        "ArchiveMissingAlarm": alarm(
            "ArchiveMissingAlarm",
            close_metric("ArchiveMissing", "Maximum"),
            "Facts of the period whose table items expire next (in ~2 weeks) are not all "
            "archived: re-run the close of each account/period logged by CloseFinish",
        ),
        "ExpiredUnarchivedAlarm": alarm(
            "ExpiredUnarchivedAlarm",
            cloudwatch.MathExpression(
                expression="FILL(u, 0) + FILL(m, 0)",
                using_metrics={
                    "u": expiry_metric("ExpiredUnarchived"),
                    "m": expiry_metric("ExpiredMissedByClose"),
                },
                label="Fact items expired before their close archived them",
                period=FIVE_MINUTES,
            ),
            "Fact items reached their TTL before the close that bills them archived them "
            "(kept by the expiry guard): run the overdue close",
        ),
        "ExpiryDlqAlarm": alarm(
            "ExpiryDlqAlarm",
            expiry.dlq.metric_approximate_number_of_messages_visible(
                period=ONE_MINUTE, statistic="Maximum"
            ),
            "TTL deletions the expiry guard could not decide on after retries: each DLQ "
            "record holds a deleted fact item to put back",
        ),
        "CloseFunctionErrorsAlarm": alarm(
            "CloseFunctionErrorsAlarm",
            close_errors,
            "Month-close task functions failed (a failed account is recorded, not retried)",
        ),
    }

    dashboard = cloudwatch.Dashboard(
        stack,
        "BillingDashboard",
        dashboard_name=f"billing-{config.stage}",
        default_interval=Duration.days(1),
    )
    dashboard.add_widgets(
        cloudwatch.TextWidget(
            markdown=f"# Billing ({config.stage})\nIngest, intake queue and month close.",
            width=24,
            height=2,
        )
    )
    dashboard.add_widgets(
        cloudwatch.GraphWidget(
            title="Ingest throughput",
            left=[
                ingest.metric_invocations(period=ONE_MINUTE, statistic="Sum"),
                queue.metric_number_of_messages_deleted(period=ONE_MINUTE, statistic="Sum"),
            ],
            width=8,
        ),
        cloudwatch.GraphWidget(
            title="Ingest errors and throttles",
            left=[
                ingest.metric_errors(period=ONE_MINUTE, statistic="Sum"),
                ingest.metric_throttles(period=ONE_MINUTE, statistic="Sum"),
            ],
            width=8,
        ),
        cloudwatch.GraphWidget(
            title="Ingest duration",
            left=[
                ingest.metric_duration(period=ONE_MINUTE, statistic="p50"),
                ingest.metric_duration(period=ONE_MINUTE, statistic="p99"),
                ingest.metric_duration(period=ONE_MINUTE, statistic="Maximum"),
            ],
            width=8,
        ),
    )
    dashboard.add_widgets(
        cloudwatch.GraphWidget(
            title="Intake queue depth",
            left=[
                queue.metric_approximate_number_of_messages_visible(
                    period=ONE_MINUTE, statistic="Maximum"
                ),
                queue.metric_approximate_number_of_messages_not_visible(
                    period=ONE_MINUTE, statistic="Maximum"
                ),
            ],
            width=8,
        ),
        cloudwatch.GraphWidget(
            title="Intake queue age of oldest message (s)",
            left=[
                queue.metric_approximate_age_of_oldest_message(
                    period=ONE_MINUTE, statistic="Maximum"
                )
            ],
            width=8,
        ),
        cloudwatch.GraphWidget(
            title="Dead-letter queues",
            left=[
                dlq.metric_approximate_number_of_messages_visible(
                    period=ONE_MINUTE, statistic="Maximum", label="IntakeDlq"
                ),
                rule_dlq.metric_approximate_number_of_messages_visible(
                    period=ONE_MINUTE, statistic="Maximum", label="UsageRuleDlq"
                ),
            ],
            width=8,
        ),
    )
    dashboard.add_widgets(
        cloudwatch.GraphWidget(
            title="Month-close executions",
            left=[
                state_machine.metric_started(period=Duration.hours(1), statistic="Sum"),
                state_machine.metric_succeeded(period=Duration.hours(1), statistic="Sum"),
                state_machine.metric_failed(period=Duration.hours(1), statistic="Sum"),
                state_machine.metric_timed_out(period=Duration.hours(1), statistic="Sum"),
            ],
            width=8,
        ),
        cloudwatch.GraphWidget(
            title="Month-close function errors",
            left=[
                function.metric_errors(period=FIVE_MINUTES, statistic="Sum", label=name)
                for name, function in close_functions.items()
            ],
            width=8,
        ),
        cloudwatch.AlarmStatusWidget(
            title="Alarms",
            alarms=list(alarms.values()),
            width=8,
        ),
    )
    return Monitoring(topic=topic, alarms=alarms, dashboard=dashboard)
