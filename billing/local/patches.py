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
* SQS standard queues: moto keeps a queue's messages in one list and scans all of it on
  every ``ReceiveMessage``, ``DeleteMessage``, ``ChangeMessageVisibility`` and attribute
  read (``SendMessage`` reads the attributes too), so a queue of N messages costs O(N)
  per request. :class:`MessageStore` replaces that list with an index (visible messages
  by arrival, invisible ones by the time they become visible again, receipt handles to
  messages), so that each of those requests costs O(batch log N). FIFO queues keep
  moto's own code (the store still behaves as the list it replaces).
"""

from __future__ import annotations

import copy
import functools
import heapq
import json
import logging
import os
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from billing.local.cfn_models import EXTRA_MODELS, CfnPlaceholder
from billing.local.dispatch import LambdaDispatcher

if TYPE_CHECKING:
    from billing.local.workers import Invoker

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
        self.invoker: Invoker = dispatcher  # what Lambda's Invoke hands its payloads to
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
        self._install_sqs()

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

    def _install_sqs(self) -> None:
        from moto.sqs import models as sqs_models

        queue, backend = sqs_models.Queue, sqs_models.SQSBackend
        self._add(queue, "_messages", property(_get_store, _set_store))
        for name in (
            "approximate_number_of_messages",
            "approximate_number_of_messages_not_visible",
            "approximate_number_of_messages_delayed",
        ):
            self._replace(queue, name, _make_count(name, queue.__dict__[name]))
        self._replace(queue, "delete_message", _make_delete(queue.delete_message))
        self._replace(queue, "wait_for_messages", _make_wait(queue.wait_for_messages))
        self._replace(backend, "receive_message", _make_receive(backend.receive_message))
        self._replace(
            backend,
            "change_message_visibility",
            _make_change_visibility(backend.change_message_visibility),
        )
        self._replace(sqs_models, "generate_receipt_handle", _receipt_handle)
        self._replace(
            sqs_models,
            "camelcase_to_underscores",
            functools.lru_cache(maxsize=1024)(sqs_models.__dict__["camelcase_to_underscores"]),
        )
        self._install_request_caches()

    def _install_request_caches(self) -> None:
        """moto's server lists its own package directory (``os.listdir`` and an
        ``isdir`` per module) to route every request, and inspects the response class's
        members to dispatch it; both answers never change within a process."""
        from moto import backends
        from moto.core import responses

        modules = tuple(backends.list_of_moto_modules())
        self._replace(backends, "list_of_moto_modules", lambda: modules)
        self._replace(
            responses,
            "method_names_from_class",
            functools.lru_cache(maxsize=1024)(responses.__dict__["method_names_from_class"]),
        )

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
            payload, errored = self.invoker.invoke_payload(fn.function_arn, body)
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

    @staticmethod
    def _detach_from_table(backend: Any, mapping: Any) -> None:
        """moto would hand stream records to its own Lambda (Docker); the runtime's stream
        poller (billing.local.streams) delivers them instead."""
        from moto.dynamodb.models import dynamodb_backends

        tables = dynamodb_backends[backend.account_id][backend.region_name].tables
        for table in tables.values():
            attached = getattr(table, "lambda_event_source_mappings", {})
            for key, value in list(attached.items()):
                if value is mapping:
                    del attached[key]
                    LOG.debug("detached %s from table %s", mapping.uuid, table.name)

    def _make_create_mapping(self, original: Callable[..., Any]) -> Callable[..., Any]:
        def create_event_source_mapping(backend: Any, spec: dict[str, Any]) -> Any:
            mapping = original(backend, spec)
            MotoPatches._detach_from_queue(backend, mapping)
            MotoPatches._detach_from_table(backend, mapping)
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


# -- SQS -------------------------------------------------------------------------------------

_READY, _IN_FLIGHT, _DELAYED = 0, 1, 2

#: Receipt handles of deleted messages remembered (a repeated delete succeeds, as on AWS).
DELETED_HANDLES_KEPT = 100_000


def _now_ms() -> float:
    from moto.core.utils import unix_time_millis

    return float(unix_time_millis())


def _available(message: Any, now: float) -> bool:
    """moto's ``message.visible and not message.delayed``, for one clock reading."""
    return bool(now > message.visible_at and now >= message.delayed_until)


class MessageStore:
    """The messages of one queue, in place of moto's ``Queue._messages`` list.

    It iterates, appends and removes like the list (moto's FIFO code and whatever reads the
    queue's messages keep working) and indexes them for the standard-queue paths:

    * ``_ready``: a heap of the messages visible now, by arrival (the oldest first);
    * ``_waiting``: a heap of in-flight and delayed messages by the time they become
      visible; each receive first moves the due ones to ``_ready``. Entries are checked
      lazily against the message itself (a changed visibility timeout pushes a new entry;
      an entry whose generation is not the message's current one is skipped);
    * ``_handles``: every receipt handle a live message was given, to the message.

    A receive of k messages from a queue of N costs O((k + due) log N), a delete or a
    visibility change by receipt handle O(log N), the counts O(due log N).
    """

    def __init__(self, messages: Iterable[Any] = ()) -> None:
        self._lock = threading.RLock()
        self._reset()
        for message in messages:
            self.append(message)

    def _reset(self) -> None:
        self._live: dict[str, Any] = {}
        self._seq: dict[str, int] = {}
        self._state: dict[str, tuple[int, int]] = {}
        self._ready: list[tuple[int, int, str]] = []
        self._waiting: list[tuple[float, int, int, str]] = []
        self._handles: dict[str, str] = {}
        self._deleted: OrderedDict[str, None] = OrderedDict()
        self._counts = [0, 0, 0]
        self._next = 0
        self._generation = 0

    # -- the list moto knows ---------------------------------------------------------------

    def append(self, message: Any) -> None:
        with self._lock:
            if message.id in self._live:
                self._forget(message.id)
            self._next += 1
            self._live[message.id] = message
            self._seq[message.id] = self._next
            for handle in message.all_receipt_handles:
                if handle:
                    self._handles[handle] = message.id
            self._place(message, _now_ms())

    def remove(self, message: Any) -> None:
        with self._lock:
            message_id = message.id
            if self._live.get(message_id) is not message:
                raise ValueError("message not in queue")
            self._forget(message_id)

    def clear(self) -> None:
        with self._lock:
            self._reset()

    def __iter__(self) -> Iterator[Any]:
        with self._lock:
            return iter(list(self._live.values()))

    def __len__(self) -> int:
        return len(self._live)

    def __contains__(self, message: object) -> bool:
        return self._live.get(getattr(message, "id", None)) is message  # type: ignore[arg-type]

    def __getstate__(self) -> dict[str, Any]:
        return {"messages": list(self)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["messages"])  # type: ignore[misc]

    # -- the index -------------------------------------------------------------------------

    def _forget(self, message_id: str) -> None:
        message = self._live.pop(message_id)
        del self._seq[message_id]
        state, _ = self._state.pop(message_id)
        self._counts[state] -= 1
        for handle in message.all_receipt_handles:
            if handle and self._handles.get(handle) == message_id:
                del self._handles[handle]

    def _place(self, message: Any, now: float) -> None:
        """(Re)files a live message as ready, in flight or delayed."""
        message_id = message.id
        previous = self._state.get(message_id)
        if previous is not None:
            self._counts[previous[0]] -= 1
        self._generation += 1
        generation, seq = self._generation, self._seq[message_id]
        if _available(message, now):
            state = _READY
            heapq.heappush(self._ready, (seq, generation, message_id))
        else:
            state = _DELAYED if now < message.delayed_until else _IN_FLIGHT
            due = max(float(message.visible_at), float(message.delayed_until))
            heapq.heappush(self._waiting, (due, seq, generation, message_id))
        self._state[message_id] = (state, generation)
        self._counts[state] += 1

    def _current(self, message_id: str, generation: int) -> Any:
        state = self._state.get(message_id)
        return self._live[message_id] if state and state[1] == generation else None

    def _settle(self, now: float) -> None:
        waiting = self._waiting
        while waiting and waiting[0][0] < now:
            _, _, generation, message_id = heapq.heappop(waiting)
            message = self._current(message_id, generation)
            if message is not None:
                self._place(message, now)

    def _pop_ready(self, now: float) -> Any:
        while self._ready:
            _, generation, message_id = heapq.heappop(self._ready)
            message = self._current(message_id, generation)
            if message is None:
                continue
            if _available(message, now):
                return message
            self._place(message, now)
        return None

    def counts(self) -> tuple[int, int, int]:
        """(visible, in flight, delayed) now."""
        with self._lock:
            self._settle(_now_ms())
            ready, in_flight, delayed = self._counts
            return ready, in_flight, delayed

    def has_visible(self) -> bool:
        return self.counts()[0] > 0

    def receive(
        self,
        count: int,
        visibility_timeout: int,
        *,
        max_receive_count: int | None,
        retention_seconds: float,
    ) -> tuple[list[Any], list[Any]]:
        """Receives up to ``count`` visible messages, oldest first: each is marked received
        (receive count, new receipt handle, invisible for ``visibility_timeout``). Messages
        already received ``max_receive_count`` times are taken off the queue instead and
        returned second, for the dead-letter queue; messages past the retention period are
        dropped."""
        received: list[Any] = []
        redriven: list[Any] = []
        with self._lock:
            now = _now_ms()
            self._settle(now)
            while len(received) < count:
                message = self._pop_ready(now)
                if message is None:
                    break
                if (
                    max_receive_count is not None
                    and message.approximate_receive_count >= max_receive_count
                ):
                    self._forget(message.id)
                    redriven.append(message)
                    continue
                if message.sent_timestamp / 1000 + retention_seconds <= now / 1000:
                    self._forget(message.id)
                    continue
                message.mark_received(visibility_timeout=visibility_timeout)
                self._handles[message.receipt_handle] = message.id
                received.append(message)
            # Filed again only now: with a visibility timeout of 0 a message stays visible
            # and must not come twice in one receive.
            for message in received:
                self._place(message, now)
        return received, redriven

    def by_handle(self, receipt_handle: str) -> Any:
        message_id = self._handles.get(receipt_handle)
        return None if message_id is None else self._live.get(message_id)

    def delete(self, receipt_handle: str) -> bool:
        """Deletes the message with this (current or earlier) receipt handle; False if the
        handle is unknown. A handle of a recently deleted message is accepted again."""
        with self._lock:
            if receipt_handle in self._deleted:
                return True
            message = self.by_handle(receipt_handle)
            if message is None:
                return False
            self._forget(message.id)
            for handle in message.all_receipt_handles:
                if handle:
                    self._deleted[handle] = None
            while len(self._deleted) > DELETED_HANDLES_KEPT:
                self._deleted.popitem(last=False)
            return True

    def change_visibility(self, receipt_handle: str, apply: Callable[[Any], None]) -> bool:
        """Calls ``apply`` on the message with this receipt handle (it changes the message's
        visibility) and refiles it; False if the handle is unknown."""
        with self._lock:
            message = self.by_handle(receipt_handle)
            if message is None:
                return False
            apply(message)
            self._place(message, _now_ms())
            return True


def _get_store(queue: Any) -> MessageStore:
    store = queue.__dict__.get("_messages")
    if not isinstance(store, MessageStore):
        store = MessageStore(store or [])
        queue.__dict__["_messages"] = store
    return store


def _set_store(queue: Any, messages: Iterable[Any]) -> None:
    queue.__dict__["_messages"] = (
        messages if isinstance(messages, MessageStore) else MessageStore(messages)
    )


def _receipt_handle() -> str:
    """A receipt handle as long as moto's, without 185 calls to ``random.choice``."""
    return os.urandom(93).hex()[:185]


def _make_count(name: str, original: Any) -> property:
    position = {
        "approximate_number_of_messages": 0,
        "approximate_number_of_messages_not_visible": 1,
        "approximate_number_of_messages_delayed": 2,
    }[name]

    def count(queue: Any) -> int:
        if queue.fifo_queue:
            return int(original.fget(queue))
        return _get_store(queue).counts()[position]

    return property(count)


def _make_delete(original: Callable[..., Any]) -> Callable[..., Any]:
    def delete_message(queue: Any, receipt_handle: str) -> None:
        if queue.fifo_queue:
            original(queue, receipt_handle)
            return
        from moto.sqs.exceptions import ReceiptHandleIsInvalid

        if not _get_store(queue).delete(receipt_handle):
            raise ReceiptHandleIsInvalid()

    return delete_message


def _make_wait(original: Callable[..., Any]) -> Callable[..., Any]:
    def wait_for_messages(queue: Any, timeout: int) -> None:
        if queue.fifo_queue:
            original(queue, timeout)
            return
        store = _get_store(queue)
        with queue._messages_lock:
            queue._messages_lock.wait_for(store.has_visible, timeout=timeout)

    return wait_for_messages


def _make_receive(original: Callable[..., Any]) -> Callable[..., Any]:
    def receive_message(
        backend: Any,
        queue_name: str,
        count: int,
        wait_seconds_timeout: int,
        visibility_timeout: int,
        message_attribute_names: list[str] | None = None,
    ) -> list[Any]:
        queue = backend.get_queue(queue_name)
        if queue.fifo_queue:
            return list(
                original(
                    backend,
                    queue_name,
                    count,
                    wait_seconds_timeout,
                    visibility_timeout,
                    message_attribute_names,
                )
            )
        from moto.sqs.models import _filter_message_attributes

        store = _get_store(queue)
        dead_letter_queue = queue.dead_letter_queue
        max_receive_count = None
        if dead_letter_queue is not None and queue.redrive_policy:
            max_receive_count = int(queue.redrive_policy["maxReceiveCount"])
        deadline = time.monotonic() + (wait_seconds_timeout or 0)
        while True:
            received, redriven = store.receive(
                count,
                visibility_timeout,
                max_receive_count=max_receive_count,
                retention_seconds=float(queue.message_retention_period),
            )
            for message in redriven:
                dead_letter_queue.add_message(message)
            remaining = deadline - time.monotonic()
            if received or remaining <= 0:
                break
            # A send wakes the wait early. As in moto, a long poll that waited until its
            # end returns empty rather than look once more.
            queue.wait_for_messages(min(1.0, remaining))
            if time.monotonic() >= deadline:
                break
        result = []
        for message in received:
            # A copy, as moto does: filtering the attributes must not change the message.
            shown = copy.copy(message)
            _filter_message_attributes(shown, message_attribute_names or [])
            result.append(shown)
        return result

    return receive_message


def _make_change_visibility(original: Callable[..., Any]) -> Callable[..., Any]:
    def change_message_visibility(
        backend: Any, queue_name: str, receipt_handle: str, visibility_timeout: int
    ) -> None:
        queue = backend.get_queue(queue_name)
        if queue.fifo_queue:
            original(backend, queue_name, receipt_handle, visibility_timeout)
            return
        from moto.sqs.exceptions import InvalidParameterValue, ReceiptHandleIsInvalid

        def apply(message: Any) -> None:
            limit = _now_ms() + int(visibility_timeout) * 1000 - message.sent_timestamp
            if limit > 43200 * 1000:
                raise InvalidParameterValue(
                    f"Value {visibility_timeout} for parameter VisibilityTimeout is invalid. "
                    "Reason: Total VisibilityTimeout for the message is beyond the limit "
                    "[43200 seconds]"
                )
            message.change_visibility(visibility_timeout)

        if not _get_store(queue).change_visibility(receipt_handle, apply):
            raise ReceiptHandleIsInvalid

    return change_message_visibility
