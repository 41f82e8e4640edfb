"""``LocalAws``: moto on loopback plus the real Lambda handlers, in this process."""

from __future__ import annotations

import copy
import json
import logging
import os
import time
import uuid
from pathlib import Path
from types import TracebackType
from typing import Any

from billing.local.clients import aws_client
from billing.local.deploy import deploy
from billing.local.dispatch import LambdaDispatcher
from billing.local.patches import MotoPatches
from billing.local.poller import PollerGroup, drain_queues
from billing.local.stack import DeployedStack

LOG = logging.getLogger(__name__)

DEFAULT_REGION = "us-east-1"
DEFAULT_ACCOUNT_ID = "123456789012"
FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}

#: Variables removed while the runtime runs: they would send boto3 elsewhere.
_CLEARED_ENV = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ROLE_ARN")

_FINAL_EXECUTION_STATES = {"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"}


#: Port last used per host, reused when free: clients that handlers cache across runtimes
#: in one process (``functools.cache`` on a boto3 client) keep pointing at a live server.
_LAST_PORT: dict[str, int] = {}


def _moto_server(host: str, port: int) -> Any:
    """moto's ``ThreadedMotoServer``, bound in the calling thread so that a port already in
    use raises here (the stock ``start`` waits forever when its thread fails to bind)."""
    from threading import Thread

    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from moto.server import ThreadedMotoServer
    from werkzeug.serving import make_server

    class LoopbackMotoServer(ThreadedMotoServer):
        def start(self) -> None:
            app = DomainDispatcherApplication(create_backend_app)
            self._server = make_server(
                self._ip_address, self._port, app, True, request_handler=MotoRequestHandler
            )
            self._server_ready_event.set()
            self._thread = Thread(
                target=self._server.serve_forever, name="moto-server", daemon=True
            )
            self._thread.start()

    return LoopbackMotoServer(ip_address=host, port=port, verbose=False)


class ExecutionTimeoutError(TimeoutError):
    """A Step Functions execution did not finish in time."""


def wait_for_execution(
    execution_arn: str, *, timeout: float = 60.0, client: Any | None = None
) -> dict[str, Any]:
    """Polls ``DescribeExecution`` until the execution finishes; returns the description
    with ``output`` parsed from JSON (as ``outputJson``) when present."""
    sfn = client or aws_client("stepfunctions")
    deadline = time.monotonic() + timeout
    while True:
        description: dict[str, Any] = sfn.describe_execution(executionArn=execution_arn)
        if description["status"] in _FINAL_EXECUTION_STATES:
            if description.get("output") is not None:
                description["outputJson"] = json.loads(description["output"])
            return description
        if time.monotonic() > deadline:
            raise ExecutionTimeoutError(f"{execution_arn} still {description['status']}")
        time.sleep(0.05)


class LocalAws:
    """Runs moto's server on loopback in this process and points boto3 at it.

    >>> with LocalAws() as aws:
    ...     stack = aws.deploy("cdk.out")        # CDK template, handlers, pollers
    ...     aws.client("sqs").send_message(QueueUrl=stack.queue_url("IntakeQueue"), ...)
    ...     aws.drain()

    While it runs, ``os.environ`` carries ``AWS_ENDPOINT_URL``, the region and fake
    credentials (so plain ``boto3.client(...)`` calls anywhere in the process reach moto),
    plus the union of the deployed functions' environment variables. Lambda invocations,
    Step Functions ``lambda:invoke`` tasks and SQS event source mappings run the real
    handlers in this process. Only one instance can run per process at a time.
    """

    def __init__(
        self,
        *,
        port: int = 0,
        host: str = "127.0.0.1",
        region: str = DEFAULT_REGION,
        code_root: str | os.PathLike[str] | None = None,
        poll_wait_seconds: int = 1,
        max_batching_window_seconds: int | None = None,
    ) -> None:
        """``port`` 0 picks a free port (the one used last in this process if free).
        ``max_batching_window_seconds`` caps the mappings' ``MaximumBatchingWindowInSeconds``
        (e.g. 0 in tests: invoke with whatever one poll returns instead of waiting)."""
        self.host = host
        self.requested_port = port
        self.region = region
        self.account_id = DEFAULT_ACCOUNT_ID
        self.poll_wait_seconds = poll_wait_seconds
        self.max_batching_window_seconds = max_batching_window_seconds
        self.dispatcher = LambdaDispatcher(code_root)
        self.stacks: list[DeployedStack] = []
        self.pollers: list[PollerGroup] = []
        self._patches = MotoPatches(self.dispatcher)
        self._server: Any = None
        self._port: int | None = None
        self._saved_env: dict[str, str | None] = {}
        self._saved_config: dict[str, Any] = {}
        self._quieted_loggers: list[logging.Logger] = []

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("LocalAws is not running")
        return self._port

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        """What another process needs in its environment to use this runtime's AWS."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
            **FAKE_CREDENTIALS,
        }

    @property
    def stack(self) -> DeployedStack:
        """The most recently deployed stack."""
        if not self.stacks:
            raise RuntimeError("nothing deployed yet")
        return self.stacks[-1]

    def __enter__(self) -> LocalAws:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> LocalAws:
        from moto.core.config import default_user_config
        from moto.moto_api._internal.models import moto_api_backend

        self._patches.install()
        for name in ("werkzeug", "moto.stepfunctions.parser"):
            logger = logging.getLogger(name)
            if logger.level == logging.NOTSET:
                # Request lines and the interpreter's own traces of expected task failures.
                logger.setLevel(logging.CRITICAL if "parser" in name else logging.WARNING)
                self._quieted_loggers.append(logger)
        try:
            moto_api_backend.reset()
            for section in ("stepfunctions", "lambda"):
                self._saved_config[section] = copy.deepcopy(default_user_config.get(section))
            default_user_config["stepfunctions"] = {"execute_state_machine": True}
            default_user_config["lambda"] = {"use_docker": False}
            self._server = self._start_server()
            self._port = int(self._server.get_host_and_port()[1])
            _LAST_PORT[self.host] = self._port
            self._set_env(
                {
                    **self.env,
                    # moto's Step Functions interpreter calls the Lambda API of the server
                    # it runs in at http://localhost:$MOTO_PORT.
                    "MOTO_PORT": str(self._port),
                    "AWS_EC2_METADATA_DISABLED": "true",
                }
            )
            for name in _CLEARED_ENV:
                self._saved_env.setdefault(name, os.environ.get(name))
                os.environ.pop(name, None)
        except BaseException:
            self.stop()
            raise
        LOG.info("moto listening on %s", self.endpoint_url)
        return self

    def _start_server(self) -> Any:
        previous = _LAST_PORT.get(self.host)
        candidates = [self.requested_port] if self.requested_port else [previous or 0, 0]
        for port in candidates:
            server = _moto_server(self.host, port)
            try:
                server.start()
                return server
            except (OSError, SystemExit):
                # werkzeug reports a port in use with SystemExit.
                if port == candidates[-1]:
                    raise OSError(f"cannot listen on {self.host}:{port}") from None
                LOG.debug("port %d taken, using another", port)
        raise AssertionError("unreachable")

    def stop(self) -> None:
        from moto.core.config import default_user_config
        from moto.moto_api._internal.models import moto_api_backend

        for group in self.pollers:
            group.stop()
        self.pollers.clear()
        if self._server is not None:
            self._server.stop()
            self._server = None
        self._patches.uninstall()
        self.dispatcher.forget()
        moto_api_backend.reset()
        for section, value in self._saved_config.items():
            if value is not None:
                default_user_config[section] = value  # type: ignore[literal-required]
        self._saved_config.clear()
        for name, previous in self._saved_env.items():
            if previous is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = previous
        self._saved_env.clear()
        self._port = None
        self.stacks.clear()
        for logger in self._quieted_loggers:
            logger.setLevel(logging.NOTSET)
        self._quieted_loggers.clear()

    def _set_env(self, values: dict[str, str]) -> None:
        for name, value in values.items():
            self._saved_env.setdefault(name, os.environ.get(name))
            os.environ[name] = value

    # -- use -------------------------------------------------------------------------------

    def client(self, service: str) -> Any:
        return aws_client(service, endpoint_url=self.endpoint_url, region=self.region)

    def deploy(
        self,
        template_dir: str | os.PathLike[str],
        *,
        stack_name: str | None = None,
        parameters: dict[str, str] | None = None,
        start_pollers: bool = True,
        timeout: float = 120.0,
    ) -> DeployedStack:
        """Deploys a cloud assembly, registers its Python handlers (setting their merged
        environment) and starts a poller per SQS event source mapping."""
        stack = deploy(
            Path(template_dir),
            stack_name=stack_name,
            parameters=parameters,
            region=self.region,
            timeout=timeout,
        )
        self.stacks.append(stack)
        self.dispatcher.register_functions(stack.functions.values())
        if start_pollers:
            self.start_pollers(stack)
        return stack

    def start_pollers(self, stack: DeployedStack | None = None) -> PollerGroup:
        group = PollerGroup(
            (stack or self.stack).event_source_mappings,
            self.dispatcher,
            region=self.region,
            endpoint_url=self.endpoint_url,
            poll_wait_seconds=self.poll_wait_seconds,
            max_batching_window_seconds=self.max_batching_window_seconds,
        )
        group.start()
        self.pollers.append(group)
        return group

    def drain(self, timeout: float = 30.0) -> None:
        """Waits until every polled queue is empty (visible + in flight) and no batch is
        being handled."""
        urls = sorted({url for group in self.pollers for url in group.queue_urls})
        drain_queues(
            urls,
            timeout=timeout,
            busy=lambda: any(group.busy() for group in self.pollers),
            endpoint_url=self.endpoint_url,
            region=self.region,
        )

    def invoke(self, function: str, event: Any) -> Any:
        """Calls a deployed function's handler directly (name, ARN or construct id)."""
        if self.dispatcher.lookup(function) is None and self.stacks:
            function = self.stack.function(function).name
        return self.dispatcher.invoke(function, event)

    def run_state_machine(
        self,
        state_machine: str,
        execution_input: Any = None,
        *,
        name: str | None = None,
        timeout: float = 60.0,
    ) -> dict[str, Any]:
        """Starts an execution (ARN or construct id) and waits for it to finish."""
        arn = state_machine
        if not arn.startswith("arn:"):
            arn = self.stack.state_machine_arn(state_machine)
        sfn = self.client("stepfunctions")
        execution_arn = sfn.start_execution(
            stateMachineArn=arn,
            name=name or str(uuid.uuid4()),
            input=json.dumps(execution_input if execution_input is not None else {}),
        )["executionArn"]
        return wait_for_execution(execution_arn, timeout=timeout, client=sfn)
