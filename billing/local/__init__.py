"""Local AWS for development and end-to-end tests: moto on loopback, the real
CloudFormation template deployed into it, the real Lambda handlers run in-process.

In-process use (tests)::

    from billing.local import LocalAws

    with LocalAws() as aws:
        stack = aws.deploy("cdk.out")
        ...
        aws.drain()

Background use (CLI): :mod:`billing.local.service` (``start`` / ``stop`` / ``status``).
"""

from billing.local.deploy import DeployError, deploy, find_stack, synth
from billing.local.dispatch import LambdaContext, LambdaDispatcher
from billing.local.poller import drain_queues
from billing.local.runtime import LocalAws, wait_for_execution
from billing.local.stack import DeployedStack, EventSourceMapping, Function, StateMachine

__all__ = [
    "DeployError",
    "DeployedStack",
    "EventSourceMapping",
    "Function",
    "LambdaContext",
    "LambdaDispatcher",
    "LocalAws",
    "StateMachine",
    "deploy",
    "drain_queues",
    "find_stack",
    "synth",
    "wait_for_execution",
]
