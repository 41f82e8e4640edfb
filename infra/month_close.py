"""The month close: its task functions, the state machine's definition and its schedule.

Flow (``MonthCloseStateMachine``)::

    Freeze (takes the period's lock for $$.Execution.Id; refuses a period not ended
            unless "force"; a second execution of the period fails: CloseInProgress)
    -> Close (Parallel, one branch; any failure -> ReleaseLock -> CloseFailed):
         Settle (Wait $.settle_seconds) -> StartListing (cursor = null)
         -> ListAccounts (page of accounts, ResultPath $.page)
         -> CloseAccounts (Map over $.page.accounts, one iteration per account):
                PlanAccount (units sized to the account: groups of storage shards)
                -> ComputeShards (Map over $.units: ComputeShard) -> RateAccount
                any failure of those three -> RecordFailure (the account is recorded, the
                close goes on with the other accounts)
         -> MorePages? (cursor present and not null: NextPage -> ListAccounts)
         -> PlanAudit (the close's $.buckets, none for a draft close, grouped in as few
                       tasks as hold their ids in one pass each; ResultPath $.audit)
         -> AuditIds (Map over $.audit.tasks: AuditIdBucket, the close's id audit of a
                      task's buckets, each id file read once for all of them)
         -> Finish (writes the period's documents under its documents lock, retried on
                    PeriodDocumentsBusy; announces each invoice once, releases the lock)

Every task is a Lambda invocation whose output is the function's return value
(``payload_response_only``), retried on Lambda service errors and throttling.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aws_cdk import Duration, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks

from infra.config import BillingConfig
from infra.functions import billing_function, function_name, removal_policy, retention
from infra.nag import acknowledge_findings, arn_ref
from infra.storage import (
    ARCHIVE_PREFIX,
    DRAFTS_PREFIX,
    IDS_PREFIX,
    INVOICES_PREFIX,
    STATE_PREFIX,
    WORK_PREFIX,
    Storage,
)

HANDLERS = "functions.close.handlers"
LONG_TIMEOUT = Duration.seconds(900)
SHORT_TIMEOUT = Duration.seconds(60)

# Errors after which a Lambda invocation is worth repeating: the service's, not ours.
RETRYABLE_LAMBDA_ERRORS = [
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.ClientExecutionTimeoutException",
    "Lambda.TooManyRequestsException",
]


@dataclass(frozen=True)
class CloseTask:
    construct_id: str
    handler: str
    suffix: str
    description: str
    timeout: Duration
    memory_mb: int
    # What the task may do, and nothing more (see docs/architecture.md, permissions):
    # DynamoDB item actions on the usage table, limited to items whose partition key
    # matches one of ``table_keys`` (dynamodb:LeadingKeys); invoice bucket prefixes it
    # reads and writes. No task may delete an object.
    table_actions: tuple[str, ...] = ()
    table_keys: tuple[str, ...] = ()
    reads: tuple[str, ...] = ()
    writes: tuple[str, ...] = ()


_GET, _PUT, _UPDATE, _DELETE = (
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
)
_QUERY, _BATCH_GET = "dynamodb:Query", "dynamodb:BatchGetItem"
_BATCH_WRITE = "dynamodb:BatchWriteItem"


CLOSE_TASKS = (
    CloseTask(
        construct_id="CloseFreezeFunction",
        handler="freeze",
        suffix="close-freeze",
        description="Month close: freezes the period (default: the previous month)",
        timeout=SHORT_TIMEOUT,
        memory_mb=512,
        # the lock (conditional put), the freeze; the lock again if the freeze fails;
        # a scheduled run: whether the group due has any account (the period's accounts,
        # their zones 100 per BatchGetItem) and an empty group drafted or closed at once
        table_actions=(_GET, _PUT, _UPDATE, _DELETE, _QUERY, _BATCH_GET),
        table_keys=("P#*", "CONTROL", "ACCOUNTS", "PLAN#*"),
    ),
    CloseTask(
        construct_id="CloseListAccountsFunction",
        handler="list_accounts",
        suffix="close-list-accounts",
        description="Month close: lists the period's accounts, one page at a time",
        timeout=SHORT_TIMEOUT,
        memory_mb=512,
        # + the zones in use and each account's plan: the accounts of the close group
        table_actions=(_GET, _QUERY),
        table_keys=("P#*", "ACCOUNTS", "CONTROL", "PLAN#*"),
    ),
    CloseTask(
        construct_id="ClosePlanAccountFunction",
        handler="plan_account",
        suffix="close-plan-account",
        description="Month close: sizes one account's close into units of storage shards",
        timeout=SHORT_TIMEOUT,
        memory_mb=512,
        # its result (GetItem), its prior periods with late facts and a count of its
        # period's facts per storage shard, to size its units (Query)
        table_actions=(_GET, _QUERY),
        table_keys=("P#*", "F#*"),
    ),
    CloseTask(
        construct_id="CloseComputeShardFunction",
        handler="compute_shard",
        suffix="close-compute-shard",
        description="Month close: aggregates one unit (storage shards) of one account",
        timeout=LONG_TIMEOUT,
        memory_mb=1769,
        # + the account's zones (GetItem PLAN#{acct}/ZONES): each period's local bounds
        table_actions=(_GET, _QUERY, _BATCH_GET),
        table_keys=("F#*", "E#*", "P#*", "PLAN#*"),
        # + the fact archive: reads the parts of expired periods, writes this close's parts
        reads=(STATE_PREFIX, ARCHIVE_PREFIX),
        # + the ids it read, for the id audit
        writes=(WORK_PREFIX, STATE_PREFIX, ARCHIVE_PREFIX, IDS_PREFIX),
    ),
    CloseTask(
        construct_id="CloseRateAccountFunction",
        handler="rate_account",
        suffix="close-rate-account",
        description="Month close: rates one account and writes its invoice",
        timeout=LONG_TIMEOUT,
        memory_mb=1769,
        # + the billing profile and seller, the number series (the counter's conditional
        # update, the claim and the number's index), drafts (billing.finance)
        table_actions=(_GET, _QUERY, _PUT, _UPDATE),
        table_keys=("P#*", "PLAN#*", "PROFILE#*", "SELLER#*", "SERIES#*", "DOC#*", "L#*"),
        reads=(WORK_PREFIX, INVOICES_PREFIX, ARCHIVE_PREFIX),
        # + the archive manifest of the account's close (billing.adapters.archive.seal)
        writes=(INVOICES_PREFIX, DRAFTS_PREFIX, ARCHIVE_PREFIX),
    ),
    CloseTask(
        construct_id="CloseRecordFailureFunction",
        handler="record_failure",
        suffix="close-record-failure",
        description="Month close: records an account whose close failed",
        timeout=SHORT_TIMEOUT,
        memory_mb=512,
        table_actions=(_PUT, _UPDATE),
        table_keys=("P#*",),
    ),
    CloseTask(
        construct_id="CloseReleaseFunction",
        handler="release",
        suffix="close-release",
        description="Month close: releases the period's close lock when the close fails",
        timeout=SHORT_TIMEOUT,
        memory_mb=512,
        table_actions=(_DELETE,),
        table_keys=("P#*",),
    ),
    CloseTask(
        construct_id="CloseAuditIdsFunction",
        handler="audit_ids",
        suffix="close-audit-ids",
        description="Month close: finds event ids stored with two contents, one id bucket",
        timeout=LONG_TIMEOUT,
        memory_mb=1769,
        # the period's status and the frozen set, each account's zones and settings; each
        # version of a conflicted id: its fact (GetItem), its marker (conditional put) and,
        # in a frozen period, its adjusting markers (BatchWriteItem: P#)
        table_actions=(_GET, _PUT, _BATCH_WRITE, _QUERY),
        table_keys=("F#*", "E#*", "P#*", "CONTROL", "PLAN#*"),
        reads=(IDS_PREFIX,),
    ),
    CloseTask(
        construct_id="CloseFinishFunction",
        handler="finish",
        suffix="close-finish",
        description="Month close: writes the period manifest and announces the close",
        timeout=SHORT_TIMEOUT,
        memory_mb=512,
        # + each numbered document's state for the finance summary (GetItem DOC#*)
        table_actions=(_GET, _QUERY, _PUT, _UPDATE, _DELETE),
        table_keys=("P#*", "DOC#*"),
        reads=(INVOICES_PREFIX,),
        writes=(INVOICES_PREFIX, DRAFTS_PREFIX),
    ),
)


@dataclass(frozen=True)
class MonthClose:
    functions: dict[str, lambda_.Function]
    state_machine: sfn.StateMachine
    log_group: logs.LogGroup
    schedule: events.Rule


def build_close_functions(
    stack: Stack,
    config: BillingConfig,
    *,
    storage: Storage,
    bus: events.EventBus,
    code: lambda_.Code,
    environment: dict[str, str],
) -> dict[str, lambda_.Function]:
    """One function per task, each with its own role limited to what a close step does."""
    functions: dict[str, lambda_.Function] = {}
    for task in CLOSE_TASKS:
        function = billing_function(
            stack,
            task.construct_id,
            config=config,
            code=code,
            handler=f"{HANDLERS}.{task.handler}",
            name=function_name(config, task.suffix),
            description=task.description,
            service="billing-close",
            environment=environment,
            timeout=task.timeout,
            memory_mb=task.memory_mb,
        )
        role = function.role
        assert role is not None
        _grant_task(role, task, storage)
        functions[task.handler] = function
    bus.grant_put_events_to(functions["finish"])
    return functions


def _grant_task(role: iam.IRole, task: CloseTask, storage: Storage) -> None:
    """The task's own DynamoDB and S3 permissions (``CloseTask``), nothing shared."""
    bucket = storage.invoice_bucket
    if task.table_actions:
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="TableItems",
                actions=list(task.table_actions),
                resources=[storage.table.table_arn],
                conditions={
                    "ForAllValues:StringLike": {"dynamodb:LeadingKeys": list(task.table_keys)}
                },
            )
        )
    for sid, actions, prefixes in (
        ("ReadCloseObjects", ["s3:GetObject"], task.reads),
        ("WriteCloseObjects", ["s3:PutObject"], task.writes),
    ):
        if prefixes:
            role.add_to_principal_policy(
                iam.PolicyStatement(
                    sid=sid,
                    actions=actions,
                    resources=[bucket.arn_for_objects(f"{p}*") for p in prefixes],
                )
            )
    if ARCHIVE_PREFIX in task.writes:  # archive parts are written with their retention
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="LockArchiveObjects",
                actions=["s3:PutObjectRetention"],
                resources=[bucket.arn_for_objects(f"{ARCHIVE_PREFIX}*")],
            )
        )
    if not (task.reads or task.writes):
        return
    # Unconditioned on purpose: S3 answers a GET of a missing key with 404 only to
    # callers that may list the bucket (403 otherwise), and the close checks for
    # existing documents that way. The bucket holds only invoices/, work/ and state/.
    role.add_to_principal_policy(
        iam.PolicyStatement(
            sid="ListCloseObjects",
            actions=["s3:ListBucket"],
            resources=[bucket.bucket_arn],
        )
    )
    key_actions = ["kms:Decrypt"] + (["kms:Encrypt", "kms:GenerateDataKey"] if task.writes else [])
    role.add_to_principal_policy(
        iam.PolicyStatement(
            sid="UseInvoiceKey",
            actions=key_actions,
            resources=[storage.invoice_key.key_arn],
        )
    )
    acknowledge_findings(
        role,
        "IAM5",
        [f"Resource::{arn_ref(bucket)}/{p}*" for p in sorted(set(task.reads) | set(task.writes))],
        "The close reads and writes invoices, manifests, scratch files and carried entity "
        "state under keys it derives at run time; each task may only Get/Put objects of "
        "the prefixes it uses, never delete.",
    )


def _fields(*names: str) -> dict[str, Any]:
    """A payload that passes the named fields of the state input through."""
    return {name: sfn.JsonPath.string_at(f"$.{name}") for name in names}


def _invoke(
    stack: Stack,
    state_id: str,
    function: lambda_.IFunction,
    *,
    payload: dict[str, Any] | None = None,
    result_path: str | None = None,
) -> tasks.LambdaInvoke:
    task = tasks.LambdaInvoke(
        stack,
        state_id,
        lambda_function=function,
        payload=sfn.TaskInput.from_object(payload) if payload is not None else None,
        payload_response_only=True,
        retry_on_service_exceptions=False,
        result_path=result_path,
    )
    task.add_retry(
        errors=RETRYABLE_LAMBDA_ERRORS,
        interval=Duration.seconds(2),
        max_attempts=6,
        backoff_rate=2,
        jitter_strategy=sfn.JitterType.FULL,
    )
    return task


def build_definition(
    stack: Stack, config: BillingConfig, functions: dict[str, lambda_.Function]
) -> sfn.IChainable:
    """The month-close definition (see the module docstring)."""
    # Freeze takes the period's close lock for this execution (lease: the execution
    # timeout, so a crashed execution cannot hold it for ever); a second execution of the
    # same period fails here with CloseInProgress.
    freeze = _invoke(
        stack,
        "Freeze",
        functions["freeze"],
        payload={
            "input": sfn.JsonPath.object_at("$"),
            "execution": sfn.JsonPath.string_at("$$.Execution.Id"),
            "lease_seconds": config.close_timeout_hours * 3600,
        },
    )
    settle = sfn.Wait(stack, "Settle", time=sfn.WaitTime.seconds_path("$.settle_seconds"))
    # A JSON null cannot be written as a Pass state's Result from CDK, so the intrinsic
    # States.StringToJson('null') supplies it.
    start_listing = sfn.Pass(
        stack,
        "StartListing",
        parameters={
            "period": sfn.JsonPath.string_at("$.period"),
            "execution": sfn.JsonPath.string_at("$.execution"),
            "cursor": sfn.JsonPath.string_at("States.StringToJson('null')"),
            "buckets": sfn.JsonPath.list_at("$.buckets"),
        },
    )
    list_accounts = _invoke(
        stack,
        "ListAccounts",
        functions["list_accounts"],
        payload=_fields("period", "cursor"),
        result_path="$.page",
    )

    # --- one account ------------------------------------------------------------------
    plan_account = _invoke(stack, "PlanAccount", functions["plan_account"])
    compute_shard = _invoke(stack, "ComputeShard", functions["compute_shard"])
    compute_shards = sfn.Map(
        stack,
        "ComputeShards",
        items_path="$.units",
        max_concurrency=config.close_shard_concurrency,
        result_path=sfn.JsonPath.DISCARD,
    )
    compute_shards.item_processor(compute_shard)
    rate_account = _invoke(
        stack,
        "RateAccount",
        functions["rate_account"],
        payload=_fields("period", "account"),
    )
    record_failure = _invoke(
        stack,
        "RecordFailure",
        functions["record_failure"],
        payload={**_fields("period", "account"), "error": sfn.JsonPath.object_at("$.error")},
    )
    for step in (plan_account, compute_shards, rate_account):
        step.add_catch(record_failure, errors=[sfn.Errors.ALL], result_path="$.error")

    close_accounts = sfn.Map(
        stack,
        "CloseAccounts",
        items_path="$.page.accounts",
        max_concurrency=config.close_account_concurrency,
        item_selector={
            "period": sfn.JsonPath.string_at("$.period"),
            "account": sfn.JsonPath.string_at("$$.Map.Item.Value"),
        },
        result_path=sfn.JsonPath.DISCARD,
    )
    close_accounts.item_processor(plan_account.next(compute_shards).next(rate_account))

    # --- paging and the end ---------------------------------------------------------------
    next_page = sfn.Pass(stack, "NextPage", input_path="$.page.cursor", result_path="$.cursor")
    finish = _invoke(
        stack,
        "Finish",
        functions["finish"],
        payload=_fields("period", "execution"),
    )
    # another close group of the period is writing the period's shared documents
    finish.add_retry(
        errors=["PeriodDocumentsBusy"],
        interval=Duration.seconds(5),
        max_attempts=6,
        backoff_rate=2,
        jitter_strategy=sfn.JitterType.FULL,
    )
    # The audit's tasks are decided once, before any starts (every bucket in exactly one
    # task): a period whose ids fit one pass is audited by one task reading each file once.
    plan_audit = _invoke(
        stack,
        "PlanAudit",
        functions["audit_ids"],
        payload={
            "period": sfn.JsonPath.string_at("$.period"),
            "buckets": sfn.JsonPath.list_at("$.buckets"),
            "plan": True,
        },
        result_path="$.audit",
    )
    audit_bucket = _invoke(
        stack,
        "AuditIdBucket",
        functions["audit_ids"],
        payload={
            "period": sfn.JsonPath.string_at("$.period"),
            "buckets": sfn.JsonPath.list_at("$.buckets"),
        },
    )
    audit_ids = sfn.Map(
        stack,
        "AuditIds",
        items_path="$.audit.tasks",
        max_concurrency=config.close_account_concurrency,
        item_selector={
            "period": sfn.JsonPath.string_at("$.period"),
            "buckets": sfn.JsonPath.list_at("$$.Map.Item.Value"),
        },
        result_path=sfn.JsonPath.DISCARD,
    )
    audit_ids.item_processor(audit_bucket)
    more_pages = (
        sfn.Choice(stack, "MorePages?")
        .when(
            sfn.Condition.and_(
                sfn.Condition.is_present("$.page.cursor"),
                sfn.Condition.is_not_null("$.page.cursor"),
            ),
            next_page.next(list_accounts),
        )
        .otherwise(plan_audit.next(audit_ids).next(finish))
    )

    # Everything after Freeze runs inside Close: any failure releases this execution's
    # lock (ReleaseLock) and then fails the execution with the original error and cause.
    close = sfn.Parallel(stack, "Close", output_path="$[0]")
    close.branch(
        settle.next(start_listing).next(list_accounts).next(close_accounts).next(more_pages)
    )
    release = _invoke(
        stack,
        "ReleaseLock",
        functions["release"],
        payload=_fields("period", "execution"),
        result_path=sfn.JsonPath.DISCARD,
    )
    failed = sfn.Fail(
        stack, "CloseFailed", error_path="$.failure.Error", cause_path="$.failure.Cause"
    )
    close.add_catch(release.next(failed), errors=[sfn.Errors.ALL], result_path="$.failure")
    # a scheduled run with no close group due (its period is null) has nothing to do
    nothing_due = sfn.Succeed(stack, "NothingDue")
    due = sfn.Choice(stack, "Due?").when(sfn.Condition.is_null("$.period"), nothing_due)
    return freeze.next(due.otherwise(close))


def build_month_close(
    stack: Stack,
    config: BillingConfig,
    *,
    storage: Storage,
    bus: events.EventBus,
    code: lambda_.Code,
    environment: dict[str, str],
) -> MonthClose:
    functions = build_close_functions(
        stack, config, storage=storage, bus=bus, code=code, environment=environment
    )
    log_group = logs.LogGroup(
        stack,
        "MonthCloseLogs",
        # The vendedlogs prefix keeps Step Functions from growing the account-wide
        # CloudWatch Logs resource policy with every state machine.
        log_group_name=f"/aws/vendedlogs/states/billing-{config.stage}-month-close",
        retention=retention(config),
        removal_policy=removal_policy(config),
    )
    state_machine = sfn.StateMachine(
        stack,
        "MonthCloseStateMachine",
        state_machine_name=f"billing-{config.stage}-month-close",
        state_machine_type=sfn.StateMachineType.STANDARD,
        definition_body=sfn.DefinitionBody.from_chainable(
            build_definition(stack, config, functions)
        ),
        timeout=Duration.hours(config.close_timeout_hours),
        tracing_enabled=True,
        logs=sfn.LogOptions(
            destination=log_group,
            level=sfn.LogLevel.ALL,
            include_execution_data=True,
        ),
    )
    acknowledge_findings(
        state_machine.role,
        "IAM5",
        [
            *(f"Resource::{arn_ref(function)}:*" for function in functions.values()),
            "Resource::*",
        ],
        "Resource '<function ARN>:*' lets the state machine invoke versions and aliases "
        "of its own task functions only. Resource '*' is what X-Ray tracing and CloudWatch "
        "Logs delivery (logs:*LogDelivery*, logs:DescribeResourcePolicies) require: those "
        "actions have no resource-level permissions.",
    )

    # Close groups (time zones): every 15 minutes around month end, a run closes the
    # earliest group whose local month ended close_grace_hours ago and is not closed
    # (UTC+14 first, UTC-12 last); a run with nothing due stops at once. Offsets are
    # multiples of 15 minutes, so no group waits for another.
    # With an invoice grace (invoice_grace_days), these runs write drafts without freezing,
    # each group once (drafted_at on its status), and InvoiceFinalizeSchedule finalizes
    # each group when its own end + close grace + invoice grace has passed, the same way
    # (billing.finance, docs/finance.md). A group without any account is settled by the
    # freeze step without a close.
    drafts = {"draft": True} if config.invoice_grace_days else {}
    schedule = events.Rule(
        stack,
        "MonthCloseSchedule",
        description="Closes each time zone's month after its local end plus the grace",
        schedule=events.Schedule.cron(
            minute="0/15", hour="*", day="1-2,28-31", month="*", year="*"
        ),
        targets=[
            targets.SfnStateMachine(
                state_machine,
                input=events.RuleTargetInput.from_object(
                    {"trigger": "schedule", "grace_hours": config.close_grace_hours, **drafts}
                ),
            )
        ],
    )
    if config.invoice_grace_days:
        # UTC+14's month ends on its last UTC day (10:00), UTC-12's at 12:00 on the 1st
        # (+ up to 23 h of close grace): finalizations fall on days N to N + 2
        first, last = config.invoice_grace_days, 2 + config.invoice_grace_days
        events.Rule(
            stack,
            "InvoiceFinalizeSchedule",
            description="Finalizes each time zone's invoices when the invoice grace ends",
            schedule=events.Schedule.cron(
                minute="0/15", hour="*", day=f"{first}-{last}", month="*", year="*"
            ),
            targets=[
                targets.SfnStateMachine(
                    state_machine,
                    input=events.RuleTargetInput.from_object(
                        {
                            "trigger": "finalize",
                            "grace_hours": config.close_grace_hours
                            + 24 * config.invoice_grace_days,
                        }
                    ),
                )
            ],
        )
    return MonthClose(
        functions=functions, state_machine=state_machine, log_group=log_group, schedule=schedule
    )
