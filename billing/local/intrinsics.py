"""Resolution of CloudFormation intrinsic functions against a deployed stack.

moto's CloudFormation resolves intrinsics itself while it creates resources, but it drops
any value that refers to a resource type it does not implement (the reference resolves to
nothing and the property disappears). The local runtime re-resolves the parts of the
template it depends on (Lambda environment, state machine definitions, outputs) with the
physical ids it knows, including the resources it created itself in place of moto.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Mapping
from typing import Any

PARTITION = "aws"
URL_SUFFIX = "amazonaws.com"


class UnresolvableError(ValueError):
    """A template value refers to something the resolver cannot work out."""


class _NoValue:
    """Marker for ``AWS::NoValue``: the enclosing property is dropped."""

    def __repr__(self) -> str:
        return "AWS::NoValue"


NO_VALUE = _NoValue()

GetAtt = Callable[[str, str], Any]

_SUB_PATTERN = re.compile(r"\$\{([^}]*)\}")


class Resolver:
    """Evaluates ``Ref``, ``Fn::GetAtt``, ``Fn::Join``, ``Fn::Sub`` and friends."""

    def __init__(
        self,
        *,
        region: str,
        account_id: str,
        stack_name: str,
        stack_id: str,
        physical_ids: Mapping[str, str],
        get_att: GetAtt,
        parameters: Mapping[str, Any] | None = None,
        conditions: Mapping[str, Any] | None = None,
        mappings: Mapping[str, Any] | None = None,
    ) -> None:
        self._pseudo: dict[str, Any] = {
            "AWS::Region": region,
            "AWS::AccountId": account_id,
            "AWS::StackName": stack_name,
            "AWS::StackId": stack_id,
            "AWS::Partition": PARTITION,
            "AWS::URLSuffix": URL_SUFFIX,
            "AWS::NoValue": NO_VALUE,
        }
        self._physical_ids = dict(physical_ids)
        self._get_att = get_att
        self._parameters = dict(parameters or {})
        self._condition_defs = dict(conditions or {})
        self._condition_values: dict[str, bool] = {}
        self._mappings = dict(mappings or {})

    def resolve(self, value: Any) -> Any:
        """Returns ``value`` with every intrinsic function evaluated."""
        if isinstance(value, list):
            items = [self.resolve(item) for item in value]
            return [item for item in items if item is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, arg),) = value.items()
            handler = self._FUNCTIONS.get(key)
            if handler is not None:
                return handler(self, arg)
        resolved = {key: self.resolve(item) for key, item in value.items()}
        return {key: item for key, item in resolved.items() if item is not NO_VALUE}

    def condition(self, name: str) -> bool:
        """Evaluates a named condition of the template."""
        if name not in self._condition_values:
            if name not in self._condition_defs:
                raise UnresolvableError(f"unknown condition {name!r}")
            self._condition_values[name] = bool(self.resolve(self._condition_defs[name]))
        return self._condition_values[name]

    def ref(self, name: str) -> Any:
        if name in self._pseudo:
            return self._pseudo[name]
        if name in self._parameters:
            return self._parameters[name]
        if name in self._physical_ids:
            return self._physical_ids[name]
        raise UnresolvableError(f"Ref to {name!r}: no such parameter or deployed resource")

    def _fn_ref(self, arg: Any) -> Any:
        return self.ref(str(self.resolve(arg)))

    def _fn_get_att(self, arg: Any) -> Any:
        if isinstance(arg, str):
            logical_id, _, attribute = arg.partition(".")
        else:
            logical_id, attribute = (str(self.resolve(part)) for part in arg)
        if logical_id not in self._physical_ids:
            raise UnresolvableError(f"GetAtt {logical_id}.{attribute}: resource not deployed")
        return self._get_att(logical_id, attribute)

    def _fn_join(self, arg: Any) -> str:
        delimiter, items = arg
        values = self.resolve(items)
        if not isinstance(values, list):
            raise UnresolvableError(f"Fn::Join over a non-list: {values!r}")
        return str(delimiter).join(_to_text(item) for item in values)

    def _fn_sub(self, arg: Any) -> str:
        if isinstance(arg, list):
            template, variables = arg[0], dict(arg[1])
        else:
            template, variables = arg, {}
        local = {name: self.resolve(item) for name, item in variables.items()}

        def substitute(match: re.Match[str]) -> str:
            expression = match.group(1)
            if expression.startswith("!"):
                return "${" + expression[1:] + "}"
            if expression in local:
                return _to_text(local[expression])
            if "." in expression and expression not in self._pseudo:
                logical_id, _, attribute = expression.partition(".")
                return _to_text(self._fn_get_att([logical_id, attribute]))
            return _to_text(self.ref(expression))

        return _SUB_PATTERN.sub(substitute, str(template))

    def _fn_select(self, arg: Any) -> Any:
        index, items = arg
        values = self.resolve(items)
        return values[int(self.resolve(index))]

    def _fn_split(self, arg: Any) -> list[str]:
        delimiter, source = arg
        return str(self.resolve(source)).split(str(delimiter))

    def _fn_if(self, arg: Any) -> Any:
        name, when_true, when_false = arg
        return self.resolve(when_true if self.condition(str(name)) else when_false)

    def _fn_equals(self, arg: Any) -> bool:
        left, right = (self.resolve(item) for item in arg)
        return bool(left == right)

    def _fn_not(self, arg: Any) -> bool:
        return not self._truth(arg[0])

    def _fn_and(self, arg: Any) -> bool:
        return all(self._truth(item) for item in arg)

    def _fn_or(self, arg: Any) -> bool:
        return any(self._truth(item) for item in arg)

    def _fn_condition(self, arg: Any) -> bool:
        return self.condition(str(arg))

    def _truth(self, item: Any) -> bool:
        value = self.resolve(item)
        if isinstance(value, str):
            return value.lower() == "true"
        return bool(value)

    def _fn_find_in_map(self, arg: Any) -> Any:
        map_name, top_key, second_key = (self.resolve(item) for item in arg[:3])
        try:
            return self._mappings[map_name][top_key][second_key]
        except KeyError as error:
            raise UnresolvableError(f"Fn::FindInMap {arg!r}: no such entry") from error

    def _fn_base64(self, arg: Any) -> str:
        return base64.b64encode(_to_text(self.resolve(arg)).encode()).decode()

    def _fn_get_azs(self, arg: Any) -> list[str]:
        region = self.resolve(arg) or self._pseudo["AWS::Region"]
        return [f"{region}{zone}" for zone in "abc"]

    def _fn_to_json_string(self, arg: Any) -> str:
        return json.dumps(self.resolve(arg), separators=(",", ":"))

    def _fn_unsupported(self, arg: Any) -> Any:
        raise UnresolvableError(f"unsupported intrinsic function in {arg!r}")

    _FUNCTIONS: dict[str, Callable[[Resolver, Any], Any]] = {
        "Ref": _fn_ref,
        "Fn::GetAtt": _fn_get_att,
        "Fn::Join": _fn_join,
        "Fn::Sub": _fn_sub,
        "Fn::Select": _fn_select,
        "Fn::Split": _fn_split,
        "Fn::If": _fn_if,
        "Fn::Equals": _fn_equals,
        "Fn::Not": _fn_not,
        "Fn::And": _fn_and,
        "Fn::Or": _fn_or,
        "Condition": _fn_condition,
        "Fn::FindInMap": _fn_find_in_map,
        "Fn::Base64": _fn_base64,
        "Fn::GetAZs": _fn_get_azs,
        "Fn::ToJsonString": _fn_to_json_string,
        "Fn::ImportValue": _fn_unsupported,
        "Fn::Cidr": _fn_unsupported,
        "Fn::Length": _fn_unsupported,
    }


def _to_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    return str(value)
