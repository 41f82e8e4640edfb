"""The synthesized ``Billing-dev`` template: what the deployment promises, pinned.

The app is synthesized once for the module, exactly as ``python app.py`` does it (cdk-nag
included), and the template is read back with ``aws_cdk.assertions``.
"""

from __future__ import annotations

import json
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
# ``tests/infra`` would otherwise be found as a namespace package ``infra`` first.
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

from aws_cdk import assertions  # noqa: E402

from infra.functions import ENVIRONMENT_NAMES  # noqa: E402
from infra.synth import build_app  # noqa: E402

pytestmark = pytest.mark.infra

CLOSE_HANDLERS = {
    "CloseFreezeFunction": "functions.close.handlers.freeze",
    "CloseListAccountsFunction": "functions.close.handlers.list_accounts",
    "ClosePlanAccountFunction": "functions.close.handlers.plan_account",
    "CloseComputeShardFunction": "functions.close.handlers.compute_shard",
    "CloseRateAccountFunction": "functions.close.handlers.rate_account",
    "CloseRecordFailureFunction": "functions.close.handlers.record_failure",
    "CloseReleaseFunction": "functions.close.handlers.release",
    "CloseAuditIdsFunction": "functions.close.handlers.audit_ids",
    "CloseFinishFunction": "functions.close.handlers.finish",
}


@dataclass(frozen=True)
class Synthesis:
    outdir: Path
    template_path: Path
    data: dict[str, Any]
    template: assertions.Template
    validation_error: str | None

    @property
    def resources(self) -> dict[str, dict[str, Any]]:
        return dict(self.data["Resources"])

    def only(self, prefix: str, type_: str) -> tuple[str, dict[str, Any]]:
        """The one resource of ``type_`` whose logical ID is ``prefix`` + CDK's hash."""
        pattern = re.compile(rf"^{re.escape(prefix)}[0-9A-F]{{8}}$")
        found = [
            (logical_id, resource)
            for logical_id, resource in self.resources.items()
            if resource["Type"] == type_ and pattern.match(logical_id)
        ]
        assert len(found) == 1, f"expected one {type_} {prefix}*, found {[f[0] for f in found]}"
        return found[0]

    def of_type(self, type_: str) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.resources.items() if v["Type"] == type_}


def synthesize(outdir: Path, context: dict[str, Any] | None = None, *, nag: bool) -> Synthesis:
    app, stack = build_app(context, outdir=str(outdir), nag=nag)
    error: str | None = None
    try:
        app.synth()
    except RuntimeError as exc:  # cdk-nag findings stop the synthesis (template is written)
        error = str(exc)
        report = outdir / "validation-report.json"
        if report.exists():
            error += "\n" + report.read_text(encoding="utf-8")
    template_path = outdir / f"{stack.stack_name}.template.json"
    data = json.loads(template_path.read_text(encoding="utf-8"))
    return Synthesis(outdir, template_path, data, assertions.Template.from_json(data), error)


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Synthesis:
    return synthesize(tmp_path_factory.mktemp("cdk.out"), nag=True)


def test_synthesis_passes_cdk_nag_with_no_unacknowledged_finding(synth: Synthesis) -> None:
    assert synth.validation_error is None, synth.validation_error
    report = json.loads((synth.outdir / "validation-report.json").read_text(encoding="utf-8"))
    violations = [v for plugin in report["pluginReports"] for v in plugin.get("violations", [])]
    assert violations == []


def test_every_acknowledgement_has_a_reason(synth: Synthesis) -> None:
    acknowledged = 0
    for logical_id, resource in synth.resources.items():
        for rule in resource.get("Metadata", {}).get("cdk_nag", {}).get("rules_to_suppress", []):
            acknowledged += 1
            assert rule["id"].startswith("AwsSolutions-"), (logical_id, rule)
            assert len(rule["reason"]) >= 40, (logical_id, rule)
    assert acknowledged > 0


def test_cdk_nag_really_checks(tmp_path: Path) -> None:
    """A deliberately non-compliant queue fails synthesis: the plugin is not a no-op."""
    import aws_cdk as cdk
    from aws_cdk import aws_sqs as sqs

    from infra.nag import register_checks

    app = cdk.App(outdir=str(tmp_path))
    stack = cdk.Stack(app, "NagProbe")
    sqs.Queue(stack, "Plain", encryption=sqs.QueueEncryption.UNENCRYPTED)
    register_checks(app)
    with pytest.raises(RuntimeError, match="ValidationFailed"):
        app.synth()
    report = (tmp_path / "validation-report.json").read_text(encoding="utf-8")
    assert "AwsSolutions-SQS4" in report


def test_cfn_lint_finds_no_error(synth: Synthesis) -> None:
    from cfnlint.api import lint

    matches = lint(synth.template_path.read_text(encoding="utf-8"), regions=["eu-west-1"])
    problems = [
        f"{m.rule.id} {m.message} ({m.path_string})"
        for m in matches
        if m.rule.id[0] in "EW" and m.rule.id != "W3005"
    ]
    assert problems == []


# --- data ------------------------------------------------------------------------------


def test_usage_table(synth: Synthesis) -> None:
    synth.template.resource_count_is("AWS::DynamoDB::Table", 1)
    _, table = synth.only("UsageTable", "AWS::DynamoDB::Table")
    props = table["Properties"]
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["KeySchema"] == [
        {"AttributeName": "pk", "KeyType": "HASH"},
        {"AttributeName": "sk", "KeyType": "RANGE"},
    ]
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert props["SSESpecification"]["SSEEnabled"] is True
    assert props["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert table["DeletionPolicy"] == "Retain"
    assert table["UpdateReplacePolicy"] == "Retain"


def test_invoice_bucket(synth: Synthesis) -> None:
    bucket_id, bucket = synth.only("InvoiceBucket", "AWS::S3::Bucket")
    key_id, key = synth.only("InvoiceKey", "AWS::KMS::Key")
    props = bucket["Properties"]
    assert props["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    (encryption,) = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert encryption["ServerSideEncryptionByDefault"] == {
        "SSEAlgorithm": "aws:kms",
        "KMSMasterKeyID": {"Fn::GetAtt": [key_id, "Arn"]},
    }
    assert key["Properties"]["EnableKeyRotation"] is True
    assert "DestinationBucketName" in props["LoggingConfiguration"]
    assert bucket["DeletionPolicy"] == "Retain"

    rules = {rule["Id"]: rule for rule in props["LifecycleConfiguration"]["Rules"]}
    keep = rules["keep-invoices"]
    assert "ExpirationInDays" not in keep
    assert keep["NoncurrentVersionExpiration"] == {"NoncurrentDays": 365}
    assert keep["Transitions"] == [{"StorageClass": "STANDARD_IA", "TransitionInDays": 90}]
    work = rules["expire-close-work"]
    assert work["Prefix"] == "work/"
    assert work["ExpirationInDays"] == 30

    _, policy = synth.only("InvoiceBucketPolicy", "AWS::S3::BucketPolicy")
    assert policy["Properties"]["Bucket"] == {"Ref": bucket_id}
    assert {
        "Action": "s3:*",
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        "Effect": "Deny",
        "Principal": {"AWS": "*"},
        "Resource": [
            {"Fn::GetAtt": [bucket_id, "Arn"]},
            {"Fn::Join": ["", [{"Fn::GetAtt": [bucket_id, "Arn"]}, "/*"]]},
        ],
    } in policy["Properties"]["PolicyDocument"]["Statement"]


def test_rejects_bucket(synth: Synthesis) -> None:
    _, bucket = synth.only("RejectsBucket", "AWS::S3::Bucket")
    props = bucket["Properties"]
    assert all(props["PublicAccessBlockConfiguration"].values())
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    (encryption,) = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert encryption["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
    (rule,) = props["LifecycleConfiguration"]["Rules"]
    assert rule["ExpirationInDays"] == 30
    _, policy = synth.only("RejectsBucketPolicy", "AWS::S3::BucketPolicy")
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    assert any(s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}} for s in statements)


def test_finance_policy_reads_invoices_only(synth: Synthesis) -> None:
    bucket_id, _ = synth.only("InvoiceBucket", "AWS::S3::Bucket")
    key_id, _ = synth.only("InvoiceKey", "AWS::KMS::Key")
    _, policy = synth.only("FinanceReadPolicy", "AWS::IAM::ManagedPolicy")
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    assert all(s["Effect"] == "Allow" for s in statements)
    by_sid = {s["Sid"]: s for s in statements}
    assert set(by_sid) == {"ReadInvoices", "ListInvoices", "DecryptInvoicesThroughS3"}

    read = by_sid["ReadInvoices"]
    assert read["Action"] == ["s3:GetObject", "s3:GetObjectVersion"]
    assert read["Resource"] == {
        "Fn::Join": ["", [{"Fn::GetAtt": [bucket_id, "Arn"]}, "/invoices/*"]]
    }
    listing = by_sid["ListInvoices"]
    assert listing["Action"] == "s3:ListBucket"
    assert listing["Resource"] == {"Fn::GetAtt": [bucket_id, "Arn"]}
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["invoices/*"]}}
    decrypt = by_sid["DecryptInvoicesThroughS3"]
    assert decrypt["Action"] == "kms:Decrypt"
    assert decrypt["Resource"] == {"Fn::GetAtt": [key_id, "Arn"]}
    assert "kms:ViaService" in decrypt["Condition"]["StringEquals"]

    actions: list[str] = []
    for statement in statements:
        action = statement["Action"]
        actions.extend([action] if isinstance(action, str) else action)
    assert sorted(actions) == [
        "kms:Decrypt",
        "s3:GetObject",
        "s3:GetObjectVersion",
        "s3:ListBucket",
    ]
    assert not [a for a in actions if re.match(r"s3:(Put|Delete|\*)", a)]

    # without finance_principal_arn there is no role (test_infra_permissions.py)
    assert not [k for k in synth.of_type("AWS::IAM::Role") if k.startswith("FinanceRole")]


def test_pseudonym_secret(synth: Synthesis) -> None:
    _, secret = synth.only("PseudonymSecret", "AWS::SecretsManager::Secret")
    generated = secret["Properties"]["GenerateSecretString"]
    assert generated["PasswordLength"] == 64
    assert generated["ExcludePunctuation"] is True


# --- intake ----------------------------------------------------------------------------


def test_intake_queue_and_dlq(synth: Synthesis) -> None:
    dlq_id, dlq = synth.only("IntakeDlq", "AWS::SQS::Queue")
    _, queue = synth.only("IntakeQueue", "AWS::SQS::Queue")
    assert queue["Properties"]["SqsManagedSseEnabled"] is True
    assert dlq["Properties"]["SqsManagedSseEnabled"] is True
    assert queue["Properties"]["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": [dlq_id, "Arn"]},
        "maxReceiveCount": 5,
    }
    assert dlq["Properties"]["MessageRetentionPeriod"] == 14 * 24 * 3600
    # 6 x the 60 s ingest timeout + the 5 s batching window
    assert queue["Properties"]["VisibilityTimeout"] == 6 * 60 + 5
    for prefix in ("IntakeQueuePolicy", "IntakeDlqPolicy"):
        _, policy = synth.only(prefix, "AWS::SQS::QueuePolicy")
        statements = policy["Properties"]["PolicyDocument"]["Statement"]
        assert any(
            s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
            for s in statements
        )


def test_ingest_event_source_mapping(synth: Synthesis) -> None:
    queue_id, _ = synth.only("IntakeQueue", "AWS::SQS::Queue")
    function_id, _ = synth.only("IngestFunction", "AWS::Lambda::Function")
    (mapping,) = [
        m
        for m in synth.of_type("AWS::Lambda::EventSourceMapping").values()
        if m["Properties"]["FunctionName"] == {"Ref": function_id}
    ]
    props = mapping["Properties"]
    assert props["EventSourceArn"] == {"Fn::GetAtt": [queue_id, "Arn"]}
    assert props["FunctionName"] == {"Ref": function_id}
    assert props["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert props["BatchSize"] == 100
    assert props["MaximumBatchingWindowInSeconds"] == 5


def test_ingest_function(synth: Synthesis) -> None:
    _, function = synth.only("IngestFunction", "AWS::Lambda::Function")
    props = function["Properties"]
    assert props["Handler"] == "functions.ingest.handler.handler"
    assert props["Timeout"] == 60
    assert props["MemorySize"] == 1024
    assert props["ReservedConcurrentExecutions"] == 20
    assert props["TracingConfig"] == {"Mode": "Active"}
    variables = props["Environment"]["Variables"]
    assert variables["POWERTOOLS_SERVICE_NAME"] == "billing-ingest"
    assert variables["POWERTOOLS_METRICS_NAMESPACE"] == "Billing"


def test_usage_bus_forwards_the_cloudevent_to_the_queue(synth: Synthesis) -> None:
    bus_id, bus = synth.only("UsageBus", "AWS::Events::EventBus")
    queue_id, _ = synth.only("IntakeQueue", "AWS::SQS::Queue")
    assert bus["Properties"]["Name"] == "billing-dev"
    _, rule = synth.only("UsageToIntakeRule", "AWS::Events::Rule")
    props = rule["Properties"]
    assert props["EventBusName"] == {"Ref": bus_id}
    assert props["EventPattern"] == {"detail-type": ["cpaas.usage"]}
    (target,) = props["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": [queue_id, "Arn"]}
    assert target["InputPath"] == "$.detail"
    assert "DeadLetterConfig" in target


# --- month close -----------------------------------------------------------------------


def test_month_close_schedule(synth: Synthesis) -> None:
    machine_id, _ = synth.only("MonthCloseStateMachine", "AWS::StepFunctions::StateMachine")
    _, rule = synth.only("MonthCloseSchedule", "AWS::Events::Rule")
    # every 15 minutes around month end: each run closes the close group (time zone) due
    assert rule["Properties"]["ScheduleExpression"] == "cron(0/15 * 1-2,28-31 * ? *)"
    (target,) = rule["Properties"]["Targets"]
    assert target["Arn"] == {"Ref": machine_id}
    assert json.loads(target["Input"]) == {"trigger": "schedule", "grace_hours": 6}


def test_state_machine_logging_and_tracing(synth: Synthesis) -> None:
    _, machine = synth.only("MonthCloseStateMachine", "AWS::StepFunctions::StateMachine")
    log_group_id, _ = synth.only("MonthCloseLogs", "AWS::Logs::LogGroup")
    props = machine["Properties"]
    assert props["StateMachineType"] == "STANDARD"
    assert props["TracingConfiguration"] == {"Enabled": True}
    logging = props["LoggingConfiguration"]
    assert logging["Level"] == "ALL"
    assert logging["IncludeExecutionData"] is True
    assert logging["Destinations"] == [
        {"CloudWatchLogsLogGroup": {"LogGroupArn": {"Fn::GetAtt": [log_group_id, "Arn"]}}}
    ]


def _definition(synth: Synthesis) -> dict[str, Any]:
    """The state machine's ASL with each function ARN replaced by its logical ID."""
    _, machine = synth.only("MonthCloseStateMachine", "AWS::StepFunctions::StateMachine")
    parts = machine["Properties"]["DefinitionString"]["Fn::Join"][1]
    text = "".join(p if isinstance(p, str) else p["Fn::GetAtt"][0] for p in parts)
    return dict(json.loads(text))


def test_state_machine_definition(synth: Synthesis) -> None:
    definition = _definition(synth)
    states = definition["States"]
    assert definition["StartAt"] == "Freeze"

    def resource(state: dict[str, Any], prefix: str) -> None:
        assert re.fullmatch(rf"{prefix}[0-9A-F]{{8}}", state["Resource"]), state["Resource"]

    resource(states["Freeze"], "CloseFreezeFunction")
    assert "ResultPath" not in states["Freeze"]  # the result replaces the state
    assert states["Freeze"]["Parameters"] == {
        "input.$": "$",
        "execution.$": "$$.Execution.Id",
        "lease_seconds": 24 * 3600,
    }
    assert states["Freeze"]["Next"] == "Due?"
    # a scheduled run with no close group due stops at once
    assert states["Due?"]["Choices"] == [
        {"Variable": "$.period", "IsNull": True, "Next": "NothingDue"}
    ]
    assert states["Due?"]["Default"] == "Close"
    assert states["NothingDue"] == {"Type": "Succeed"}
    # every failure after Freeze releases the period's lock, then fails the execution
    close = states["Close"]
    assert close["Type"] == "Parallel"
    assert close["OutputPath"] == "$[0]"
    assert close["Catch"] == [
        {"ErrorEquals": ["States.ALL"], "ResultPath": "$.failure", "Next": "ReleaseLock"}
    ]
    release = states["ReleaseLock"]
    resource(release, "CloseReleaseFunction")
    assert release["Parameters"] == {"period.$": "$.period", "execution.$": "$.execution"}
    assert release["ResultPath"] is None
    assert release["Next"] == "CloseFailed"
    assert states["CloseFailed"] == {
        "Type": "Fail",
        "ErrorPath": "$.failure.Error",
        "CausePath": "$.failure.Cause",
    }
    (branch,) = close["Branches"]
    assert branch["StartAt"] == "Settle"
    states = branch["States"]
    assert states["Settle"] == {
        "Type": "Wait",
        "SecondsPath": "$.settle_seconds",
        "Next": "StartListing",
    }
    start = states["StartListing"]
    assert start["Type"] == "Pass"
    assert start["Parameters"]["cursor.$"] == "States.StringToJson('null')"
    assert start["Parameters"]["execution.$"] == "$.execution"
    assert start["Parameters"]["buckets.$"] == "$.buckets"  # the id audit's, from Freeze
    assert start["Next"] == "ListAccounts"

    listing = states["ListAccounts"]
    resource(listing, "CloseListAccountsFunction")
    assert listing["Parameters"] == {"period.$": "$.period", "cursor.$": "$.cursor"}
    assert listing["ResultPath"] == "$.page"
    assert listing["Next"] == "CloseAccounts"

    accounts = states["CloseAccounts"]
    assert accounts["Type"] == "Map"
    assert accounts["ItemsPath"] == "$.page.accounts"
    assert accounts["MaxConcurrency"] == 10
    assert accounts["ItemSelector"] == {"period.$": "$.period", "account.$": "$$.Map.Item.Value"}
    assert accounts["ResultPath"] is None
    assert accounts["Next"] == "MorePages?"
    inner = accounts["ItemProcessor"]
    assert inner["StartAt"] == "PlanAccount"
    steps = inner["States"]
    resource(steps["PlanAccount"], "ClosePlanAccountFunction")
    shards = steps["ComputeShards"]
    assert shards["Type"] == "Map"
    assert shards["ItemsPath"] == "$.units"
    assert shards["MaxConcurrency"] == 16
    assert shards["ResultPath"] is None
    resource(shards["ItemProcessor"]["States"]["ComputeShard"], "CloseComputeShardFunction")
    rate = steps["RateAccount"]
    resource(rate, "CloseRateAccountFunction")
    assert rate["Parameters"] == {"period.$": "$.period", "account.$": "$.account"}
    for name in ("PlanAccount", "ComputeShards", "RateAccount"):
        assert steps[name]["Catch"] == [
            {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "RecordFailure"}
        ], name
    failure = steps["RecordFailure"]
    resource(failure, "CloseRecordFailureFunction")
    assert failure["Parameters"] == {
        "period.$": "$.period",
        "account.$": "$.account",
        "error.$": "$.error",
    }

    choice = states["MorePages?"]
    assert choice["Type"] == "Choice"
    (when,) = choice["Choices"]
    assert when["And"] == [
        {"Variable": "$.page.cursor", "IsPresent": True},
        {"Variable": "$.page.cursor", "IsNull": False},
    ]
    assert when["Next"] == "NextPage"
    assert choice["Default"] == "PlanAudit"
    assert states["NextPage"] == {
        "Type": "Pass",
        "InputPath": "$.page.cursor",
        "ResultPath": "$.cursor",
        "Next": "ListAccounts",
    }
    # after every account, the id audit: its tasks decided once (the close's buckets
    # grouped), then one task per group
    plan = states["PlanAudit"]
    resource(plan, "CloseAuditIdsFunction")
    assert plan["Parameters"] == {"period.$": "$.period", "buckets.$": "$.buckets", "plan": True}
    assert plan["ResultPath"] == "$.audit"
    assert plan["Next"] == "AuditIds"
    audit = states["AuditIds"]
    assert audit["Type"] == "Map"
    assert audit["ItemsPath"] == "$.audit.tasks"
    assert audit["ItemSelector"] == {"period.$": "$.period", "buckets.$": "$$.Map.Item.Value"}
    assert audit["ResultPath"] is None
    assert audit["Next"] == "Finish"
    bucket = audit["ItemProcessor"]["States"]["AuditIdBucket"]
    resource(bucket, "CloseAuditIdsFunction")
    assert bucket["Parameters"] == {"period.$": "$.period", "buckets.$": "$.buckets"}
    finish = states["Finish"]
    resource(finish, "CloseFinishFunction")
    assert finish["Parameters"] == {"period.$": "$.period", "execution.$": "$.execution"}
    assert finish["End"] is True


def test_every_lambda_task_retries_service_errors(synth: Synthesis) -> None:
    tasks: list[dict[str, Any]] = []

    def collect(states: dict[str, Any]) -> None:
        for state in states.values():
            if state["Type"] == "Task":
                tasks.append(state)
            if state["Type"] == "Map":
                collect(state["ItemProcessor"]["States"])
            if state["Type"] == "Parallel":
                for branch in state["Branches"]:
                    collect(branch["States"])

    collect(_definition(synth)["States"])
    assert len(tasks) == 10  # PlanAudit and AuditIdBucket invoke the audit function
    for task in tasks:
        (retry,) = [r for r in task["Retry"] if "Lambda.ServiceException" in r["ErrorEquals"]]
        # + Finish: another close group of the period writing the period's documents
        others = [r["ErrorEquals"] for r in task["Retry"] if r is not retry]
        assert others in ([], [["PeriodDocumentsBusy"]])
        assert "Lambda.TooManyRequestsException" in retry["ErrorEquals"]
        assert "Lambda.ServiceException" in retry["ErrorEquals"]
        assert retry["BackoffRate"] == 2


# --- every function ----------------------------------------------------------------------


def test_functions_runtime_handlers_and_timeouts(synth: Synthesis) -> None:
    functions = synth.of_type("AWS::Lambda::Function")
    assert len(functions) == 12  # ingest, live view, expiry guard, nine close tasks
    for function in functions.values():
        assert function["Properties"]["Runtime"] == "python3.12"
        assert function["Properties"]["TracingConfig"] == {"Mode": "Active"}
    for prefix, handler in CLOSE_HANDLERS.items():
        _, function = synth.only(prefix, "AWS::Lambda::Function")
        assert function["Properties"]["Handler"] == handler
        long_running = prefix in {
            "CloseComputeShardFunction",
            "CloseRateAccountFunction",
            "CloseAuditIdsFunction",
        }
        assert function["Properties"]["Timeout"] == (900 if long_running else 60)


def test_functions_share_one_code_asset(synth: Synthesis) -> None:
    codes = {
        json.dumps(f["Properties"]["Code"], sort_keys=True)
        for f in synth.of_type("AWS::Lambda::Function").values()
    }
    assert len(codes) == 1
    (code,) = codes
    asset_dir = synth.outdir / f"asset.{json.loads(code)['S3Key'].removesuffix('.zip')}"
    assert (asset_dir / "billing" / "__init__.py").is_file()
    assert not list(asset_dir.rglob("__pycache__"))


def test_each_function_has_its_own_role(synth: Synthesis) -> None:
    roles = [f["Properties"]["Role"] for f in synth.of_type("AWS::Lambda::Function").values()]
    assert len({json.dumps(r) for r in roles}) == len(roles)
    for role in synth.of_type("AWS::IAM::Role").values():
        assert "ManagedPolicyArns" not in role["Properties"] or all(
            "ref" in json.dumps(arn).lower() for arn in role["Properties"]["ManagedPolicyArns"]
        )


def test_every_function_has_the_same_environment(synth: Synthesis) -> None:
    environments = {
        logical_id: f["Properties"]["Environment"]["Variables"]
        for logical_id, f in synth.of_type("AWS::Lambda::Function").items()
    }
    for logical_id, variables in environments.items():
        assert set(variables) == set(ENVIRONMENT_NAMES), logical_id
    (reference, *others) = environments.values()
    for variables in others:
        for name in ENVIRONMENT_NAMES:
            if name != "POWERTOOLS_SERVICE_NAME":
                assert variables[name] == reference[name], name
    table_id, _ = synth.only("UsageTable", "AWS::DynamoDB::Table")
    assert reference["TABLE_NAME"] == {"Ref": table_id}
    assert reference["SHARDS"] == "16"
    assert reference["SETTLE_SECONDS"] == "120"
    assert reference["STAGE"] == "dev"


def test_close_functions_can_tell_a_missing_document_from_a_forbidden_one(
    synth: Synthesis,
) -> None:
    """GetObject of a missing key is a 404 only with s3:ListBucket (no prefix condition)."""
    bucket_id, _ = synth.only("InvoiceBucket", "AWS::S3::Bucket")
    with_objects = ("CloseComputeShard", "CloseRateAccount", "CloseFinish")
    for prefix in [p for p in CLOSE_HANDLERS if p.startswith(with_objects)]:
        role_id, _ = synth.only(f"{prefix}Role", "AWS::IAM::Role")
        (policy,) = [
            p
            for p in synth.of_type("AWS::IAM::Policy").values()
            if p["Properties"]["Roles"] == [{"Ref": role_id}]
        ]
        statements = policy["Properties"]["PolicyDocument"]["Statement"]
        listing = [s for s in statements if s.get("Sid") == "ListCloseObjects"]
        assert listing == [
            {
                "Action": "s3:ListBucket",
                "Effect": "Allow",
                "Resource": {"Fn::GetAtt": [bucket_id, "Arn"]},
                "Sid": "ListCloseObjects",
            }
        ], prefix


def test_only_finish_and_the_live_view_may_put_events(synth: Synthesis) -> None:
    """Finish announces invoices; the live view announces thresholds reached."""
    allowed = [
        {"Ref": synth.only("CloseFinishFunctionRole", "AWS::IAM::Role")[0]},
        {"Ref": synth.only("LiveFunctionRole", "AWS::IAM::Role")[0]},
    ]
    putting = []
    for policy in synth.of_type("AWS::IAM::Policy").values():
        text = json.dumps(policy["Properties"]["PolicyDocument"])
        if "events:PutEvents" in text:
            assert len(policy["Properties"]["Roles"]) == 1
            putting.extend(policy["Properties"]["Roles"])
    assert sorted(map(json.dumps, putting)) == sorted(map(json.dumps, allowed))


def stream_mapping(synth: Synthesis, function: str, handler: str) -> dict[str, Any]:
    """The properties of the event source mapping of ``function`` (whose handler is
    ``handler``) on the usage table's stream, reporting partial batch failures."""
    table_id, _ = synth.only("UsageTable", "AWS::DynamoDB::Table")
    function_id, found = synth.only(function, "AWS::Lambda::Function")
    assert found["Properties"]["Handler"] == handler
    (mapping,) = [
        m
        for m in synth.of_type("AWS::Lambda::EventSourceMapping").values()
        if m["Properties"]["FunctionName"] == {"Ref": function_id}
    ]
    props: dict[str, Any] = mapping["Properties"]
    assert props["EventSourceArn"] == {"Fn::GetAtt": [table_id, "StreamArn"]}
    assert props["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    return props


def role_statements(synth: Synthesis, role: str) -> list[dict[str, Any]]:
    """Every statement of the policies attached to ``role``."""
    role_id, _ = synth.only(role, "AWS::IAM::Role")
    return [
        s
        for policy in synth.of_type("AWS::IAM::Policy").values()
        if policy["Properties"]["Roles"] == [{"Ref": role_id}]
        for s in policy["Properties"]["PolicyDocument"]["Statement"]
    ]


def test_the_live_view_follows_the_fact_partitions_of_the_stream(synth: Synthesis) -> None:
    _, table = synth.only("UsageTable", "AWS::DynamoDB::Table")
    assert table["Properties"]["StreamSpecification"] == {"StreamViewType": "OLD_IMAGE"}
    props = stream_mapping(synth, "LiveFunction", "functions.live.handler.handler")
    assert props["BisectBatchOnFunctionError"] is True
    assert props["MaximumRetryAttempts"] == 10
    dlq_id, _ = synth.only("LiveDlq", "AWS::SQS::Queue")
    assert props["DestinationConfig"]["OnFailure"]["Destination"] == {"Fn::GetAtt": [dlq_id, "Arn"]}
    patterns = [json.loads(f["Pattern"]) for f in props["FilterCriteria"]["Filters"]]
    prefixes = sorted(p["dynamodb"]["Keys"]["pk"]["S"][0]["prefix"] for p in patterns)
    assert prefixes == ["E#", "F#", "PLAN#", "THRESHOLD#"]  # a threshold set is checked at once
    assert all(p["eventName"] == ["INSERT", "MODIFY"] for p in patterns)


def test_the_expiry_guard_reads_only_the_ttl_deletions_of_fact_items(synth: Synthesis) -> None:
    """Every write and every deletion by the application is filtered out before the
    function: it is invoked for the items DynamoDB's TTL deleted, with their old image."""
    props = stream_mapping(synth, "ExpiryFunction", "functions.expiry.handler.handler")
    dlq_id, _ = synth.only("ExpiryDlq", "AWS::SQS::Queue")
    assert props["DestinationConfig"]["OnFailure"]["Destination"] == {"Fn::GetAtt": [dlq_id, "Arn"]}
    patterns = [json.loads(f["Pattern"]) for f in props["FilterCriteria"]["Filters"]]
    assert sorted(p["dynamodb"]["Keys"]["pk"]["S"][0]["prefix"] for p in patterns) == ["E#", "F#"]
    for pattern in patterns:
        assert pattern["eventName"] == ["REMOVE"]
        assert pattern["userIdentity"] == {
            "type": ["Service"],
            "principalId": ["dynamodb.amazonaws.com"],
        }
    statements = role_statements(synth, "ExpiryFunctionRole")
    table_actions = {
        a
        for s in statements
        for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
        if a.startswith("dynamodb:") and not a.startswith("dynamodb:GetRecords")
    }
    # reads the stream (the mapping's grant), the frozen periods and zones; puts items back
    assert table_actions <= {
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:BatchWriteItem",
        "dynamodb:DescribeStream",
        "dynamodb:GetShardIterator",
        "dynamodb:ListStreams",
    }
    assert not any("Delete" in json.dumps(s["Action"]) for s in statements)


def test_the_live_view_writes_only_its_own_items(synth: Synthesis) -> None:
    statements = role_statements(synth, "LiveFunctionRole")
    writes = [s for s in statements if "dynamodb:PutItem" in json.dumps(s["Action"])]
    assert len(writes) == 1
    assert sorted(writes[0]["Action"]) == [
        "dynamodb:BatchWriteItem",  # a large shard's document in parts
        "dynamodb:DeleteItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
    ]
    assert writes[0]["Condition"] == {
        "ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["L#*", "LIVE_DIRTY"]}
    }


def test_the_live_view_reads_only_the_saved_state_and_archive_of_the_invoice_bucket(
    synth: Synthesis,
) -> None:
    role_id, _ = synth.only("LiveFunctionRole", "AWS::IAM::Role")
    bucket_id, _ = synth.only("InvoiceBucket", "AWS::S3::Bucket")
    key_id, _ = synth.only("InvoiceKey", "AWS::KMS::Key")
    statements = {
        s.get("Sid"): s
        for policy in synth.of_type("AWS::IAM::Policy").values()
        if policy["Properties"]["Roles"] == [{"Ref": role_id}]
        for s in policy["Properties"]["PolicyDocument"]["Statement"]
    }
    text = json.dumps(list(statements.values()))
    assert "s3:PutObject" not in text
    assert "s3:DeleteObject" not in text
    assert statements["ReadSavedState"]["Action"] == "s3:GetObject"
    resources = json.dumps(statements["ReadSavedState"]["Resource"])
    assert "/state/*" in resources
    assert "/archive/*" in resources
    assert "/invoices/" not in resources
    listing = statements["ListSavedState"]
    assert listing["Resource"] == {"Fn::GetAtt": [bucket_id, "Arn"]}
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["state/*", "archive/*"]}}
    decrypt = statements["DecryptSavedState"]
    assert decrypt["Action"] == "kms:Decrypt"
    assert decrypt["Resource"] == {"Fn::GetAtt": [key_id, "Arn"]}
    _, function = synth.only("LiveFunction", "AWS::Lambda::Function")
    assert function["Properties"]["Environment"]["Variables"]["INVOICE_BUCKET"] == {
        "Ref": bucket_id
    }


# --- operations ------------------------------------------------------------------------


def test_alarms_and_dashboard(synth: Synthesis) -> None:
    alarms = synth.of_type("AWS::CloudWatch::Alarm")
    metrics = {
        (a["Properties"].get("Namespace"), a["Properties"].get("MetricName"))
        for a in alarms.values()
    }
    assert ("AWS/SQS", "ApproximateNumberOfMessagesVisible") in metrics
    assert ("AWS/Lambda", "Errors") in metrics
    assert ("AWS/States", "ExecutionsFailed") in metrics
    assert ("AWS/States", "ExecutionsTimedOut") in metrics
    _, dlq_alarm = synth.only("IntakeDlqAlarm", "AWS::CloudWatch::Alarm")
    assert dlq_alarm["Properties"]["Threshold"] == 0
    assert dlq_alarm["Properties"]["ComparisonOperator"] == "GreaterThanThreshold"
    topic_id, topic = synth.only("AlarmTopic", "AWS::SNS::Topic")
    assert "KmsMasterKeyId" in topic["Properties"]
    for alarm in alarms.values():
        assert alarm["Properties"]["AlarmActions"] == [{"Ref": topic_id}]
    synth.only("BillingDashboard", "AWS::CloudWatch::Dashboard")


def test_outputs(synth: Synthesis) -> None:
    outputs = synth.data["Outputs"]
    for name in (
        "IntakeQueueUrl",
        "UsageBusName",
        "UsageTableName",
        "InvoiceBucketName",
        "RejectsBucketName",
        "MonthCloseStateMachineArn",
        "FinanceReadPolicyArn",
        "OperatorRejectsPolicyArn",
    ):
        assert name in outputs


# --- another stage, as the CLI would pass it ----------------------------------------------


def test_context_from_the_command_line(tmp_path: Path) -> None:
    """``-c`` values arrive as strings; stage and removal policy reach the resources."""
    synth = synthesize(
        tmp_path,
        {
            "stage": "prod",
            "removal_policy": "destroy",
            "intake_max_receives": "3",
            "ingest_timeout_seconds": "30",
            "close_grace_hours": "2",
            "shards": "32",
            "finance_principal_arn": "arn:aws:iam::123456789012:role/finance",
        },
        nag=False,
    )
    assert synth.template_path.name == "Billing-prod.template.json"
    _, bus = synth.only("UsageBus", "AWS::Events::EventBus")
    assert bus["Properties"]["Name"] == "billing-prod"
    _, table = synth.only("UsageTable", "AWS::DynamoDB::Table")
    assert table["DeletionPolicy"] == "Delete"
    assert table["Properties"]["DeletionProtectionEnabled"] is False
    _, queue = synth.only("IntakeQueue", "AWS::SQS::Queue")
    assert queue["Properties"]["RedrivePolicy"]["maxReceiveCount"] == 3
    assert queue["Properties"]["VisibilityTimeout"] == 6 * 30 + 5
    _, schedule = synth.only("MonthCloseSchedule", "AWS::Events::Rule")
    (target,) = schedule["Properties"]["Targets"]
    assert json.loads(target["Input"])["grace_hours"] == 2
    _, role = synth.only("FinanceRole", "AWS::IAM::Role")
    (statement,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert statement["Principal"] == {"AWS": "arn:aws:iam::123456789012:role/finance"}
    policy_id, _ = synth.only("FinanceReadPolicy", "AWS::IAM::ManagedPolicy")
    assert role["Properties"]["ManagedPolicyArns"] == [{"Ref": policy_id}]
    assert "Policies" not in role["Properties"]
    for function in synth.of_type("AWS::Lambda::Function").values():
        assert function["Properties"]["Environment"]["Variables"]["SHARDS"] == "32"
        assert function["Properties"]["Environment"]["Variables"]["STAGE"] == "prod"
