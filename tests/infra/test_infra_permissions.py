"""Permissions and data protection in the synthesized template: every function may do what
its code does and no more, issued invoices cannot be deleted, rejected events (raw
end-user data) are encrypted with their own key, kept briefly and read by operators only,
and the finance and operator roles trust only the principals named at deploy time."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from test_infra_stack import Synthesis, synthesize

pytestmark = pytest.mark.infra

# What each close task calls (billing/close.py, billing/adapters/store.py).
CLOSE_TABLE_ACTIONS = {
    "CloseFreezeFunction": {
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
        "dynamodb:Query",  # + a scheduled run: the accounts of the group due (empty?)
        "dynamodb:BatchGetItem",  # their zones
    },
    "CloseListAccountsFunction": {"dynamodb:GetItem", "dynamodb:Query"},  # + zones, plans
    "ClosePlanAccountFunction": {"dynamodb:GetItem", "dynamodb:Query"},
    "CloseComputeShardFunction": {  # + the account's zones (PLAN#{acct}/ZONES)
        "dynamodb:GetItem",
        "dynamodb:Query",
        "dynamodb:BatchGetItem",
    },
    "CloseRateAccountFunction": {
        "dynamodb:GetItem",
        "dynamodb:Query",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",  # the number series' counter
    },
    "CloseRecordFailureFunction": {"dynamodb:PutItem", "dynamodb:UpdateItem"},
    "CloseReleaseFunction": {"dynamodb:DeleteItem"},
    "CloseAuditIdsFunction": {  # a conflicted version: its fact, its markers
        "dynamodb:GetItem",
        "dynamodb:Query",  # the plan in force (its settings)
        "dynamodb:PutItem",
        "dynamodb:BatchWriteItem",
    },
    "CloseFinishFunction": {
        "dynamodb:GetItem",  # the state of numbered documents (finance summary)
        "dynamodb:Query",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
    },
}
CLOSE_OBJECTS = {  # action -> prefixes
    "CloseFreezeFunction": {},
    "CloseListAccountsFunction": {},
    "ClosePlanAccountFunction": {},
    "CloseComputeShardFunction": {  # + the fact archive: parts written locked, read back
        "s3:GetObject": {"state/", "archive/"},
        "s3:PutObject": {"work/", "state/", "archive/", "ids/"},
        "s3:PutObjectRetention": {"archive/"},
    },
    "CloseRateAccountFunction": {  # + the archive manifest of the account's close
        "s3:GetObject": {"work/", "invoices/", "archive/"},
        "s3:PutObject": {"invoices/", "drafts/", "archive/"},
        "s3:PutObjectRetention": {"archive/"},
    },
    "CloseRecordFailureFunction": {},
    "CloseAuditIdsFunction": {"s3:GetObject": {"ids/"}},
    "CloseReleaseFunction": {},
    "CloseFinishFunction": {
        "s3:GetObject": {"invoices/"},
        "s3:PutObject": {"invoices/", "drafts/"},
    },
}
PRINCIPAL = "arn:aws:iam::123456789012:role/finance"
OPERATOR = "arn:aws:iam::123456789012:role/billing-operators"


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Synthesis:
    return synthesize(tmp_path_factory.mktemp("cdk.out"), nag=True)


@pytest.fixture(scope="module")
def with_roles(tmp_path_factory: pytest.TempPathFactory) -> Synthesis:
    return synthesize(
        tmp_path_factory.mktemp("cdk.out"),
        {
            "finance_principal_arn": PRINCIPAL,
            "operator_principal_arn": OPERATOR,
            "rejects_retention_days": "14",
            "invoice_lock_mode": "compliance",
        },
        nag=True,
    )


def _actions(statement: dict[str, Any]) -> list[str]:
    action = statement["Action"]
    return [action] if isinstance(action, str) else list(action)


def _resources(statement: dict[str, Any]) -> list[Any]:
    resource = statement["Resource"]
    return resource if isinstance(resource, list) else [resource]


def _role_statements(synth: Synthesis, construct_id: str) -> list[dict[str, Any]]:
    role_id, _ = synth.only(f"{construct_id}Role", "AWS::IAM::Role")
    return [
        s
        for p in synth.of_type("AWS::IAM::Policy").values()
        if {"Ref": role_id} in p["Properties"]["Roles"]
        for s in p["Properties"]["PolicyDocument"]["Statement"]
    ]


def _prefix(resource: Any, bucket_id: str) -> str | None:
    """``invoices/`` for ``{bucket arn}/invoices/*``; None for anything else."""
    if isinstance(resource, dict) and "Fn::Join" in resource:
        parts = resource["Fn::Join"][1]
        if parts[0] == {"Fn::GetAtt": [bucket_id, "Arn"]}:
            return str(parts[1]).lstrip("/").removesuffix("*")
    return None


# --- ingest ----------------------------------------------------------------------------


def test_ingest_writes_items_only(synth: Synthesis) -> None:
    table_id, _ = synth.only("UsageTable", "AWS::DynamoDB::Table")
    statements = _role_statements(synth, "IngestFunction")
    table = [s for s in statements if any(a.startswith("dynamodb:") for a in _actions(s))]
    assert len(table) == 1
    assert set(_actions(table[0])) == {
        "dynamodb:BatchWriteItem",
        "dynamodb:PutItem",
        "dynamodb:GetItem",
    }
    assert _resources(table[0]) == [{"Fn::GetAtt": [table_id, "Arn"]}]
    every = {a for s in statements for a in _actions(s)}
    assert not every & {
        "dynamodb:Scan",
        "dynamodb:DeleteItem",
        "dynamodb:Query",
        "dynamodb:UpdateItem",
    }


def test_ingest_may_only_put_encrypted_rejects(synth: Synthesis) -> None:
    key_id, _ = synth.only("RejectsKey", "AWS::KMS::Key")
    rejects_id, _ = synth.only("RejectsBucket", "AWS::S3::Bucket")
    statements = _role_statements(synth, "IngestFunction")
    on_rejects = [
        s for s in statements if any(_prefix(r, rejects_id) is not None for r in _resources(s))
    ]
    assert [_actions(s) for s in on_rejects] == [["s3:PutObject"]]
    on_key = [s for s in statements if {"Fn::GetAtt": [key_id, "Arn"]} in _resources(s)]
    assert [_actions(s) for s in on_key] == [["kms:GenerateDataKey"]]


# --- close -----------------------------------------------------------------------------


@pytest.mark.parametrize("construct_id", sorted(CLOSE_TABLE_ACTIONS))
def test_each_close_task_has_its_own_table_actions(synth: Synthesis, construct_id: str) -> None:
    table_id, _ = synth.only("UsageTable", "AWS::DynamoDB::Table")
    statements = _role_statements(synth, construct_id)
    table = [s for s in statements if any(a.startswith("dynamodb:") for a in _actions(s))]
    assert len(table) == 1, table
    assert set(_actions(table[0])) == CLOSE_TABLE_ACTIONS[construct_id]
    assert _resources(table[0]) == [{"Fn::GetAtt": [table_id, "Arn"]}]
    keys = table[0]["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"]
    assert keys
    assert "*" not in keys


@pytest.mark.parametrize("construct_id", sorted(CLOSE_OBJECTS))
def test_each_close_task_has_its_own_object_actions(synth: Synthesis, construct_id: str) -> None:
    bucket_id, _ = synth.only("InvoiceBucket", "AWS::S3::Bucket")
    granted: dict[str, set[str]] = {}
    for statement in _role_statements(synth, construct_id):
        for resource in _resources(statement):
            prefix = _prefix(resource, bucket_id)
            if prefix is None:
                continue
            for action in _actions(statement):
                granted.setdefault(action, set()).add(prefix)
    assert granted == CLOSE_OBJECTS[construct_id]


def test_no_function_may_delete_an_invoice_object(synth: Synthesis) -> None:
    for policy in synth.of_type("AWS::IAM::Policy").values():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            assert not [a for a in _actions(statement) if a.startswith("s3:Delete")], statement
            assert "s3:*" not in _actions(statement)


# --- invoices --------------------------------------------------------------------------


def test_invoice_bucket_has_object_lock_and_denies_deleting_invoices(synth: Synthesis) -> None:
    bucket_id, bucket = synth.only("InvoiceBucket", "AWS::S3::Bucket")
    assert bucket["Properties"]["ObjectLockEnabled"] is True
    # retention is set per invoice document, so work/ and state/ can still expire
    assert "ObjectLockConfiguration" not in bucket["Properties"]
    _, policy = synth.only("InvoiceBucketPolicy", "AWS::S3::BucketPolicy")
    (deny,) = [
        s
        for s in policy["Properties"]["PolicyDocument"]["Statement"]
        if s.get("Sid") == "DenyDeletingInvoices"
    ]
    assert deny["Effect"] == "Deny"
    assert deny["Principal"] == {"AWS": "*"}
    assert set(_actions(deny)) == {"s3:DeleteObject", "s3:DeleteObjectVersion"}
    assert sorted(_prefix(r, bucket_id) for r in _resources(deny)) == ["archive/", "invoices/"]
    assert "Condition" not in deny


def test_invoice_lock_settings_reach_the_functions(synth: Synthesis, with_roles: Synthesis) -> None:
    for data, mode in ((synth, "GOVERNANCE"), (with_roles, "COMPLIANCE")):
        for function in data.of_type("AWS::Lambda::Function").values():
            variables = function["Properties"]["Environment"]["Variables"]
            assert variables["INVOICE_LOCK_MODE"] == mode
            assert variables["INVOICE_RETENTION_YEARS"] == "10"


# --- rejected events -------------------------------------------------------------------


def test_rejects_have_their_own_key_and_a_short_retention(
    synth: Synthesis, with_roles: Synthesis
) -> None:
    key_id, key = synth.only("RejectsKey", "AWS::KMS::Key")
    assert key["Properties"]["EnableKeyRotation"] is True
    _, bucket = synth.only("RejectsBucket", "AWS::S3::Bucket")
    (encryption,) = bucket["Properties"]["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert encryption["ServerSideEncryptionByDefault"] == {
        "SSEAlgorithm": "aws:kms",
        "KMSMasterKeyID": {"Fn::GetAtt": [key_id, "Arn"]},
    }
    (rule,) = bucket["Properties"]["LifecycleConfiguration"]["Rules"]
    assert rule["ExpirationInDays"] == 30
    assert rule["NoncurrentVersionExpiration"] == {"NoncurrentDays": 3}
    _, other = with_roles.only("RejectsBucket", "AWS::S3::Bucket")
    assert other["Properties"]["LifecycleConfiguration"]["Rules"][0]["ExpirationInDays"] == 14


def test_only_the_operator_policy_reads_rejects(synth: Synthesis) -> None:
    rejects_id, _ = synth.only("RejectsBucket", "AWS::S3::Bucket")
    key_id, _ = synth.only("RejectsKey", "AWS::KMS::Key")
    policy_id, operator = synth.only("OperatorRejectsPolicy", "AWS::IAM::ManagedPolicy")
    readers = []
    policies = {**synth.of_type("AWS::IAM::Policy"), **synth.of_type("AWS::IAM::ManagedPolicy")}
    for logical_id, policy in policies.items():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            on_rejects = any(_prefix(r, rejects_id) is not None for r in _resources(statement))
            decrypts = {"Fn::GetAtt": [key_id, "Arn"]} in _resources(statement) and (
                "kms:Decrypt" in _actions(statement)
            )
            if (on_rejects and "s3:GetObject" in _actions(statement)) or decrypts:
                readers.append(logical_id)
    assert set(readers) == {policy_id}
    actions = {
        a for s in operator["Properties"]["PolicyDocument"]["Statement"] for a in _actions(s)
    }
    assert {"s3:GetObject", "s3:DeleteObject", "s3:ListBucket", "kms:Decrypt"} <= actions
    assert "sqs:SendMessage" in actions  # billing replay
    assert "sqs:ReceiveMessage" in actions  # billing replay of the DLQ


def test_operator_role_only_for_a_named_principal(synth: Synthesis, with_roles: Synthesis) -> None:
    assert not [k for k in synth.of_type("AWS::IAM::Role") if k.startswith("OperatorRole")]
    policy_id, _ = with_roles.only("OperatorRejectsPolicy", "AWS::IAM::ManagedPolicy")
    _, role = with_roles.only("OperatorRole", "AWS::IAM::Role")
    (statement,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert statement["Principal"] == {"AWS": OPERATOR}
    assert role["Properties"]["ManagedPolicyArns"] == [{"Ref": policy_id}]
    assert "OperatorRoleArn" in with_roles.data["Outputs"]


# --- finance ---------------------------------------------------------------------------


def test_finance_role_only_for_a_named_principal(synth: Synthesis, with_roles: Synthesis) -> None:
    assert not [k for k in synth.of_type("AWS::IAM::Role") if k.startswith("FinanceRole")]
    synth.only("FinanceReadPolicy", "AWS::IAM::ManagedPolicy")
    assert "FinanceReadPolicyArn" in synth.data["Outputs"]
    _, role = with_roles.only("FinanceRole", "AWS::IAM::Role")
    (statement,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert statement["Principal"] == {"AWS": PRINCIPAL}


def test_no_role_trusts_the_whole_account(synth: Synthesis, with_roles: Synthesis) -> None:
    for data in (synth, with_roles):
        for role in data.of_type("AWS::IAM::Role").values():
            trust = json.dumps(role["Properties"]["AssumeRolePolicyDocument"])
            assert ":root" not in trust, trust


def test_named_roles_pass_cdk_nag_and_cfn_lint(with_roles: Synthesis, tmp_path: Path) -> None:
    from cfnlint.api import lint

    assert with_roles.validation_error is None, with_roles.validation_error
    matches = lint(with_roles.template_path.read_text(encoding="utf-8"), regions=["eu-west-1"])
    problems = [
        f"{m.rule.id} {m.message}" for m in matches if m.rule.id[0] in "EW" and m.rule.id != "W3005"
    ]
    assert problems == []
