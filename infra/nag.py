"""cdk-nag (AwsSolutions) registration and the stack's acknowledged findings.

cdk-nag 3.x runs as a CDK validation plugin: ``Validations.of(app).add_plugins(...)``.
Any unacknowledged finding, error or warning, fails ``app.synth()`` and is written to
``cdk.out/validation-report.json``. Findings are acknowledged one by one with
``Validations.of(construct).acknowledge(...)``; a rule that reports several findings on
one resource (IAM5) needs one acknowledgement per finding, ``AwsSolutions-IAM5[<finding>]``.

The IDs are given without the ``AwsSolutions::`` prefix that CDK's report suggests: CDK
stores an unprefixed ID as ``Annotation::<id>``, and cdk-nag 3.0.2 strips exactly that
prefix when it looks for acknowledgements. ``tests/infra`` checks that it works.
"""

from __future__ import annotations

from collections.abc import Iterable

import aws_cdk as cdk
from aws_cdk import Stack, Validations
from cdk_nag import AwsSolutionsChecks
from constructs import IConstruct

PACK = "AwsSolutions"


def register_checks(app: cdk.App) -> None:
    """Run the AWS Solutions rule pack on every synthesis of ``app``."""
    Validations.of(app).add_plugins(
        AwsSolutionsChecks(app, verbose=True, write_suppressions_to_cloud_formation=True)
    )


def acknowledge(construct: IConstruct, rule: str, reason: str) -> None:
    """Acknowledge one finding (``rule`` without the pack prefix, e.g. ``"SMG4"``)."""
    Validations.of(construct).acknowledge(cdk.Acknowledgment(id=f"{PACK}-{rule}", reason=reason))


def acknowledge_findings(
    construct: IConstruct, rule: str, findings: Iterable[str], reason: str
) -> None:
    """Acknowledge each ``rule[finding]``, e.g. ``IAM5[Resource::<Bucket.Arn>/invoices/*]``."""
    for finding in findings:
        acknowledge(construct, f"{rule}[{finding}]", reason)


def arn_ref(resource: IConstruct) -> str:
    """How cdk-nag spells the ``Arn`` attribute of an L2's CloudFormation resource."""
    default_child = resource.node.default_child
    if not isinstance(default_child, cdk.CfnElement):
        raise TypeError(f"{resource.node.path} has no CloudFormation resource")
    logical_id = Stack.of(resource).resolve(default_child.logical_id)
    return f"<{logical_id}.Arn>"
