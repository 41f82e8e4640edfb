"""CloudFormation resource types moto's CloudFormation lacks.

moto skips a resource type it does not implement: nothing is created, every ``Ref`` to it
resolves to nothing (the property holding it silently disappears) and every
``Fn::GetAtt`` on it fails the whole stack. That breaks real templates in two ways:

* ``AWS::SecretsManager::Secret``: an IAM policy whose ``Resource`` is the secret's ``Ref``
  loses its resource and moto rejects it ("Policy statement must contain resources"), and
  the functions' ``PSEUDONYM_SECRET_ARN`` disappears. :class:`CfnSecret` creates the secret
  through moto's Secrets Manager backend, so ``Ref`` yields its ARN everywhere.
* Any other unsupported type (alarms, resource policies, ...): a dashboard that reads an
  alarm's ``Arn`` fails the stack. :class:`CfnPlaceholder` stands in for such resources:
  nothing is created, but ``Ref`` yields a name and ``Fn::GetAtt ... Arn`` an ARN of the
  usual form. Which resources were stood in for is recorded (:func:`placeholders`).
"""

from __future__ import annotations

import json
import threading
from typing import Any

SECRET_TYPE = "AWS::SecretsManager::Secret"  # noqa: S105 (a resource type)

_GENERATE_DEFAULTS: dict[str, Any] = {
    "PasswordLength": 32,
    "ExcludeCharacters": "",
    "ExcludeNumbers": False,
    "ExcludePunctuation": False,
    "ExcludeUppercase": False,
    "ExcludeLowercase": False,
    "IncludeSpace": False,
    "RequireEachIncludedType": True,
}


def _flag(value: Any) -> bool:
    return str(value).lower() == "true"


def generate_secret_string(backend: Any, options: dict[str, Any]) -> str:
    """The value ``GenerateSecretString`` asks for, made by moto's password generator."""
    settings = {**_GENERATE_DEFAULTS, **options}
    password = json.loads(
        backend.get_random_password(
            password_length=int(settings["PasswordLength"]),
            exclude_characters=str(settings["ExcludeCharacters"]),
            exclude_numbers=_flag(settings["ExcludeNumbers"]),
            exclude_punctuation=_flag(settings["ExcludePunctuation"]),
            exclude_uppercase=_flag(settings["ExcludeUppercase"]),
            exclude_lowercase=_flag(settings["ExcludeLowercase"]),
            include_space=_flag(settings["IncludeSpace"]),
            require_each_included_type=_flag(settings["RequireEachIncludedType"]),
        )
    )["RandomPassword"]
    template, key = options.get("SecretStringTemplate"), options.get("GenerateStringKey")
    if template and key:
        document = json.loads(template)
        document[key] = password
        return json.dumps(document)
    return str(password)


class CfnSecret:
    """``AWS::SecretsManager::Secret`` for moto's CloudFormation (``Ref`` = ARN)."""

    def __init__(self, name: str, arn: str, account_id: str, region_name: str) -> None:
        self.name = name
        self.arn = arn
        self.account_id = account_id
        self.region_name = region_name

    @property
    def physical_resource_id(self) -> str:
        return self.arn

    @staticmethod
    def cloudformation_type() -> str:
        return SECRET_TYPE

    @staticmethod
    def cloudformation_name_type() -> str:
        return "Name"

    @staticmethod
    def _backend(account_id: str, region_name: str) -> Any:
        from moto.secretsmanager.models import secretsmanager_backends

        return secretsmanager_backends[account_id][region_name]

    @classmethod
    def create_from_cloudformation_json(
        cls,
        resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
        **kwargs: Any,
    ) -> CfnSecret:
        properties = cloudformation_json.get("Properties", {})
        backend = cls._backend(account_id, region_name)
        name = str(properties.get("Name") or resource_name)
        secret_string = properties.get("SecretString")
        if secret_string is None:
            secret_string = generate_secret_string(
                backend, dict(properties.get("GenerateSecretString") or {})
            )
        backend.create_secret(
            name=name,
            secret_string=secret_string,
            secret_binary=None,
            description=properties.get("Description"),
            tags=properties.get("Tags"),
            kms_key_id=properties.get("KmsKeyId"),
            client_request_token=None,
            replica_regions=[],
            force_overwrite=False,
        )
        return cls(name, backend.secrets[name].arn, account_id, region_name)

    @classmethod
    def update_from_cloudformation_json(
        cls,
        original_resource: CfnSecret,
        new_resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
    ) -> CfnSecret:
        return original_resource

    @classmethod
    def delete_from_cloudformation_json(
        cls,
        resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
    ) -> None:
        backend = cls._backend(account_id, region_name)
        if resource_name in backend.secrets:
            backend.delete_secret(resource_name, None, True)

    def delete(self, account_id: str, region_name: str) -> None:
        backend = self._backend(account_id, region_name)
        if self.name in backend.secrets:
            backend.delete_secret(self.name, None, True)

    def is_created(self) -> bool:
        return True

    @classmethod
    def has_cfn_attr(cls, attribute: str) -> bool:
        return attribute == "Id"

    def get_cfn_attribute(self, attribute: str) -> str:
        return self.arn


_PLACEHOLDERS: dict[str, dict[str, str]] = {}
_PLACEHOLDERS_LOCK = threading.Lock()


def placeholders(stack_id: str) -> dict[str, str]:
    """Logical id -> type of the resources of a stack that only got a placeholder."""
    with _PLACEHOLDERS_LOCK:
        return dict(_PLACEHOLDERS.get(stack_id, {}))


def _arn(resource_type: str, name: str, account_id: str, region_name: str) -> str:
    _, service, kind = [*resource_type.split("::"), "", ""][:3]
    service = service.lower()
    if resource_type == "AWS::CloudWatch::Alarm":
        return f"arn:aws:cloudwatch:{region_name}:{account_id}:alarm:{name}"
    if resource_type == "AWS::Scheduler::Schedule":
        return f"arn:aws:scheduler:{region_name}:{account_id}:schedule/default/{name}"
    return f"arn:aws:{service}:{region_name}:{account_id}:{kind.lower()}/{name}"


class CfnPlaceholder:
    """Any resource type moto cannot create: a name for ``Ref``, an ARN for ``GetAtt``."""

    def __init__(self, resource_type: str, name: str, account_id: str, region_name: str) -> None:
        self.resource_type = resource_type
        self.name = name
        self.arn = _arn(resource_type, name, account_id, region_name)

    @property
    def physical_resource_id(self) -> str:
        return self.name

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::Local::Placeholder"

    @staticmethod
    def cloudformation_name_type() -> str:
        return ""

    @classmethod
    def create_from_cloudformation_json(
        cls,
        resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
        **kwargs: Any,
    ) -> CfnPlaceholder:
        resource_type = str(kwargs.get("ResourceType", cloudformation_json.get("Type", "")))
        with _PLACEHOLDERS_LOCK:
            stack = _PLACEHOLDERS.setdefault(str(kwargs.get("StackId", "")), {})
            stack[str(kwargs.get("LogicalId", resource_name))] = resource_type
        return cls(resource_type, resource_name, account_id, region_name)

    @classmethod
    def update_from_cloudformation_json(
        cls,
        original_resource: CfnPlaceholder,
        new_resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
    ) -> CfnPlaceholder:
        return original_resource

    @classmethod
    def delete_from_cloudformation_json(
        cls,
        resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
    ) -> None:
        return None

    def delete(self, account_id: str, region_name: str) -> None:
        return None

    def is_created(self) -> bool:
        return True

    @classmethod
    def has_cfn_attr(cls, attribute: str) -> bool:
        return True

    def get_cfn_attribute(self, attribute: str) -> str:
        return self.arn if attribute.endswith("Arn") else self.name


#: Resource types the runtime adds to moto's CloudFormation.
EXTRA_MODELS: dict[str, Any] = {SECRET_TYPE: CfnSecret}
