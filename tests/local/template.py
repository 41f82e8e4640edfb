"""A small cloud assembly shaped like the CDK output: template, asset manifest, asset folder.

Logical ids carry CDK-style hash suffixes, the Lambda code comes from the bootstrap asset
bucket, the state machine definition is an ``Fn::Join`` over function ARNs (plus one
``DefinitionSubstitutions`` entry), and a few resource types moto's CloudFormation skips
are present (secret, queue policy).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

STACK_NAME = "LocalTest"
HANDLERS = "tests.local.handlers"

QUEUE = "WorkQueueB6A7E2F1"
DLQ = "WorkDlq5C0FFEE1"
QUEUE_POLICY = "WorkQueuePolicy0C1D2E3F"
TABLE = "WorkTable8D2E1A90"
BUCKET = "ResultsBucket4F3A2B10"
SECRET = "TestSecretA1B2C3D4"
BUS = "UsageBus7E6D5C4B"
RULE = "BusToQueueRule1F2E3D4C"
ROLE = "FunctionRole9A8B7C6D"
WORKER = "WorkerFunction11AA22BB"
MAPPING = "WorkerFunctionSqsEventSource33CC44DD"
PIPELINE = "PipelineStateMachine55EE66FF"
STRICT = "StrictStateMachine77AA88BB"

FUNCTIONS = {
    WORKER: ("sqs_batch", "worker"),
    "DoubleFunctionAB12CD34": ("double", "pipeline"),
    "TotalFunctionEF56AB78": ("total", "pipeline"),
    "ExplodeFunction9C0D1E2F": ("explode", "pipeline"),
    "EnvFunction3A4B5C6D": ("describe_environment", "inspector"),
}


def _arn(logical_id: str) -> dict[str, Any]:
    return {"Fn::GetAtt": [logical_id, "Arn"]}


def _lambda_task(function_arn: str, **extra: Any) -> dict[str, Any]:
    return {
        "Type": "Task",
        "Resource": "arn:aws:states:::lambda:invoke",
        "Parameters": {"FunctionName": function_arn, "Payload.$": "$"},
        **extra,
    }


def _joined_definition(definition: dict[str, Any]) -> dict[str, Any]:
    """``json.dumps`` of the definition as CDK emits it: an ``Fn::Join`` in which every
    ``<<LogicalId>>`` placeholder becomes that function's ``Fn::GetAtt`` ARN."""
    text = json.dumps(definition)
    parts: list[Any] = []
    while "<<" in text:
        before, _, rest = text.partition("<<")
        logical_id, _, text = rest.partition(">>")
        parts.extend([before, _arn(logical_id)])
    parts.append(text)
    return {"Fn::Join": ["", parts]}


def pipeline_definition() -> dict[str, Any]:
    return {
        "StartAt": "DoubleAll",
        "States": {
            "DoubleAll": {
                "Type": "Map",
                "ItemsPath": "$.values",
                "ItemSelector": {"value.$": "$$.Map.Item.Value"},
                "MaxConcurrency": 4,
                "ItemProcessor": {
                    "ProcessorConfig": {"Mode": "INLINE"},
                    "StartAt": "Double",
                    "States": {
                        "Double": _lambda_task(
                            "<<DoubleFunctionAB12CD34>>",
                            ResultSelector={
                                "value.$": "$.Payload.value",
                                "function.$": "$.Payload.function",
                                "has_time_left.$": "$.Payload.has_time_left",
                                "pid.$": "$.Payload.pid",
                            },
                            End=True,
                        )
                    },
                },
                "ResultPath": "$.items",
                "Next": "Total",
            },
            "Total": _lambda_task(
                "${TotalFunctionArn}",
                ResultSelector={"total.$": "$.Payload.total", "pid.$": "$.Payload.pid"},
                ResultPath="$.sum",
                Next="ShouldExplode",
            ),
            "ShouldExplode": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.explode", "BooleanEquals": True, "Next": "Explode"}],
                "Default": "Done",
            },
            "Explode": _lambda_task(
                "<<ExplodeFunction9C0D1E2F>>",
                Retry=[{"ErrorEquals": ["ValueError"], "MaxAttempts": 1, "IntervalSeconds": 1}],
                Catch=[{"ErrorEquals": ["ValueError"], "ResultPath": "$.error", "Next": "Caught"}],
                Next="Done",
            ),
            "Caught": {"Type": "Pass", "End": True},
            "Done": {"Type": "Succeed"},
        },
    }


def strict_definition() -> dict[str, Any]:
    """No Catch, and the older direct-ARN task resource."""
    return {
        "StartAt": "Explode",
        "States": {
            "Explode": {"Type": "Task", "Resource": "<<ExplodeFunction9C0D1E2F>>", "End": True}
        },
    }


def template(asset_key: str) -> dict[str, Any]:
    env = {
        "TABLE_NAME": {"Ref": TABLE},
        "RESULTS_BUCKET": {"Ref": BUCKET},
        "SECRET_ARN": {"Ref": SECRET},
        "QUEUE_ARN": _arn(QUEUE),
        "BUS_NAME": {"Ref": BUS},
        "STAGE": "test",
    }
    resources: dict[str, Any] = {
        TABLE: {
            "Type": "AWS::DynamoDB::Table",
            "Properties": {
                "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
                "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
                "BillingMode": "PAY_PER_REQUEST",
                "TimeToLiveSpecification": {"AttributeName": "expires_at", "Enabled": True},
            },
        },
        BUCKET: {
            "Type": "AWS::S3::Bucket",
            "Properties": {"VersioningConfiguration": {"Status": "Enabled"}},
        },
        DLQ: {"Type": "AWS::SQS::Queue", "Properties": {"MessageRetentionPeriod": 1209600}},
        QUEUE: {
            "Type": "AWS::SQS::Queue",
            "Properties": {
                "VisibilityTimeout": 1,
                "RedrivePolicy": {"deadLetterTargetArn": _arn(DLQ), "maxReceiveCount": 2},
            },
        },
        QUEUE_POLICY: {
            "Type": "AWS::SQS::QueuePolicy",
            "Properties": {
                "Queues": [{"Ref": QUEUE}],
                "PolicyDocument": {"Version": "2012-10-17", "Statement": []},
            },
        },
        SECRET: {
            "Type": "AWS::SecretsManager::Secret",
            "Properties": {
                "GenerateSecretString": {
                    "SecretStringTemplate": '{"purpose":"pseudonyms"}',
                    "GenerateStringKey": "key",
                    "ExcludePunctuation": True,
                    "PasswordLength": 40,
                }
            },
        },
        BUS: {"Type": "AWS::Events::EventBus", "Properties": {"Name": "local-test-bus"}},
        RULE: {
            "Type": "AWS::Events::Rule",
            "Properties": {
                "EventBusName": {"Ref": BUS},
                "EventPattern": {"source": ["test.usage"]},
                "State": "ENABLED",
                "Targets": [{"Arn": _arn(QUEUE), "Id": "Target0", "InputPath": "$.detail"}],
            },
        },
        ROLE: {
            "Type": "AWS::IAM::Role",
            "Properties": {
                "AssumeRolePolicyDocument": {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {
                                "Service": ["lambda.amazonaws.com", "states.amazonaws.com"]
                            },
                            "Action": "sts:AssumeRole",
                        }
                    ],
                }
            },
        },
        MAPPING: {
            "Type": "AWS::Lambda::EventSourceMapping",
            "Properties": {
                "FunctionName": {"Ref": WORKER},
                "EventSourceArn": _arn(QUEUE),
                "BatchSize": 5,
                "MaximumBatchingWindowInSeconds": 1,
                "FunctionResponseTypes": ["ReportBatchItemFailures"],
            },
        },
        PIPELINE: {
            "Type": "AWS::StepFunctions::StateMachine",
            "Properties": {
                "RoleArn": _arn(ROLE),
                "DefinitionString": _joined_definition(pipeline_definition()),
                "DefinitionSubstitutions": {"TotalFunctionArn": _arn("TotalFunctionEF56AB78")},
            },
        },
        STRICT: {
            "Type": "AWS::StepFunctions::StateMachine",
            "Properties": {
                "RoleArn": _arn(ROLE),
                "DefinitionString": _joined_definition(strict_definition()),
            },
        },
    }
    for logical_id, (handler, service) in FUNCTIONS.items():
        resources[logical_id] = {
            "Type": "AWS::Lambda::Function",
            "Properties": {
                "Code": {
                    "S3Bucket": {
                        "Fn::Sub": "cdk-hnb659fds-assets-${AWS::AccountId}-${AWS::Region}"
                    },
                    "S3Key": asset_key,
                },
                "Handler": f"{HANDLERS}.{handler}",
                "Runtime": "python3.12",
                "Role": _arn(ROLE),
                "Timeout": 10,
                "MemorySize": 256,
                "Environment": {"Variables": {**env, "POWERTOOLS_SERVICE_NAME": service}},
            },
        }
    return {
        "Parameters": {
            "BootstrapVersion": {
                "Type": "AWS::SSM::Parameter::Value<String>",
                "Default": "/cdk-bootstrap/hnb659fds/version",
            }
        },
        "Resources": resources,
        "Outputs": {
            "QueueUrl": {"Value": {"Ref": QUEUE}},
            "SecretArn": {"Value": {"Ref": SECRET}},
        },
    }


def write_assembly(directory: Path) -> Path:
    """Writes ``LocalTest.template.json``, ``LocalTest.assets.json`` and the asset folder."""
    directory.mkdir(parents=True, exist_ok=True)
    source = Path(__file__).with_name("handlers.py")
    asset_hash = hashlib.sha256(source.read_bytes()).hexdigest()
    asset_dir = directory / f"asset.{asset_hash}"
    (asset_dir / "tests" / "local").mkdir(parents=True, exist_ok=True)
    shutil.copy(source, asset_dir / "tests" / "local" / "handlers.py")
    body = template(f"{asset_hash}.zip")
    template_path = directory / f"{STACK_NAME}.template.json"
    template_path.write_text(json.dumps(body, indent=1))
    destination = {
        "bucketName": "cdk-hnb659fds-assets-${AWS::AccountId}-${AWS::Region}",
        "assumeRoleArn": "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/cdk-deploy",
    }
    manifest = {
        "version": "48.0.0",
        "files": {
            asset_hash: {
                "displayName": "Code",
                "source": {"path": asset_dir.name, "packaging": "zip"},
                "destinations": {
                    "current_account-current_region": {
                        **destination,
                        "objectKey": f"{asset_hash}.zip",
                    }
                },
            },
            "template": {
                "displayName": "Template",
                "source": {"path": template_path.name, "packaging": "file"},
                "destinations": {
                    "current_account-current_region": {
                        **destination,
                        "objectKey": "template.json",
                    }
                },
            },
        },
        "dockerImages": {},
    }
    (directory / f"{STACK_NAME}.assets.json").write_text(json.dumps(manifest, indent=1))
    return directory
