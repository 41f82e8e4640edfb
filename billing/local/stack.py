"""Description of a deployed stack: the physical resources the runtime discovered."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

_CDK_HASH = re.compile(r"[0-9A-F]{8}")


@dataclass(frozen=True)
class Resource:
    logical_id: str
    type: str
    physical_id: str


@dataclass(frozen=True)
class SkippedResource:
    """A template resource moto's CloudFormation did not create, and what became of it."""

    logical_id: str
    type: str
    handling: str


@dataclass(frozen=True)
class Function:
    logical_id: str
    name: str
    arn: str
    handler: str
    runtime: str
    timeout: int
    memory_size: int
    env: dict[str, str]


@dataclass(frozen=True)
class EventSourceMapping:
    uuid: str
    function_name: str
    function_arn: str
    event_source_arn: str
    queue_url: str | None
    batch_size: int
    maximum_batching_window_seconds: int
    report_batch_item_failures: bool
    enabled: bool
    maximum_concurrency: int | None = None
    # DynamoDB stream sources: the pk prefixes the mapping's filter criteria let through
    filter_prefixes: list[str] | None = None
    # ... and the event names (INSERT, MODIFY, REMOVE) they let through (None: every one)
    filter_event_names: list[str] | None = None


@dataclass(frozen=True)
class StateMachine:
    logical_id: str
    name: str
    arn: str
    type: str
    reregistered: bool


@dataclass
class DeployedStack:
    """Everything the local runtime (and its users) need to know about a deployed stack."""

    stack_name: str
    stack_id: str
    status: str
    region: str
    account_id: str
    outputs: dict[str, str] = field(default_factory=dict)
    resources: dict[str, Resource] = field(default_factory=dict)
    skipped: list[SkippedResource] = field(default_factory=list)
    applied_properties: list[str] = field(default_factory=list)
    queues: dict[str, str] = field(default_factory=dict)
    tables: dict[str, str] = field(default_factory=dict)
    buckets: dict[str, str] = field(default_factory=dict)
    event_buses: dict[str, str] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)
    functions: dict[str, Function] = field(default_factory=dict)
    event_source_mappings: list[EventSourceMapping] = field(default_factory=list)
    state_machines: dict[str, StateMachine] = field(default_factory=dict)

    def logical_id(self, construct_id: str, resource_type: str | None = None) -> str:
        """Finds the logical id CDK generated for a construct id (``IntakeQueue`` ->
        ``IntakeQueue1A2B3C4D``), optionally restricted to one resource type."""
        candidates = [
            resource
            for resource in self.resources.values()
            if resource_type is None or resource.type == resource_type
        ]
        exact = [
            r
            for r in candidates
            if r.logical_id == construct_id
            or (
                r.logical_id.startswith(construct_id)
                and _CDK_HASH.fullmatch(r.logical_id[len(construct_id) :])
            )
        ]
        matches = exact or [r for r in candidates if r.logical_id.startswith(construct_id)]
        if len(matches) != 1:
            found = sorted(r.logical_id for r in matches)
            raise KeyError(
                f"{construct_id!r} ({resource_type or 'any type'}) matches {len(matches)} "
                f"resources: {found}"
            )
        return matches[0].logical_id

    def physical_id(self, construct_id: str, resource_type: str | None = None) -> str:
        """Physical id (queue URL, table name, bucket name, ARN...) of a construct."""
        return self.resources[self.logical_id(construct_id, resource_type)].physical_id

    def queue_url(self, construct_id: str) -> str:
        return self.physical_id(construct_id, "AWS::SQS::Queue")

    def table_name(self, construct_id: str) -> str:
        return self.physical_id(construct_id, "AWS::DynamoDB::Table")

    def bucket_name(self, construct_id: str) -> str:
        return self.physical_id(construct_id, "AWS::S3::Bucket")

    def function(self, construct_id: str) -> Function:
        return self.functions[self.logical_id(construct_id, "AWS::Lambda::Function")]

    def state_machine_arn(self, construct_id: str) -> str:
        logical_id = self.logical_id(construct_id, "AWS::StepFunctions::StateMachine")
        return self.state_machines[logical_id].arn

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DeployedStack:
        return cls(
            stack_name=data["stack_name"],
            stack_id=data["stack_id"],
            status=data["status"],
            region=data["region"],
            account_id=data["account_id"],
            outputs=dict(data.get("outputs", {})),
            resources={k: Resource(**v) for k, v in data.get("resources", {}).items()},
            skipped=[SkippedResource(**item) for item in data.get("skipped", [])],
            applied_properties=list(data.get("applied_properties", [])),
            queues=dict(data.get("queues", {})),
            tables=dict(data.get("tables", {})),
            buckets=dict(data.get("buckets", {})),
            event_buses=dict(data.get("event_buses", {})),
            secrets=dict(data.get("secrets", {})),
            functions={k: Function(**v) for k, v in data.get("functions", {}).items()},
            event_source_mappings=[
                EventSourceMapping(**item) for item in data.get("event_source_mappings", [])
            ],
            state_machines={
                k: StateMachine(**v) for k, v in data.get("state_machines", {}).items()
            },
        )
