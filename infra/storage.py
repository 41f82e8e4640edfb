"""Where billing data lives: the usage table, the buckets, their keys, finance's read access.

Everything is created directly under the stack, so the logical IDs start with the
construct IDs (``UsageTable...``, ``InvoiceBucket...``) that the local runtime looks for.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Aws, Duration, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_secretsmanager as secretsmanager

from infra.config import BillingConfig
from infra.functions import removal_policy
from infra.nag import acknowledge, acknowledge_findings, arn_ref

INVOICES_PREFIX = "invoices/"
REJECTS_NONCURRENT_DAYS = 3
WORK_PREFIX = "work/"
STATE_PREFIX = "state/"
ARCHIVE_PREFIX = "archive/"  # closed periods' facts (billing.adapters.archive), locked
DRAFTS_PREFIX = "drafts/"  # invoice drafts, rewritten until final (billing.finance)
IDS_PREFIX = "ids/"  # the event ids each close read, for its id audit (billing.adapters.ids)


@dataclass(frozen=True)
class Storage:
    table: dynamodb.Table
    access_logs_bucket: s3.Bucket
    rejects_key: kms.Key
    rejects_bucket: s3.Bucket
    operator_policy: iam.ManagedPolicy
    operator_role: iam.Role | None
    invoice_key: kms.Key
    invoice_bucket: s3.Bucket
    pseudonym_secret: secretsmanager.Secret
    finance_policy: iam.ManagedPolicy
    finance_role: iam.Role | None


def build_storage(stack: Stack, config: BillingConfig) -> Storage:
    removal = removal_policy(config)

    table = dynamodb.Table(
        stack,
        "UsageTable",
        partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING),
        sort_key=dynamodb.Attribute(name="sk", type=dynamodb.AttributeType.STRING),
        billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
        point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
            point_in_time_recovery_enabled=True
        ),
        encryption=dynamodb.TableEncryption.AWS_MANAGED,
        time_to_live_attribute="expires_at",
        # The live view (infra/live.py) follows the fact partitions by their keys; the
        # expiry guard (infra/expiry.py) reads the items TTL deleted. Old images only: a
        # new item is keys only in the stream, and no raw personal data is in any item.
        stream=dynamodb.StreamViewType.OLD_IMAGE,
        deletion_protection=config.retain_data,
        removal_policy=removal,
    )

    access_logs = s3.Bucket(
        stack,
        "AccessLogsBucket",
        block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
        # S3 server access logging delivers only to SSE-S3 buckets.
        encryption=s3.BucketEncryption.S3_MANAGED,
        enforce_ssl=True,
        object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
        lifecycle_rules=[
            s3.LifecycleRule(id="expire-access-logs", expiration=Duration.days(400)),
        ],
        removal_policy=removal,
    )
    # cdk-nag's S1 does not ask a log destination bucket to log itself.

    # Rejected events hold raw end-user identifiers (they failed before pseudonymization):
    # a key of their own, a short retention, and only the operator role may read them.
    rejects_key, rejects = _encrypted_bucket(
        stack,
        config,
        "Rejects",
        purpose="rejected events (raw end-user data)",
        alias="rejects",
        access_logs=access_logs,
        lifecycle_rules=[
            s3.LifecycleRule(
                id="expire-rejects",
                expiration=Duration.days(config.rejects_retention_days),
                noncurrent_version_expiration=Duration.days(REJECTS_NONCURRENT_DAYS),
                abort_incomplete_multipart_upload_after=Duration.days(7),
            ),
        ],
    )

    invoice_key, invoices = _encrypted_bucket(
        stack,
        config,
        "Invoice",
        purpose="invoices and month-close work files",
        alias="invoices",
        access_logs=access_logs,
        # Issued invoices get a per-object retention (write_once); work/ and state/ none.
        object_lock=True,
        lifecycle_rules=[
            # Invoices and period manifests are kept; older copies of them for a year.
            s3.LifecycleRule(
                id="keep-invoices",
                transitions=[
                    s3.Transition(
                        storage_class=s3.StorageClass.INFREQUENT_ACCESS,
                        transition_after=Duration.days(90),
                    )
                ],
                noncurrent_version_expiration=Duration.days(365),
                abort_incomplete_multipart_upload_after=Duration.days(7),
            ),
            # Scratch files of a month close.
            s3.LifecycleRule(
                id="expire-close-work",
                prefix=WORK_PREFIX,
                expiration=Duration.days(30),
                noncurrent_version_expiration=Duration.days(1),
            ),
            # Drafts are superseded by the final invoice; their old copies are not kept.
            s3.LifecycleRule(
                id="expire-drafts",
                prefix=DRAFTS_PREFIX,
                expiration=Duration.days(400),
                noncurrent_version_expiration=Duration.days(1),
            ),
            # The fact archive: parts are locked (Object Lock) until their period's end +
            # archive_retention_days; deleted by this rule only once that has passed.
            s3.LifecycleRule(
                id="expire-fact-archive",
                prefix=ARCHIVE_PREFIX,
                expiration=Duration.days(config.archive_retention_days + 31),
                noncurrent_version_expiration=Duration.days(1),
            ),
            # The ids a close read: compared by the id audits of the closes of the
            # max_late_periods + 1 periods after it (billing.adapters.ids.AUDIT_PERIODS).
            s3.LifecycleRule(
                id="expire-close-ids",
                prefix=IDS_PREFIX,
                expiration=Duration.days(31 * (config.max_late_periods + 3)),
                noncurrent_version_expiration=Duration.days(1),
            ),
            # Entity state carried between closes: read by the next close, and by any
            # close that adjusts a prior period, as long as the fact log is kept.
            s3.LifecycleRule(
                id="expire-entity-state",
                prefix=STATE_PREFIX,
                expiration=Duration.days(400),
                noncurrent_version_expiration=Duration.days(1),
            ),
        ],
    )

    invoices.add_to_resource_policy(
        iam.PolicyStatement(
            sid="DenyDeletingInvoices",
            effect=iam.Effect.DENY,
            principals=[iam.AnyPrincipal()],
            actions=["s3:DeleteObject", "s3:DeleteObjectVersion"],
            resources=[
                invoices.arn_for_objects(f"{INVOICES_PREFIX}*"),
                invoices.arn_for_objects(f"{ARCHIVE_PREFIX}*"),
            ],
        )
    )

    secret = secretsmanager.Secret(
        stack,
        "PseudonymSecret",
        description=(
            f"billing-{config.stage}: HMAC key that pseudonymizes end-user identifiers at ingest"
        ),
        generate_secret_string=secretsmanager.SecretStringGenerator(
            password_length=64,
            exclude_punctuation=True,
        ),
        removal_policy=removal,
    )
    acknowledge(
        secret,
        "SMG4",
        "The key pseudonymizes end-user identifiers; distinct end users are counted per "
        "month from the pseudonyms, so rotating it would count one person twice in a "
        "period. It is changed only by a planned re-keying between periods.",
    )

    finance_policy, finance_role = _finance_access(stack, config, invoices, invoice_key)
    operator_policy, operator_role = _operator_access(stack, config, rejects, rejects_key)
    return Storage(
        table=table,
        access_logs_bucket=access_logs,
        rejects_key=rejects_key,
        rejects_bucket=rejects,
        operator_policy=operator_policy,
        operator_role=operator_role,
        invoice_key=invoice_key,
        invoice_bucket=invoices,
        pseudonym_secret=secret,
        finance_policy=finance_policy,
        finance_role=finance_role,
    )


def _encrypted_bucket(
    stack: Stack,
    config: BillingConfig,
    name: str,
    *,
    purpose: str,
    alias: str,
    access_logs: s3.Bucket,
    lifecycle_rules: list[s3.LifecycleRule],
    object_lock: bool = False,
) -> tuple[kms.Key, s3.Bucket]:
    """A bucket of ``purpose`` with a customer-managed key of its own (``{name}Key``,
    rotated), versioned, private, TLS only, its access logged under ``{alias}/``."""
    removal = removal_policy(config)
    key = kms.Key(
        stack,
        f"{name}Key",
        description=f"billing-{config.stage}: encrypts {purpose}",
        alias=f"alias/billing-{config.stage}-{alias}",
        enable_key_rotation=True,
        removal_policy=removal,
    )
    bucket = s3.Bucket(
        stack,
        f"{name}Bucket",
        block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
        encryption=s3.BucketEncryption.KMS,
        encryption_key=key,
        bucket_key_enabled=True,
        enforce_ssl=True,
        versioned=True,
        object_lock_enabled=True if object_lock else None,
        object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
        server_access_logs_bucket=access_logs,
        server_access_logs_prefix=f"{alias}/",
        lifecycle_rules=lifecycle_rules,
        removal_policy=removal,
    )
    return key, bucket


def _finance_access(
    stack: Stack, config: BillingConfig, bucket: s3.Bucket, key: kms.Key
) -> tuple[iam.ManagedPolicy, iam.Role | None]:
    """Read-only access to the published invoices, and a role that has nothing else."""
    invoice_objects = bucket.arn_for_objects(f"{INVOICES_PREFIX}*")
    policy = iam.ManagedPolicy(
        stack,
        "FinanceReadPolicy",
        description=f"billing-{config.stage}: read the published invoices, nothing else",
        statements=[
            iam.PolicyStatement(
                sid="ReadInvoices",
                actions=["s3:GetObject", "s3:GetObjectVersion"],
                resources=[invoice_objects],
            ),
            iam.PolicyStatement(
                sid="ListInvoices",
                actions=["s3:ListBucket"],
                resources=[bucket.bucket_arn],
                conditions={"StringLike": {"s3:prefix": [f"{INVOICES_PREFIX}*"]}},
            ),
            iam.PolicyStatement(
                sid="DecryptInvoicesThroughS3",
                actions=["kms:Decrypt"],
                resources=[key.key_arn],
                conditions={"StringEquals": {"kms:ViaService": f"s3.{Aws.REGION}.amazonaws.com"}},
            ),
        ],
    )
    acknowledge_findings(
        policy,
        "IAM5",
        [f"Resource::{arn_ref(bucket)}/{INVOICES_PREFIX}*"],
        "Finance reads every invoice object under invoices/: the wildcard is the object "
        "keys of that one prefix of the invoice bucket, for GetObject(Version) only.",
    )
    role = _role_for_named_principal(
        stack,
        "FinanceRole",
        config.finance_principal_arn,
        f"billing-{config.stage}: finance reads invoices (read-only)",
        policy,
    )
    return policy, role


def _role_for_named_principal(
    stack: Stack, construct_id: str, principal_arn: str, description: str, policy: iam.ManagedPolicy
) -> iam.Role | None:
    """A role only the principal named at deploy time may assume; none without one (no
    role that any principal of the account could assume: attach the policy to the
    person's own role or group instead, docs/deploy.md)."""
    if not principal_arn:
        return None
    return iam.Role(
        stack,
        construct_id,
        assumed_by=iam.ArnPrincipal(principal_arn),
        description=description,
        managed_policies=[policy],
        max_session_duration=Duration.hours(1),
    )


def _operator_access(
    stack: Stack, config: BillingConfig, bucket: s3.Bucket, key: kms.Key
) -> tuple[iam.ManagedPolicy, iam.Role | None]:
    """What ``billing rejects`` and ``billing replay`` need: list, read and delete
    rejected events (decrypting them), and re-send them to the intake queue (granted by
    the stack once the queue exists)."""
    policy = iam.ManagedPolicy(
        stack,
        "OperatorRejectsPolicy",
        description=f"billing-{config.stage}: read, delete and replay rejected events",
        statements=[
            iam.PolicyStatement(
                sid="ReadAndDeleteRejects",
                actions=["s3:GetObject", "s3:DeleteObject"],
                resources=[bucket.arn_for_objects("*")],
            ),
            iam.PolicyStatement(
                sid="ListRejects",
                actions=["s3:ListBucket"],
                resources=[bucket.bucket_arn],
            ),
            iam.PolicyStatement(
                sid="DecryptRejectsThroughS3",
                actions=["kms:Decrypt"],
                resources=[key.key_arn],
                conditions={"StringEquals": {"kms:ViaService": f"s3.{Aws.REGION}.amazonaws.com"}},
            ),
        ],
    )
    acknowledge_findings(
        policy,
        "IAM5",
        [f"Resource::{arn_ref(bucket)}/*"],
        "Operators read and delete rejected events under keys derived from their content; "
        "the wildcard is the objects of the rejects bucket only.",
    )
    role = _role_for_named_principal(
        stack,
        "OperatorRole",
        config.operator_principal_arn,
        f"billing-{config.stage}: operators inspect and replay rejected events",
        policy,
    )
    return policy, role
