"""Deploys a CDK cloud assembly (synthesized template + assets) into moto's CloudFormation.

Only public AWS APIs are used here, so the same code works against any endpoint that
``AWS_ENDPOINT_URL`` points at. Gaps of moto's CloudFormation that the runtime depends on
are filled in through the service APIs after the stack is created (see
``docs/local-runtime.md``).
"""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from billing.local.cfn_models import placeholders
from billing.local.clients import aws_client
from billing.local.intrinsics import Resolver, UnresolvableError
from billing.local.stack import (
    DeployedStack,
    EventSourceMapping,
    Function,
    Resource,
    SkippedResource,
    StateMachine,
)

LOG = logging.getLogger(__name__)

BOOTSTRAP_QUALIFIER = "hnb659fds"
BOOTSTRAP_VERSION = "30"
CDK_BOOTSTRAP_PREFIX = "/cdk-bootstrap/"

_SKIPPED_HANDLING: dict[str, str] = {
    "AWS::CDK::Metadata": "metadata only, nothing to create",
    "AWS::SQS::QueuePolicy": "not created; moto does not enforce resource policies",
    "AWS::S3::BucketPolicy": "not created; moto does not enforce resource policies",
    "AWS::Scheduler::Schedule": "not created; schedules never fire locally, "
    "start the target yourself",
    "AWS::Lambda::EventInvokeConfig": "not created; asynchronous invoke settings unused",
    "AWS::CloudWatch::Alarm": "not created; nothing evaluates alarms locally",
    "AWS::SNS::TopicPolicy": "not created; moto does not enforce resource policies",
}


class DeployError(RuntimeError):
    """The stack could not be deployed."""


@dataclass(frozen=True)
class AssemblyStack:
    """One stack of a CDK cloud assembly."""

    stack_name: str
    template_path: Path
    assets_path: Path | None


def find_stack(
    template_dir: str | os.PathLike[str], stack_name: str | None = None
) -> AssemblyStack:
    """Locates a stack's template and asset manifest in a cloud assembly directory."""
    directory = Path(template_dir)
    manifest_path = directory / "manifest.json"
    stacks: list[AssemblyStack] = []
    if manifest_path.is_file():
        artifacts: dict[str, Any] = json.loads(manifest_path.read_text()).get("artifacts", {})
        for artifact_id, artifact in artifacts.items():
            if artifact.get("type") != "aws:cloudformation:stack":
                continue
            properties = artifact.get("properties", {})
            assets = artifacts.get(f"{artifact_id}.assets", {})
            assets_file = assets.get("properties", {}).get("file")
            stacks.append(
                AssemblyStack(
                    stack_name=properties.get("stackName", artifact_id),
                    template_path=directory / properties["templateFile"],
                    assets_path=directory / assets_file if assets_file else None,
                )
            )
    else:
        for template in sorted(directory.glob("*.template.json")):
            name = template.name.removesuffix(".template.json")
            assets = directory / f"{name}.assets.json"
            stacks.append(AssemblyStack(name, template, assets if assets.is_file() else None))
    if stack_name is not None:
        stacks = [stack for stack in stacks if stack.stack_name == stack_name]
    if len(stacks) != 1:
        names = [stack.stack_name for stack in stacks]
        raise DeployError(
            f"expected exactly one stack{f' named {stack_name!r}' if stack_name else ''} "
            f"in {directory}, found {names}"
        )
    return stacks[0]


def synth(
    project_root: str | os.PathLike[str],
    *,
    outdir: str | os.PathLike[str] | None = None,
    timeout: float = 300.0,
) -> Path:
    """Runs the CDK app (``app.py``) of ``project_root``; returns the cloud assembly path
    (``cdk.out`` unless ``outdir`` says otherwise)."""
    return Synthesis(project_root, outdir=outdir).result(timeout)


class Synthesis:
    """The CDK app of ``project_root`` running in its own process, started at once: the
    caller does something else meanwhile (``billing demo`` starts the runtime) and takes
    the cloud assembly's path from ``result``."""

    def __init__(
        self, project_root: str | os.PathLike[str], *, outdir: str | os.PathLike[str] | None = None
    ) -> None:
        root = Path(project_root)
        app = root / "app.py"
        if not app.is_file():
            raise DeployError(f"no CDK app at {app}")
        env = dict(os.environ)
        env.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
        if outdir is not None:
            env["CDK_OUTDIR"] = str(Path(outdir).resolve())
        self.assembly = Path(env["CDK_OUTDIR"]) if outdir is not None else root / "cdk.out"
        self.process = subprocess.Popen(  # noqa: S603 - this interpreter, the project's app
            [sys.executable, str(app)],
            cwd=root,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )

    def result(self, timeout: float = 300.0) -> Path:
        """Waits for the app; the assembly's path, or ``DeployError`` with its error output."""
        try:
            _, stderr = self.process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.communicate()
            raise DeployError(f"synthesis still running after {timeout} s") from None
        if self.process.returncode != 0:
            raise DeployError(f"synthesis failed ({self.process.returncode}):\n{stderr[-4000:]}")
        return self.assembly


def _substitute_placeholders(text: str, account_id: str, region: str) -> str:
    return (
        text.replace("${AWS::AccountId}", account_id)
        .replace("${AWS::Region}", region)
        .replace("${AWS::Partition}", "aws")
    )


def _zip_directory(path: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for file in sorted(path.rglob("*")):
            if file.is_file():
                archive.write(file, file.relative_to(path).as_posix())
    return buffer.getvalue()


def _ensure_bucket(s3: Any, bucket: str) -> None:
    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError:
        s3.create_bucket(Bucket=bucket)


def bootstrap(
    *,
    account_id: str,
    region: str,
    qualifier: str = BOOTSTRAP_QUALIFIER,
    extra_buckets: list[str] | None = None,
) -> None:
    """Creates what ``cdk bootstrap`` would: the asset bucket and the version parameter."""
    s3 = aws_client("s3", region=region)
    for bucket in [f"cdk-{qualifier}-assets-{account_id}-{region}", *(extra_buckets or [])]:
        _ensure_bucket(s3, bucket)
    aws_client("ssm", region=region).put_parameter(
        Name=f"{CDK_BOOTSTRAP_PREFIX}{qualifier}/version",
        Value=BOOTSTRAP_VERSION,
        Type="String",
        Overwrite=True,
    )


def publish_assets(assets_path: Path, *, account_id: str, region: str) -> list[str]:
    """Uploads every file asset of an asset manifest; returns the ``s3://`` URIs written."""
    manifest = json.loads(assets_path.read_text())
    if manifest.get("dockerImages"):
        raise DeployError("Docker image assets cannot be deployed locally")
    s3 = aws_client("s3", region=region)
    written: list[str] = []
    for asset_id, asset in manifest.get("files", {}).items():
        source = asset["source"]
        if "path" not in source:
            raise DeployError(f"asset {asset_id}: only path sources are supported, got {source}")
        path = assets_path.parent / source["path"]
        if source.get("packaging") == "zip" and path.is_dir():
            body = _zip_directory(path)
        elif path.is_dir():
            raise DeployError(f"asset {asset_id}: {path} is a directory but packaging is 'file'")
        else:
            body = path.read_bytes()
        for destination in asset.get("destinations", {}).values():
            bucket = _substitute_placeholders(destination["bucketName"], account_id, region)
            key = _substitute_placeholders(destination["objectKey"], account_id, region)
            _ensure_bucket(s3, bucket)
            s3.put_object(Bucket=bucket, Key=key, Body=body)
            written.append(f"s3://{bucket}/{key}")
    return written


def _stack_parameters(
    template: dict[str, Any], overrides: dict[str, str], account_id: str, region: str
) -> list[dict[str, str]]:
    """Passes overrides through and makes sure CDK's bootstrap parameters resolve."""
    ssm = aws_client("ssm", region=region)
    for definition in template.get("Parameters", {}).values():
        default = definition.get("Default")
        is_ssm = str(definition.get("Type", "")).startswith("AWS::SSM::Parameter::Value")
        if is_ssm and isinstance(default, str) and default.startswith(CDK_BOOTSTRAP_PREFIX):
            ssm.put_parameter(Name=default, Value=BOOTSTRAP_VERSION, Type="String", Overwrite=True)
    return [{"ParameterKey": key, "ParameterValue": value} for key, value in overrides.items()]


def _wait_for_stack(cfn: Any, stack_name: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        stack: dict[str, Any] = cfn.describe_stacks(StackName=stack_name)["Stacks"][0]
        status = stack["StackStatus"]
        if not status.endswith("_IN_PROGRESS"):
            break
        if time.monotonic() > deadline:
            raise DeployError(f"stack {stack_name} still {status} after {timeout:.0f} s")
        time.sleep(0.2)
    if status != "CREATE_COMPLETE":
        events = cfn.describe_stack_events(StackName=stack_name)["StackEvents"]
        failures = [
            f"{e['LogicalResourceId']}: {e.get('ResourceStatusReason', e['ResourceStatus'])}"
            for e in events
            if str(e.get("ResourceStatus", "")).endswith("FAILED")
        ]
        raise DeployError(f"stack {stack_name} ended {status}: {failures}")
    return stack


def _list_stack_resources(cfn: Any, stack_name: str) -> Iterator[dict[str, Any]]:
    paginator = cfn.get_paginator("list_stack_resources")
    for page in paginator.paginate(StackName=stack_name):
        yield from page["StackResourceSummaries"]


class _StackInspector:
    """Turns a created stack into a :class:`DeployedStack`, compensating moto's gaps."""

    def __init__(
        self,
        *,
        template: dict[str, Any],
        stack: dict[str, Any],
        region: str,
        account_id: str,
        parameters: dict[str, str],
    ) -> None:
        self.template = template
        self.region = region
        self.account_id = account_id
        self.stack_name: str = stack["StackName"]
        self.result = DeployedStack(
            stack_name=self.stack_name,
            stack_id=stack["StackId"],
            status=stack["StackStatus"],
            region=region,
            account_id=account_id,
            outputs={o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs") or []},
        )
        self.resolved_parameters: dict[str, Any] = {
            p["ParameterKey"]: p.get("ResolvedValue", p.get("ParameterValue"))
            for p in stack.get("Parameters") or []
        }
        for name, definition in template.get("Parameters", {}).items():
            self.resolved_parameters.setdefault(name, definition.get("Default"))
        self.resolved_parameters.update(parameters)
        self._clients: dict[str, Any] = {}
        self._physical: dict[str, str] = {}
        self.resolver = self._new_resolver()

    def client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = aws_client(service, region=self.region)
        return self._clients[service]

    def _new_resolver(self) -> Resolver:
        return Resolver(
            region=self.region,
            account_id=self.account_id,
            stack_name=self.stack_name,
            stack_id=self.result.stack_id,
            physical_ids=self._physical,
            get_att=self.get_att,
            parameters=self.resolved_parameters,
            conditions=self.template.get("Conditions", {}),
            mappings=self.template.get("Mappings", {}),
        )

    def _add_resource(self, logical_id: str, resource_type: str, physical_id: str) -> None:
        self.result.resources[logical_id] = Resource(logical_id, resource_type, physical_id)
        self._physical[logical_id] = physical_id
        self.resolver = self._new_resolver()

    def _properties(self, logical_id: str) -> dict[str, Any]:
        resource: dict[str, Any] = self.template["Resources"][logical_id]
        return dict(resource.get("Properties", {}))

    def get_att(self, logical_id: str, attribute: str) -> Any:
        resource = self.result.resources[logical_id]
        physical, kind = resource.physical_id, resource.type
        if kind == "AWS::SQS::Queue":
            if attribute == "Arn":
                attrs = self.client("sqs").get_queue_attributes(
                    QueueUrl=physical, AttributeNames=["QueueArn"]
                )
                return attrs["Attributes"]["QueueArn"]
            if attribute == "QueueName":
                return physical.rsplit("/", 1)[-1]
            if attribute == "QueueUrl":
                return physical
        elif kind == "AWS::DynamoDB::Table":
            table = self.client("dynamodb").describe_table(TableName=physical)["Table"]
            if attribute == "Arn":
                return table["TableArn"]
            if attribute == "StreamArn":
                return table["LatestStreamArn"]
        elif kind == "AWS::S3::Bucket":
            if attribute == "Arn":
                return f"arn:aws:s3:::{physical}"
            if attribute in ("DomainName", "RegionalDomainName"):
                return f"{physical}.s3.{self.region}.amazonaws.com"
        elif kind == "AWS::Lambda::Function" and attribute == "Arn":
            config = self.client("lambda").get_function_configuration(FunctionName=physical)
            return config["FunctionArn"]
        elif kind == "AWS::Events::EventBus":
            if attribute == "Arn":
                return self.client("events").describe_event_bus(Name=physical)["Arn"]
            if attribute == "Name":
                return physical
        elif kind == "AWS::KMS::Key":
            metadata = self.client("kms").describe_key(KeyId=physical)["KeyMetadata"]
            if attribute == "Arn":
                return metadata["Arn"]
            if attribute == "KeyId":
                return metadata["KeyId"]
        elif kind == "AWS::IAM::Role":
            role = self.client("iam").get_role(RoleName=physical)["Role"]
            if attribute == "Arn":
                return role["Arn"]
            if attribute == "RoleId":
                return role["RoleId"]
        elif kind in ("AWS::SecretsManager::Secret", "AWS::StepFunctions::StateMachine"):
            if attribute in ("Arn", "Id"):
                return physical
            if attribute == "Name":
                return physical.rsplit(":", 1)[-1]
        elif kind == "AWS::Events::Rule" and attribute == "Arn":
            declared = self._properties(logical_id).get("EventBusName")
            request = {"Name": physical.rsplit("|", 1)[-1]}
            if declared:
                request["EventBusName"] = str(self.resolver.resolve(declared))
            return self.client("events").describe_rule(**request)["Arn"]
        if attribute == "Arn" and physical.startswith("arn:"):
            return physical
        raise UnresolvableError(f"GetAtt {logical_id}.{attribute} ({kind}) is not supported")

    # -- discovery -------------------------------------------------------------------------

    def discover(self) -> DeployedStack:
        for summary in _list_stack_resources(self.client("cloudformation"), self.stack_name):
            self._add_resource(
                summary["LogicalResourceId"],
                summary["ResourceType"],
                summary.get("PhysicalResourceId", ""),
            )
        self._record_skipped()
        self._apply_dropped_properties()
        self._collect_plain_resources()
        self._collect_functions()
        self._collect_event_source_mappings()
        self._collect_state_machines()
        self._complete_outputs()
        return self.result

    def _record_skipped(self) -> None:
        """Resources moto did not really create: placeholders, and anything missing."""
        stood_in = placeholders(self.result.stack_id)
        resources: dict[str, Any] = self.template.get("Resources", {})
        for logical_id, definition in resources.items():
            if logical_id in self.result.resources and logical_id not in stood_in:
                continue
            condition = definition.get("Condition")
            if condition and not self.resolver.condition(condition):
                continue
            kind = definition["Type"]
            handling = _SKIPPED_HANDLING.get(kind, "not created; moto does not support it")
            if logical_id in stood_in:
                handling = f"placeholder (Ref/GetAtt resolve): {handling}"
            self.result.skipped.append(SkippedResource(logical_id, kind, handling))
            LOG.info("moto skipped %s (%s): %s", logical_id, kind, handling)

    def _apply_dropped_properties(self) -> None:
        """Applies resource properties moto's CloudFormation accepts but ignores."""
        wanted = {
            "AWS::S3::Bucket": (
                "VersioningConfiguration",
                "ObjectLockEnabled",
                "ObjectLockConfiguration",
                "PublicAccessBlockConfiguration",
            ),
            "AWS::DynamoDB::Table": ("TimeToLiveSpecification", "PointInTimeRecoverySpecification"),
        }
        for resource in list(self.result.resources.values()):
            names = wanted.get(resource.type)
            if not names or resource.logical_id not in self.template.get("Resources", {}):
                continue
            declared = self._properties(resource.logical_id)
            properties = {
                name: self.resolver.resolve(declared[name]) for name in names if name in declared
            }
            if resource.type == "AWS::S3::Bucket":
                self._apply_bucket_properties(resource.physical_id, properties)
            else:
                self._apply_table_properties(resource.physical_id, properties)

    def _applied(self, description: str) -> None:
        self.result.applied_properties.append(description)
        LOG.info("applied %s", description)

    def _apply_bucket_properties(self, bucket: str, properties: dict[str, Any]) -> None:
        s3 = self.client("s3")
        versioning = properties.get("VersioningConfiguration")
        object_lock = properties.get("ObjectLockConfiguration")
        if versioning or properties.get("ObjectLockEnabled"):
            status = (versioning or {}).get("Status", "Enabled")
            if properties.get("ObjectLockEnabled"):
                status = "Enabled"
            s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": status})
            self._applied(f"{bucket}: VersioningConfiguration={status}")
        if properties.get("ObjectLockEnabled") or object_lock:
            lock: dict[str, Any] = {"ObjectLockEnabled": "Enabled"}
            rule = (object_lock or {}).get("Rule")
            if rule:
                retention = dict(rule.get("DefaultRetention", {}))
                for key in ("Days", "Years"):
                    if key in retention:
                        retention[key] = int(retention[key])
                lock["Rule"] = {"DefaultRetention": retention}
            try:
                s3.put_object_lock_configuration(Bucket=bucket, ObjectLockConfiguration=lock)
                self._applied(f"{bucket}: ObjectLockConfiguration")
            except ClientError as error:
                LOG.warning("could not apply object lock to %s: %s", bucket, error)
        public_access = properties.get("PublicAccessBlockConfiguration")
        if public_access:
            config = {key: str(value).lower() == "true" for key, value in public_access.items()}
            s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration=config)
            self._applied(f"{bucket}: PublicAccessBlockConfiguration")

    def _apply_table_properties(self, table: str, properties: dict[str, Any]) -> None:
        dynamodb = self.client("dynamodb")
        ttl = properties.get("TimeToLiveSpecification")
        if ttl and str(ttl.get("Enabled", "false")).lower() == "true":
            dynamodb.update_time_to_live(
                TableName=table,
                TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": True},
            )
            self._applied(f"{table}: TimeToLiveSpecification={ttl['AttributeName']}")
        pitr = properties.get("PointInTimeRecoverySpecification")
        if pitr and str(pitr.get("PointInTimeRecoveryEnabled", "false")).lower() == "true":
            dynamodb.update_continuous_backups(
                TableName=table,
                PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True},
            )
            self._applied(f"{table}: PointInTimeRecoverySpecification")

    def _collect_plain_resources(self) -> None:
        targets = {
            "AWS::SQS::Queue": self.result.queues,
            "AWS::DynamoDB::Table": self.result.tables,
            "AWS::S3::Bucket": self.result.buckets,
            "AWS::Events::EventBus": self.result.event_buses,
            "AWS::SecretsManager::Secret": self.result.secrets,
        }
        for resource in self.result.resources.values():
            target = targets.get(resource.type)
            if target is not None:
                target[resource.logical_id] = resource.physical_id

    def _collect_functions(self) -> None:
        lambda_client = self.client("lambda")
        for resource in list(self.result.resources.values()):
            if resource.type != "AWS::Lambda::Function":
                continue
            config = lambda_client.get_function_configuration(FunctionName=resource.physical_id)
            stored: dict[str, str] = config.get("Environment", {}).get("Variables", {}) or {}
            declared = (
                self._properties(resource.logical_id).get("Environment", {}).get("Variables", {})
            )
            env: dict[str, str] = {}
            for name, value in declared.items():
                try:
                    resolved = self.resolver.resolve(value)
                except UnresolvableError as error:
                    if name not in stored:
                        raise DeployError(
                            f"{resource.logical_id}: environment variable {name}: {error}"
                        ) from error
                    resolved = stored[name]
                env[name] = resolved if isinstance(resolved, str) else json.dumps(resolved)
            for name, value in stored.items():
                env.setdefault(name, value)
            if env != stored:
                lambda_client.update_function_configuration(
                    FunctionName=resource.physical_id, Environment={"Variables": env}
                )
                missing = sorted(set(env) - set(stored))
                self._applied(f"{resource.physical_id}: Environment (moto had dropped {missing})")
            self.result.functions[resource.logical_id] = Function(
                logical_id=resource.logical_id,
                name=config["FunctionName"],
                arn=config["FunctionArn"],
                handler=config.get("Handler", ""),
                runtime=config.get("Runtime", ""),
                timeout=int(config.get("Timeout", 3)),
                memory_size=int(config.get("MemorySize", 128)),
                env=env,
            )

    def _collect_event_source_mappings(self) -> None:
        functions = {function.arn: function for function in self.result.functions.values()}
        sqs = self.client("sqs")
        paginator = self.client("lambda").get_paginator("list_event_source_mappings")
        for page in paginator.paginate():
            for mapping in page["EventSourceMappings"]:
                function = functions.get(mapping["FunctionArn"])
                if function is None:
                    continue
                source_arn: str = mapping["EventSourceArn"]
                queue_url = None
                if source_arn.startswith("arn:aws:sqs:"):
                    _, _, _, _, owner, queue_name = source_arn.split(":", 5)
                    queue_url = sqs.get_queue_url(
                        QueueName=queue_name, QueueOwnerAWSAccountId=owner
                    )["QueueUrl"]
                scaling = mapping.get("ScalingConfig") or {}
                criteria = mapping.get("FilterCriteria") or {}
                prefixes = _filter_prefixes(criteria)
                self.result.event_source_mappings.append(
                    EventSourceMapping(
                        uuid=mapping["UUID"],
                        function_name=function.name,
                        function_arn=function.arn,
                        event_source_arn=source_arn,
                        queue_url=queue_url,
                        batch_size=int(mapping.get("BatchSize") or 10),
                        maximum_batching_window_seconds=int(
                            mapping.get("MaximumBatchingWindowInSeconds") or 0
                        ),
                        report_batch_item_failures="ReportBatchItemFailures"
                        in (mapping.get("FunctionResponseTypes") or []),
                        enabled=mapping.get("State", "Enabled") == "Enabled",
                        maximum_concurrency=scaling.get("MaximumConcurrency"),
                        filter_prefixes=prefixes,
                        filter_event_names=_filter_event_names(criteria),
                    )
                )

    def _state_machine_definition(self, properties: dict[str, Any]) -> str:
        if "DefinitionString" in properties:
            definition = str(self.resolver.resolve(properties["DefinitionString"]))
        elif "Definition" in properties:
            definition = json.dumps(self.resolver.resolve(properties["Definition"]))
        elif "DefinitionS3Location" in properties:
            location = self.resolver.resolve(properties["DefinitionS3Location"])
            body = self.client("s3").get_object(Bucket=location["Bucket"], Key=location["Key"])
            definition = body["Body"].read().decode()
        else:
            raise DeployError("state machine without a definition")
        substitutions = self.resolver.resolve(properties.get("DefinitionSubstitutions", {}))
        for key, value in substitutions.items():
            text = value if isinstance(value, str) else json.dumps(value)
            definition = definition.replace("${" + key + "}", text)
        return definition

    def _collect_state_machines(self) -> None:
        sfn = self.client("stepfunctions")
        for resource in list(self.result.resources.values()):
            if resource.type != "AWS::StepFunctions::StateMachine":
                continue
            arn = resource.physical_id
            properties = self._properties(resource.logical_id)
            kind = str(properties.get("StateMachineType", "STANDARD"))
            reregistered = False
            try:
                sfn.describe_state_machine(stateMachineArn=arn)
            except ClientError as error:
                if error.response["Error"]["Code"] != "StateMachineDoesNotExist":
                    raise
                # Created by CloudFormation in a backend that does not execute: register
                # the same definition (same name, hence same ARN) with the executing one.
                sfn.create_state_machine(
                    name=arn.rsplit(":", 1)[-1],
                    definition=self._state_machine_definition(properties),
                    roleArn=str(self.resolver.resolve(properties.get("RoleArn", ""))),
                    type=kind,
                )
                reregistered = True
            self.result.state_machines[resource.logical_id] = StateMachine(
                logical_id=resource.logical_id,
                name=arn.rsplit(":", 1)[-1],
                arn=arn,
                type=kind,
                reregistered=reregistered,
            )

    def _complete_outputs(self) -> None:
        for key, output in self.template.get("Outputs", {}).items():
            if key in self.result.outputs:
                continue
            condition = output.get("Condition")
            if condition and not self.resolver.condition(condition):
                continue
            try:
                value = self.resolver.resolve(output.get("Value"))
            except UnresolvableError as error:
                LOG.warning("output %s left unresolved: %s", key, error)
                continue
            self.result.outputs[key] = value if isinstance(value, str) else json.dumps(value)


def deploy(
    template_dir: str | os.PathLike[str],
    *,
    stack_name: str | None = None,
    parameters: dict[str, str] | None = None,
    region: str | None = None,
    timeout: float = 120.0,
) -> DeployedStack:
    """Deploys the stack of a cloud assembly directory (``cdk.out``) to the endpoint in
    ``AWS_ENDPOINT_URL`` and describes its physical resources.

    Bootstrap resources are created first, every file asset is uploaded, the template is
    created through CloudFormation, and the gaps of moto's CloudFormation that matter at
    run time are filled in afterwards (see :class:`DeployedStack` ``skipped`` and
    ``applied_properties``).
    """
    assembly = find_stack(template_dir, stack_name)
    region = region or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    account_id: str = aws_client("sts", region=region).get_caller_identity()["Account"]
    template: dict[str, Any] = json.loads(assembly.template_path.read_text())

    bootstrap(account_id=account_id, region=region)
    if assembly.assets_path is not None:
        publish_assets(assembly.assets_path, account_id=account_id, region=region)
    stack_parameters = _stack_parameters(template, parameters or {}, account_id, region)

    cfn = aws_client("cloudformation", region=region)
    try:
        cfn.create_stack(
            StackName=assembly.stack_name,
            TemplateBody=assembly.template_path.read_text(),
            Parameters=stack_parameters,
            Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"],
        )
    except ClientError as error:
        raise DeployError(f"create_stack {assembly.stack_name} failed: {error}") from error
    stack = _wait_for_stack(cfn, assembly.stack_name, timeout)

    inspector = _StackInspector(
        template=template,
        stack=stack,
        region=region,
        account_id=account_id,
        parameters=parameters or {},
    )
    return inspector.discover()


def _filter_event_names(criteria: dict[str, Any]) -> list[str] | None:
    """The event names a stream mapping's filters let through (``{"eventName": [...]}``),
    or None when one of them does not name any (every event passes it)."""
    names: set[str] = set()
    for entry in criteria.get("Filters") or []:
        try:
            listed = json.loads(entry["Pattern"])["eventName"]
        except (KeyError, TypeError, ValueError):
            return None
        names.update(str(name) for name in listed)
    return sorted(names) or None


def _filter_prefixes(criteria: dict[str, Any]) -> list[str] | None:
    """The key prefixes of a stream mapping's filters (``{"dynamodb": {"Keys": {"pk":
    {"S": [{"prefix": ...}]}}}}``), or None when it has no filter of that shape."""
    prefixes: list[str] = []
    for entry in criteria.get("Filters") or []:
        try:
            pattern = json.loads(entry["Pattern"])
            keys = pattern["dynamodb"]["Keys"]
            for attribute in keys.values():
                prefixes.extend(rule["prefix"] for rule in attribute["S"])
        except (KeyError, TypeError, ValueError):
            return None
    return prefixes or None
