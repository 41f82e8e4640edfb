"""Two costs of moto that the month close pays locally and AWS does not.

* **DynamoDB Query reads the whole table.** moto 5.2 answers a Query on a table's key by
  comparing the hash key of every item of the table, then sorting the matches: its
  latency grows with the table (about 90 ms per Query at 4,000 items, seconds at 100k),
  while the close makes a few Queries per storage shard of every account. A Query on the
  table's own key is narrowed to the queried partition (moto keeps items by hash key):
  same items, same order, same pages. Within such a Query each item's size (for the
  1 MB page) is computed once rather than twice, and the results are not deep-copied
  before the response is built from them.
* **Step Functions builds a new boto3 client for every task.** moto's interpreter calls
  ``boto3.client(...)`` (service model loading, a new connection pool and connection)
  for each Lambda task it runs. One client per service, region and endpoint is kept
  instead (botocore clients are thread safe), with the settings moto gives them (no
  retries, no client-side validation, moto's timeouts) and a pool for concurrent Maps.

Two more that every request pays, locally only:

* **DynamoDB condition expressions are lexed and parsed on every request** (twice for a
  PutItem: once to validate it, once to evaluate it), although a handler sends the same
  few expressions again and again (a late fact's, a live item's). The parse is kept
  per expression, attribute names and the names and types of the attribute values; a
  request with the same ones gets a fresh copy of the parsed tree with its own values.
* **moto draws every request id letter by letter** from its seeded random generator (52
  letters per response, a few microseconds each): drawn from ``os.urandom`` at once.
* **moto serializes every DynamoDB attribute value through its generic response
  serializer**: for each value, each of the ten members of the ``AttributeValue`` shape
  is looked up under several aliases, about 30 lookups per attribute, ~1 ms per fact
  item read (most of the live view's and the close's CPU locally). An attribute value is
  already in its wire form (``{"S": ...}``, ``{"M": {...}}``) when it reaches the
  serializer: it is written as such (binary values base64-encoded, as the serializer
  does); anything not of that form is left to moto's serializer.

* **moto sizes every item it returns value by value** (the 1 MB page of a Query),
  building a new ``DynamoType`` for every member of every map on the way, about 0.5 ms
  per fact item: the same sum is computed over the values as they are.
* **moto sizes a new item again at each of its attributes** (its 400 KB check sums
  every attribute already set each time one is added: quadratic in the attributes, about
  two thirds of a fact's PutItem): an item built from a request's attributes is sized
  once, with the same sum and limit (the sizes are not negative, so the check of the
  whole is the check of every prefix).
* **moto looks every member of a response up under all its aliases, every time**: for
  each member of each structure it serializes (a received message's ten members, a
  table's description...) its attribute picker asks six alias providers, which look at
  the shape, its parent and the object's class, for the names to try on the object.
  Those names depend on nothing else: they are worked out once per object class, shape,
  parent shape and member (pickers with response transformers, which also look at the
  member's path, or with alias providers of their own are left to moto).
* **botocore parses every attribute value of a response member by member** (the
  ``AttributeValue`` shape's ten members looked up for each value), the client-side twin
  of the serializer's cost: a value of the wire form (one member set) is converted
  directly, binary values decoded by the parser's own blob parser; any other value is
  left to botocore.
* **moto parses every attribute value of a request member by member** (its request
  parser walks the same ten members for each value of each item a handler writes: a
  batch of 25 facts is about 250 values): a value of the wire form is taken as it is, as
  moto's parser would leave it (binary values through moto's blob parser); any other
  value is left to moto's parser.

``install()`` / ``uninstall()`` are idempotent and process wide, like the runtime's other
patches (``billing.local.patches``).
"""

from __future__ import annotations

import contextlib
import importlib
import pkgutil
import threading
from collections.abc import Callable
from typing import Any

_partition = threading.local()
_lock = threading.Lock()
_clients: dict[tuple[str, str, str], Any] = {}
_saved: list[tuple[Any, str, Any]] = []
_client_only: list[bool] = [False]  # what is installed is install_client's alone


def install() -> None:
    if _saved and not _client_only[0]:
        return
    uninstall()
    _index_queries()
    _reuse_task_clients()
    _cache_condition_parses()
    _fast_request_ids()
    _serialize_attribute_values()
    _size_attribute_values()
    _size_items_once()
    _remember_attribute_names()
    _parse_attribute_values()
    _parse_request_attribute_values()


def install_client() -> None:
    """The client side's fast path alone (botocore's parsing of attribute values), for a
    process that makes requests and answers none: a function worker, whose reads of facts
    would otherwise be parsed member by member."""
    if _saved:
        return
    _parse_attribute_values()
    _client_only[0] = True


def uninstall() -> None:
    _client_only[0] = False
    while _saved:
        owner, name, original = _saved.pop()
        if original is None:  # an instance attribute over the class's method
            with contextlib.suppress(AttributeError):
                delattr(owner, name)
        else:
            setattr(owner, name, original)
    with _lock:
        _clients.clear()
        _parses.clear()


def _replace(owner: Any, name: str, replacement: Any) -> None:
    _saved.append((owner, name, getattr(owner, name)))
    setattr(owner, name, replacement)


class _QueryCopy:
    """Stands for the ``copy`` module in moto's table module: inside a Query narrowed to
    its partition, the results are not deep-copied (moto copies every matching item; the
    response is built from them at once and nothing changes them: in-process DynamoDB
    calls are answered one at a time, ``billing.local.clients``)."""

    def __init__(self, module: Any) -> None:
        self._module = module

    def __getattr__(self, name: str) -> Any:
        return getattr(self._module, name)

    def deepcopy(self, value: Any, memo: Any = None) -> Any:
        if getattr(_partition, "value", None) is not None and isinstance(value, list):
            return list(value)
        return self._module.deepcopy(value, memo)


def _index_queries() -> None:
    import copy

    from moto.dynamodb.models import table as table_module
    from moto.dynamodb.models.dynamo_type import Item
    from moto.dynamodb.models.table import Table

    full_table = Table.all_items
    query = Table.query
    item_size = Item.size

    def all_items(self: Any) -> Any:
        current = getattr(_partition, "value", None)
        if current is not None and current[0] is self:
            return list(current[1].values())
        return full_table(self)

    def size(self: Any) -> int:
        # moto sizes each result twice (the 1 MB page limit): once per Query
        sizes: dict[int, int] | None = getattr(_partition, "sizes", None)
        if sizes is None:
            return int(item_size(self))
        known = sizes.get(id(self))
        if known is None:
            known = sizes[id(self)] = int(item_size(self))
        return known

    def query_partition(self: Any, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
        # Table.query(hash_key, range_comparison, range_objs, limit, exclusive_start_key,
        #             scan_index_forward, projection_expressions, index_name=None, ...)
        index_name = kwargs.get("index_name", args[6] if len(args) > 6 else None)
        if index_name or hash_key is None or not self.range_key_attr:
            return query(self, hash_key, *args, **kwargs)
        _partition.value = (self, self.items.get(hash_key, {}))
        _partition.sizes = {}
        try:
            return query(self, hash_key, *args, **kwargs)
        finally:
            _partition.value = None
            _partition.sizes = None

    _replace(Table, "all_items", all_items)
    _replace(Table, "query", query_partition)
    _replace(Item, "size", size)
    _replace(table_module, "copy", _QueryCopy(copy))


class _Slot:
    """Stands for an expression attribute value in a cached parse."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name


Builder = Callable[[dict[str, Any]], Any]
_parses: dict[tuple[Any, ...], tuple[Builder, list[str], list[str]]] = {}
_MAX_PARSES = 4096


def _parse_key(parser: Any) -> tuple[Any, ...] | None:
    names = parser.expression_attribute_names or {}
    values = parser.expression_attribute_values or {}
    try:
        types = tuple(sorted((name, _value_type(value)) for name, value in values.items()))
        return (parser.condition_expression, tuple(sorted(names.items())), types)
    except (AttributeError, TypeError, ValueError):
        return None  # not the shapes moto's own parse expects: leave it to moto


def _value_type(value: Any) -> str:
    (kind,) = value.keys()
    return str(kind)


def _builder(node: Any, value_class: Any) -> Builder | None:
    """How to build a copy of a cached tree with a request's values in place of its slots,
    worked out once per tree; ``None`` for a part without slots, which the copies share
    (evaluating a tree does not change it)."""
    if isinstance(node, value_class) and isinstance(node.value, _Slot):
        name = node.value.name
        return lambda values: value_class(values[name])
    if isinstance(node, list | tuple):
        parts = [(n, _builder(n, value_class)) for n in node]
        if all(build is None for _, build in parts):
            return None
        kind = type(node)

        def build_sequence(values: dict[str, Any]) -> Any:
            items = [n if build is None else build(values) for n, build in parts]
            return items if kind is list else tuple(items)

        return build_sequence
    fields = getattr(node, "__dict__", None)
    if not fields or not hasattr(node, "expr"):
        return None
    dynamic = {k: b for k, v in fields.items() if (b := _builder(v, value_class)) is not None}
    if not dynamic:
        return None
    cls, fixed = type(node), dict(fields)

    def build_node(values: dict[str, Any]) -> Any:
        copy = object.__new__(cls)
        copy.__dict__.update(fixed)
        for key, build in dynamic.items():
            copy.__dict__[key] = build(values)
        return copy

    return build_node


def _cache_condition_parses() -> None:
    from moto.dynamodb.comparisons import AttributeValue, ConditionExpressionParser

    parse = ConditionExpressionParser.parse

    def cached_parse(self: Any) -> Any:
        key = _parse_key(self) if self.condition_expression else None
        if key is None:
            return parse(self)
        hit = _parses.get(key)
        if hit is None:
            result = parse(self)  # moto's answer, errors included, for the first one
            template = type(self)(
                self.condition_expression,
                self.expression_attribute_names,
                {
                    name: {_value_type(value): _Slot(name)}
                    for name, value in (self.expression_attribute_values or {}).items()
                },
            )
            try:
                tree = parse(template)
            except Exception:  # a parse that needs the values themselves: not cached
                return result
            build = _builder(tree, AttributeValue)
            with _lock:
                if len(_parses) >= _MAX_PARSES:
                    _parses.clear()
                _parses[key] = (
                    (lambda values: tree) if build is None else build,
                    template.expr_attr_names_found,
                    template.expr_attr_values_found,
                )
            return result
        build, names_found, values_found = hit
        self.expr_attr_names_found.extend(names_found)
        self.expr_attr_values_found.extend(values_found)
        return build(self.expression_attribute_values or {})

    _replace(ConditionExpressionParser, "parse", cached_parse)


def _fast_request_ids() -> None:
    import os
    import string

    from moto.moto_api._internal import mock_random

    letters = string.ascii_letters
    with_digits = letters + string.digits

    def get_random_string(
        length: int = 20, include_digits: bool = True, lower_case: bool = False
    ) -> str:
        pool = with_digits if include_digits else letters
        size = len(pool)
        text = "".join([pool[b % size] for b in os.urandom(length)])
        return text.lower() if lower_case else text

    _saved.append((mock_random, "get_random_string", None))
    mock_random.get_random_string = get_random_string  # type: ignore[method-assign]


def _reuse_task_clients() -> None:
    from moto.stepfunctions.parser.asl import component
    from moto.stepfunctions.parser.asl.utils import boto_client

    original: Callable[..., Any] = boto_client.boto_client_for

    def boto_client_for(region: str, service: str, state_credentials: Any = None) -> Any:
        from moto.core.models import botocore_stubber

        if botocore_stubber.enabled:  # in-process mock_aws: moto's own way
            return original(region, service, state_credentials)
        key = (region, service, _endpoint())
        with _lock:
            if key not in _clients:
                _clients[key] = _task_client(region, service, key[2])
            return _clients[key]

    _replace(boto_client, "boto_client_for", boto_client_for)
    # the interpreter's modules imported the function by name
    for info in pkgutil.walk_packages(component.__path__, f"{component.__name__}."):
        module = importlib.import_module(info.name)
        if getattr(module, "boto_client_for", None) is original:
            _replace(module, "boto_client_for", boto_client_for)


def _endpoint() -> str:
    from moto.settings import moto_server_port

    return f"http://127.0.0.1:{moto_server_port()}"


def _task_client(region: str, service: str, endpoint: str) -> Any:
    """What moto's ``boto_client_for`` builds, once, with a pool for concurrent Map items."""
    import boto3
    from botocore.config import Config
    from moto.stepfunctions.parser.asl.component.common.timeouts.timeout import (
        TimeoutSeconds,
    )

    return boto3.session.Session().client(
        service,
        region_name=region,
        endpoint_url=endpoint,
        aws_access_key_id="ak",
        aws_secret_access_key="sk",  # noqa: S106 - moto's fake credentials
        config=Config(
            parameter_validation=False,
            retries={"max_attempts": 0, "total_max_attempts": 1},
            connect_timeout=TimeoutSeconds.DEFAULT_TIMEOUT_SECONDS,
            read_timeout=TimeoutSeconds.DEFAULT_TIMEOUT_SECONDS,
            max_pool_connections=64,
        ),
    )


_ATTRIBUTE_SERVICES = frozenset({"dynamodb", "dynamodbstreams"})
_SCALARS = frozenset({"S", "N"})
_FLAGS = frozenset({"NULL", "BOOL"})
_STRING_SETS = frozenset({"SS", "NS"})


def _base64(value: Any) -> str | None:
    import base64

    if isinstance(value, str):
        value = value.encode("utf-8")
    if not isinstance(value, bytes | bytearray):
        return None
    return base64.b64encode(value).strip().decode("utf-8")


def attribute_value(value: Any) -> dict[str, Any] | None:
    """The wire form moto's JSON serializer gives a DynamoDB ``AttributeValue`` (as
    ``dynamo_to_dict`` leaves it: binary values as bytes), or ``None`` when ``value`` is not
    of the form this handles (moto's serializer then does it)."""
    if not isinstance(value, dict):
        return None
    out: dict[str, Any] = {}
    for kind, v in value.items():
        if v is None:
            continue  # the serializer leaves out members without a value
        if kind in _SCALARS:
            if not isinstance(v, str):
                return None
            out[kind] = v
        elif kind in _FLAGS:
            if not isinstance(v, bool):
                return None
            out[kind] = v
        elif kind == "M":
            if not isinstance(v, dict):
                return None
            members: dict[str, Any] = {}
            for name, member in v.items():
                if member is None:
                    continue
                wire = attribute_value(member)
                if wire is None:
                    return None
                members[name] = wire
            out[kind] = members
        elif kind == "L":
            if not isinstance(v, list):
                return None
            elements = []
            for element in v:
                wire = attribute_value(element)
                if wire is None:
                    return None
                elements.append(wire)
            out[kind] = elements
        elif kind in _STRING_SETS:
            if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
                return None
            out[kind] = list(v)
        elif kind == "B":
            encoded = _base64(v)
            if encoded is None:
                return None
            out[kind] = encoded
        elif kind == "BS":
            if not isinstance(v, list):
                return None
            blobs = [_base64(x) for x in v]
            if any(b is None for b in blobs):
                return None
            out[kind] = blobs
        else:
            return None
    return out


def _serialize_attribute_values() -> None:
    from moto.core.serialize import BaseJSONSerializer

    structure = BaseJSONSerializer._serialize_type_structure

    def serialize_structure(self: Any, serialized: Any, value: Any, shape: Any, key: str) -> None:
        if (
            key
            and shape.name == "AttributeValue"
            and self.operation_model.service_model.service_name in _ATTRIBUTE_SERVICES
        ):
            wire = attribute_value(value)
            if wire is not None:
                self._default_serialize(serialized, wire, shape, key)
                return
        structure(self, serialized, value, shape, key)

    _replace(BaseJSONSerializer, "_serialize_type_structure", serialize_structure)


def _bytesize(value: Any) -> int:
    return len(value if isinstance(value, bytes) else value.encode("utf-8"))


def _node_size(node: Any) -> int:
    """``DynamoType(node).size()`` of moto 5.2 for a ``DynamoType`` or a raw
    ``{type: value}`` (a member of a map or a list)."""
    if isinstance(node, dict):
        (kind, value), *_ = node.items()
        return value_size(kind, value)
    return value_size(node.type, node.value)


def value_size(kind: str, value: Any) -> int:
    """What ``DynamoType.size`` of moto 5.2 gives a value of type ``kind``, without
    building a ``DynamoType`` for each member of a map (the same branches in the same
    order)."""
    if kind == "N":
        return len(str(value))
    if kind in ("SS", "NS", "BS"):
        sub = kind[0]
        return sum(value_size(sub, v) for v in value)
    if kind == "L":
        return sum(_node_size(v) for v in value)
    if kind == "M":
        return sum(_bytesize(k) + _node_size(v) for k, v in value.items())
    if isinstance(value, bool):
        return 1
    return _bytesize(value)


def _size_attribute_values() -> None:
    from moto.dynamodb.models.dynamo_type import DynamoType

    def size(self: Any) -> int:
        return value_size(self.type, self.value)

    _replace(DynamoType, "size", size)


def _size_items_once() -> None:
    from moto.dynamodb.exceptions import ItemSizeTooLarge
    from moto.dynamodb.models.dynamo_type import DynamoType, Item, LimitedSizeDict

    def item_init(self: Any, hash_key: Any, range_key: Any, attrs: dict[str, Any]) -> None:
        self.hash_key = hash_key
        self.range_key = range_key
        values = {key: DynamoType(value) for key, value in attrs.items()}
        if sum(_bytesize(key) + value.size() for key, value in values.items()) > ITEM_LIMIT:
            raise ItemSizeTooLarge
        self.attrs = LimitedSizeDict(values)  # dict.update: no per-attribute check

    _replace(Item, "__init__", item_init)


def _remember_attribute_names() -> None:
    from moto.core.serialize import (
        DEFAULT_ALIAS_PROVIDERS,
        AttributePicker,
        AttributePickerContext,
        ResponseSerializer,
    )
    from moto.core.utils import get_value as value_of

    original = ResponseSerializer.get_value
    names: dict[tuple[Any, ...], tuple[str, ...]] = {}
    missing = object()

    def get_value(self: Any, value: Any, key: str, shape: Any) -> Any:
        picker = self._value_picker
        if (
            not isinstance(picker, AttributePicker)
            or picker.response_transformers
            or picker.alias_providers is not DEFAULT_ALIAS_PROVIDERS
        ):
            return original(self, value, key, shape)
        # the shapes are held by the key, so their ids are never reused while cached
        known = (type(picker), type(value), shape, getattr(shape, "parent", None), key)
        tried = names.get(known)
        if tried is None:
            context = AttributePickerContext(
                obj=value,
                key=key,
                shape=shape,
                operation_model=self.operation_model,
                service_model=self.operation_model.service_model,
                key_path=".".join(self.path),
            )
            tried = names[known] = tuple(picker.get_possible_keys(context))
        for name in tried:
            found = value_of(value, name, missing)
            if found is not missing:
                return found
        return None

    _replace(ResponseSerializer, "get_value", get_value)


#: moto 5.2's item size limit (``LimitedSizeDict``: between DynamoDB's measured 409 and
#: 410 KB).
ITEM_LIMIT = 405_000

_ATTRIBUTE_MEMBERS = frozenset({"S", "N", "B", "SS", "NS", "BS", "M", "L", "NULL", "BOOL"})
_STRINGS = frozenset({"S", "N", "NULL", "BOOL"})


class _NotWireForm(Exception):
    pass


def parsed_attribute_value(value: Any, blob: Callable[[Any], Any]) -> dict[str, Any]:
    """What botocore's JSON parser gives a DynamoDB ``AttributeValue`` in the wire form
    (one member set, as DynamoDB and moto send it); ``_NotWireForm`` for anything else."""
    if type(value) is not dict:
        raise _NotWireForm
    kind = None
    for key, member in value.items():
        if member is None:
            continue
        if kind is not None or key not in _ATTRIBUTE_MEMBERS:
            raise _NotWireForm  # several members, or one botocore does not know
        kind = key
    if kind is None:
        raise _NotWireForm
    member = value[kind]
    if kind in _STRINGS:
        return {kind: member}
    if kind == "B":
        return {kind: blob(member)}
    if kind == "M":
        if type(member) is not dict:
            raise _NotWireForm
        return {
            kind: {
                k: None if v is None else parsed_attribute_value(v, blob) for k, v in member.items()
            }
        }
    if type(member) is not list:
        raise _NotWireForm
    if kind == "L":
        return {kind: [None if v is None else parsed_attribute_value(v, blob) for v in member]}
    if kind == "BS":
        return {kind: [None if v is None else blob(v) for v in member]}
    return {kind: list(member)}  # SS, NS


def _parsing_wire_form(
    structure: Callable[[Any, Any, Any], Any], *, typed: bool
) -> Callable[[Any, Any, Any], Any]:
    """A parser's structure handler that takes an ``AttributeValue`` in its wire form as
    ``parsed_attribute_value`` gives it (binary values through the parser's own blob
    parser), and leaves every other structure and value to ``structure``. ``typed``: the
    parser reads responses, where an error document (``__type``) is never a value."""

    def parse(self: Any, shape: Any, value: Any) -> Any:
        if (
            shape.name == "AttributeValue"
            and value is not None
            and not (typed and "__type" in value)
            and shape.members.keys() == _ATTRIBUTE_MEMBERS  # the members this knows
        ):
            try:
                return parsed_attribute_value(value, self._blob_parser)
            except _NotWireForm:
                pass
        return structure(self, shape, value)

    return parse


def _parse_attribute_values() -> None:
    from botocore.parsers import BaseJSONParser

    handle = _parsing_wire_form(BaseJSONParser._handle_structure, typed=True)
    _replace(BaseJSONParser, "_handle_structure", handle)


def _parse_request_attribute_values() -> None:
    from moto.core.parse import BaseJSONParser

    parse = _parsing_wire_form(BaseJSONParser._parse_structure, typed=False)
    _replace(BaseJSONParser, "_parse_structure", parse)
