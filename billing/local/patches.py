"""Changes to moto's in-process behaviour that the local runtime needs.

* ``LambdaFunction.invoke`` runs the real handler through :class:`LambdaDispatcher`
  (moto would start Docker). With ``use_docker`` off, moto's ``Invoke`` API goes to
  ``LambdaSimpleBackend.invoke``, which only echoes the payload; it is routed to the
  function as well. So every path that invokes a registered function reaches the handler:
  the ``Invoke`` API, Step Functions ``lambda:invoke`` and direct-ARN tasks (which call the
  Invoke API of the server they run in) and CloudFormation custom resources. Functions
  without a local handler keep moto's behaviour.
* Event source mappings on SQS queues are detached from the queue: moto would invoke the
  function once per message inside ``SendMessage``; :mod:`billing.local.poller` polls the
  queue in real batches instead.
* EventBridge targets with ``InputPath`` or ``Input``: moto ignores both and always
  delivers the whole event; the patched rule delivers what AWS would.
* ``AWS::KMS::Key`` with ``Tags`` (CDK tags every key) crashes moto's CloudFormation:
  the tags are passed on in CloudFormation's ``Key``/``Value`` shape where the KMS
  backend expects ``TagKey``/``TagValue``; the key policy is passed on as an object where
  a JSON string is expected. Both are converted before moto sees them.
* ``AWS::SecretsManager::Secret`` is added to the resource types moto's CloudFormation
  knows, and every other type it does not know gets a placeholder instead of being
  dropped (:mod:`billing.local.cfn_models`).
* ``AWS::Events::EventBus`` has no physical id in moto, so ``Ref`` to a bus yields a Python
  object and a rule on that bus fails to create; the bus's name is its physical id.
"""

from __future__ import annotations

import copy
import json
import logging
import re
import threading
from collections.abc import Callable
from typing import Any

from billing.local.cfn_models import EXTRA_MODELS, CfnPlaceholder
from billing.local.dispatch import LambdaDispatcher

LOG = logging.getLogger(__name__)

_ABSENT = object()
_CFN_CREATE = "create_from_cloudformation_json"

_PATH_TOKEN = re.compile(r"\.([A-Za-z0-9_\-]+)|\[(\d+)\]|\['([^']*)'\]|\[\"([^\"]*)\"\]")


def json_path(document: Any, path: str) -> Any:
    """Evaluates the simple JSONPath subset EventBridge accepts in ``InputPath``."""
    if not path.startswith("$"):
        raise ValueError(f"not a JSONPath: {path!r}")
    position, value = 1, document
    while position < len(path):
        match = _PATH_TOKEN.match(path, position)
        if match is None:
            raise ValueError(f"unsupported JSONPath {path!r} at {position}")
        key, index, quoted, double_quoted = match.groups()
        value = value[int(index)] if index is not None else value[key or quoted or double_quoted]
        position = match.end()
    return value


def _header(headers: Any, name: str, default: str) -> str:
    if not headers:
        return default
    for candidate in (name, name.lower()):
        value = headers.get(candidate)
        if value:
            return str(value)
    return default


class MotoPatches:
    """Installs and removes the patches; one instance is active per process."""

    _active: MotoPatches | None = None
    _active_lock = threading.Lock()

    def __init__(self, dispatcher: LambdaDispatcher) -> None:
        self.dispatcher = dispatcher
        self._originals: list[tuple[Any, str, Any]] = []

    def install(self) -> None:
        with MotoPatches._active_lock:
            if MotoPatches._active is not None:
                raise RuntimeError("another local runtime is active in this process")
            MotoPatches._active = self
        from moto.awslambda.models import LambdaBackend, LambdaFunction
        from moto.awslambda_simple.models import LambdaSimpleBackend
        from moto.events.models import Rule

        self._replace(LambdaFunction, "invoke", self._make_invoke(LambdaFunction.invoke))
        self._replace(
            LambdaSimpleBackend,
            "invoke",
            self._make_backend_invoke(LambdaSimpleBackend.invoke, LambdaBackend.invoke),
        )
        self._replace(
            LambdaBackend,
            "create_event_source_mapping",
            self._make_create_mapping(LambdaBackend.create_event_source_mapping),
        )
        self._replace(
            LambdaBackend,
            "update_event_source_mapping",
            self._make_update_mapping(LambdaBackend.update_event_source_mapping),
        )
        self._replace(Rule, "send_to_targets", self._make_send_to_targets(Rule.send_to_targets))
        from moto.cloudformation import parsing
        from moto.events.models import EventBus
        from moto.kms.models import Key

        self._replace(
            parsing,
            "resource_class_from_type",
            _make_resource_class_from_type(parsing.resource_class_from_type),
        )
        self._replace(
            parsing,
            "resource_name_property_from_type",
            _make_name_property_from_type(parsing.resource_name_property_from_type),
        )

        self._replace(
            Key,
            "create_from_cloudformation_json",
            classmethod(_make_kms_key_from_cloudformation(Key.__dict__[_CFN_CREATE].__func__)),
        )

        if "physical_resource_id" not in EventBus.__dict__:
            self._add(EventBus, "physical_resource_id", property(lambda bus: bus.name))

    def uninstall(self) -> None:
        for owner, name, original in reversed(self._originals):
            if original is _ABSENT:
                delattr(owner, name)
            else:
                setattr(owner, name, original)
        self._originals.clear()
        with MotoPatches._active_lock:
            if MotoPatches._active is self:
                MotoPatches._active = None

    def _replace(self, owner: Any, name: str, replacement: Any) -> None:
        self._originals.append((owner, name, owner.__dict__[name]))
        setattr(owner, name, replacement)

    def _add(self, owner: Any, name: str, value: Any) -> None:
        self._originals.append((owner, name, _ABSENT))
        setattr(owner, name, value)

    # -- Lambda ----------------------------------------------------------------------------

    def _make_invoke(self, original: Callable[..., Any]) -> Callable[..., Any]:
        dispatcher = self.dispatcher

        def invoke(fn: Any, body: Any, request_headers: Any, response_headers: Any) -> Any:
            if dispatcher.lookup(fn.function_arn) is None:
                return original(fn, body, request_headers, response_headers)
            invocation_type = _header(request_headers, "X-Amz-Invocation-Type", "RequestResponse")
            if invocation_type == "DryRun":
                return b""
            if invocation_type == "Event":
                threading.Thread(
                    target=dispatcher.invoke_payload,
                    args=(fn.function_arn, body),
                    name=f"lambda-event-{fn.function_name}",
                    daemon=True,
                ).start()
                return b""
            payload, errored = dispatcher.invoke_payload(fn.function_arn, body)
            if errored:
                response_headers["x-amz-function-error"] = "Unhandled"
            return payload

        return invoke

    def _make_backend_invoke(
        self, original: Callable[..., Any], dispatching: Callable[..., Any]
    ) -> Callable[..., Any]:
        dispatcher = self.dispatcher

        def invoke(
            backend: Any,
            function_name: str,
            qualifier: str | None,
            body: Any,
            headers: Any,
            response_headers: Any,
        ) -> Any:
            fn = backend.get_function(function_name, qualifier)
            chosen = original if dispatcher.lookup(fn.function_arn) is None else dispatching
            return chosen(backend, function_name, qualifier, body, headers, response_headers)

        return invoke

    @staticmethod
    def _detach_from_queue(backend: Any, mapping: Any) -> None:
        from moto.sqs.models import sqs_backends

        queues = sqs_backends[backend.account_id][backend.region_name].queues
        for queue in queues.values():
            attached = queue.lambda_event_source_mappings
            for key, value in list(attached.items()):
                if value is mapping:
                    del attached[key]
                    LOG.debug("detached %s from %s", mapping.uuid, queue.name)

    def _make_create_mapping(self, original: Callable[..., Any]) -> Callable[..., Any]:
        def create_event_source_mapping(backend: Any, spec: dict[str, Any]) -> Any:
            mapping = original(backend, spec)
            MotoPatches._detach_from_queue(backend, mapping)
            return mapping

        return create_event_source_mapping

    def _make_update_mapping(self, original: Callable[..., Any]) -> Callable[..., Any]:
        def update_event_source_mapping(backend: Any, uuid: str, spec: dict[str, Any]) -> Any:
            mapping = original(backend, uuid, spec)
            if mapping is not None:
                MotoPatches._detach_from_queue(backend, mapping)
            return mapping

        return update_event_source_mapping

    # -- EventBridge -----------------------------------------------------------------------

    def _make_send_to_targets(self, original: Callable[..., Any]) -> Callable[..., Any]:
        def send_to_targets(rule: Any, event: dict[str, Any], transform_input: bool = True) -> Any:
            special = [t for t in rule.targets if "InputPath" in t or "Input" in t]
            if not transform_input or not special:
                return original(rule, event, transform_input)
            if not rule.event_pattern.matches_event(event):
                return None
            plain = [t for t in rule.targets if t not in special]
            if plain:
                clone = copy.copy(rule)
                clone.targets = plain
                original(clone, event, transform_input)
            for target in special:
                _deliver_selected(rule, target, event, original)
            return None

        return send_to_targets


def _make_resource_class_from_type(original: Callable[..., Any]) -> Callable[..., Any]:
    from moto.cloudformation.parsing import NULL_MODELS, get_model_map

    def resource_class_from_type(resource_type: str) -> Any:
        if resource_type in EXTRA_MODELS:
            return EXTRA_MODELS[resource_type]
        if (
            resource_type in NULL_MODELS
            or resource_type.startswith("Custom::")
            or resource_type in get_model_map()
        ):
            return original(resource_type)
        return CfnPlaceholder

    return resource_class_from_type


def _make_name_property_from_type(original: Callable[..., Any]) -> Callable[..., Any]:
    def resource_name_property_from_type(resource_type: str) -> Any:
        model = EXTRA_MODELS.get(resource_type)
        return model.cloudformation_name_type() if model else original(resource_type)

    return resource_name_property_from_type


def _make_kms_key_from_cloudformation(original: Callable[..., Any]) -> Callable[..., Any]:
    def create_from_cloudformation_json(
        cls: Any,
        resource_name: str,
        cloudformation_json: Any,
        account_id: str,
        region_name: str,
        **kwargs: Any,
    ) -> Any:
        properties = dict(cloudformation_json.get("Properties", {}))
        properties["Tags"] = [
            {"TagKey": tag.get("Key", tag.get("TagKey")), "TagValue": tag.get("Value", "")}
            for tag in properties.get("Tags", [])
        ]
        if isinstance(properties.get("KeyPolicy"), dict):
            properties["KeyPolicy"] = json.dumps(properties["KeyPolicy"])
        fixed = {**cloudformation_json, "Properties": properties}
        return original(cls, resource_name, fixed, account_id, region_name, **kwargs)

    return create_from_cloudformation_json


def _deliver_selected(
    rule: Any, target: dict[str, Any], event: dict[str, Any], original: Callable[..., Any]
) -> None:
    from moto.core.utils import iso_8601_datetime_without_milliseconds, utcfromtimestamp
    from moto.sqs.models import sqs_backends
    from moto.utilities.arns import parse_arn

    arn = parse_arn(target["Arn"])
    if arn.service != "sqs":
        LOG.warning("InputPath/Input only honoured for SQS targets, not %s", target["Arn"])
        clone = copy.copy(rule)
        clone.targets = [target]
        original(clone, event, True)
        return
    envelope = {key: value for key, value in event.items() if key != "ingestion-time"}
    if isinstance(envelope.get("time"), int | float):
        envelope["time"] = iso_8601_datetime_without_milliseconds(
            utcfromtimestamp(int(envelope["time"]))
        )
    if "Input" in target:
        body = str(target["Input"])
    else:
        body = json.dumps(json_path(envelope, str(target["InputPath"])))
    group_id = target.get("SqsParameters", {}).get("MessageGroupId")
    sqs_backends[rule.account_id][rule.region_name].send_message(
        queue_name=arn.resource_id, message_body=body, group_id=group_id
    )
