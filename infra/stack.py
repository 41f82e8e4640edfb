"""``Billing-{stage}``: the serverless usage-billing stack.

Main resources and their construct IDs (logical IDs start with them):
``UsageTable``, ``IntakeQueue``/``IntakeDlq``, ``UsageBus``/``UsageToIntakeRule``,
``IngestFunction``, ``RejectsBucket``, ``InvoiceBucket``/``InvoiceKey``,
``FinanceReadPolicy``/``FinanceRole``, ``PseudonymSecret``, ``MonthCloseStateMachine`` with
the ``Close*Function`` tasks, ``MonthCloseSchedule``, alarms and ``BillingDashboard``.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Stack, Tags
from constructs import Construct

from infra.bundling import lambda_code
from infra.config import BillingConfig
from infra.expiry import Expiry, build_expiry
from infra.functions import shared_environment
from infra.intake import Intake, build_bus, build_intake
from infra.live import Live, build_live
from infra.monitoring import Monitoring, build_monitoring
from infra.month_close import MonthClose, build_month_close
from infra.storage import Storage, build_storage


def stack_name(config: BillingConfig) -> str:
    return f"Billing-{config.stage}"


class BillingStack(Stack):
    storage: Storage
    intake: Intake
    month_close: MonthClose
    live: Live
    expiry: Expiry
    monitoring: Monitoring

    def __init__(
        self, scope: Construct, construct_id: str, *, config: BillingConfig, **kwargs: Any
    ) -> None:
        super().__init__(
            scope,
            construct_id,
            description=f"Usage billing of the communications platform ({config.stage})",
            **kwargs,
        )
        self.config = config
        Tags.of(self).add("project", "cpaas-billing")
        Tags.of(self).add("stage", config.stage)

        self.storage = build_storage(self, config)
        bus = build_bus(self, config)
        environment = shared_environment(
            config,
            table_name=self.storage.table.table_name,
            invoice_bucket=self.storage.invoice_bucket.bucket_name,
            rejects_bucket=self.storage.rejects_bucket.bucket_name,
            bus_name=bus.event_bus_name,
            pseudonym_secret_arn=self.storage.pseudonym_secret.secret_arn,
        )
        code = lambda_code(install_dependencies=config.bundle_dependencies)

        self.intake = build_intake(
            self, config, bus=bus, storage=self.storage, code=code, environment=environment
        )
        # billing replay: re-send rejected and dead-lettered events to the intake queue.
        self.intake.queue.grant_send_messages(self.storage.operator_policy)
        self.intake.dlq.grant_consume_messages(self.storage.operator_policy)
        self.live = build_live(
            self, config, storage=self.storage, bus=bus, code=code, environment=environment
        )
        self.expiry = build_expiry(
            self, config, storage=self.storage, code=code, environment=environment
        )
        self.month_close = build_month_close(
            self, config, storage=self.storage, bus=bus, code=code, environment=environment
        )
        self.monitoring = build_monitoring(
            self,
            config,
            queue=self.intake.queue,
            dlq=self.intake.dlq,
            rule_dlq=self.intake.rule_dlq,
            ingest=self.intake.function,
            close_functions=self.month_close.functions,
            state_machine=self.month_close.state_machine,
            live=self.live,
            expiry=self.expiry,
        )
        self._outputs()

    def _outputs(self) -> None:
        outputs = {
            "IntakeQueueUrl": (self.intake.queue.queue_url, "SQS queue producers send to"),
            "IntakeDlqUrl": (self.intake.dlq.queue_url, "dead letters of the intake queue"),
            "UsageBusName": (self.intake.bus.event_bus_name, "EventBridge bus for usage events"),
            "UsageTableName": (self.storage.table.table_name, "DynamoDB usage table"),
            "InvoiceBucketName": (self.storage.invoice_bucket.bucket_name, "invoices bucket"),
            "RejectsBucketName": (self.storage.rejects_bucket.bucket_name, "rejected events"),
            "MonthCloseStateMachineArn": (
                self.month_close.state_machine.state_machine_arn,
                "month-close state machine",
            ),
            "FinanceReadPolicyArn": (
                self.storage.finance_policy.managed_policy_arn,
                "managed policy: read the published invoices",
            ),
            "OperatorRejectsPolicyArn": (
                self.storage.operator_policy.managed_policy_arn,
                "managed policy: read, delete and replay rejected events",
            ),
            "AlarmTopicArn": (self.monitoring.topic.topic_arn, "alarm notifications"),
        }
        if self.storage.finance_role is not None:
            outputs["FinanceRoleArn"] = (self.storage.finance_role.role_arn, "role finance assumes")
        if self.storage.operator_role is not None:
            outputs["OperatorRoleArn"] = (
                self.storage.operator_role.role_arn,
                "role operators assume for rejected events",
            )
        for output_id, (value, description) in outputs.items():
            CfnOutput(self, output_id, value=value, description=description)
