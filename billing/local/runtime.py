"""``LocalAws``: moto on loopback plus the real Lambda handlers, in this process."""

from __future__ import annotations

import copy
import json
import logging
import os
import sys
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from billing.local import fastpaths, offload, workers
from billing.local.clients import IN_PROCESS, aws_client, serialized_dynamodb
from billing.local.deploy import deploy
from billing.local.dispatch import LambdaDispatcher
from billing.local.heap import FullCollections
from billing.local.patches import MotoPatches
from billing.local.poller import PollerGroup, drain_queues, polled_stream
from billing.local.snapshot import (
    ItemCache,
    MessageCache,
    MutationGate,
    SnapshotInfo,
    capture,
    install_update_hook,
    restore,
    uninstall_update_hook,
    write_snapshot,
)
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


def _moto_server(host: str, port: int, wrap: Callable[[Any], Any] | None = None) -> Any:
    """moto's ``ThreadedMotoServer``, bound in the calling thread so that a port already in
    use raises here (the stock ``start`` waits forever when its thread fails to bind).
    ``wrap`` puts a WSGI middleware in front of moto's application."""
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
            app: Any = DomainDispatcherApplication(create_backend_app)
            if wrap is not None:
                app = wrap(app)
            self._server = make_server(
                self._ip_address, self._port, app, True, request_handler=MotoRequestHandler
            )
            self._server_ready_event.set()
            self._thread = Thread(
                target=self._server.serve_forever, name="moto-server", daemon=True
            )
            self._thread.start()

    return LoopbackMotoServer(ip_address=host, port=port, verbose=False)


_CAPTURE = threading.local()


class _RoutedStream:
    """Stands in for ``sys.stdout``/``sys.stderr``: what a Lambda handler writes while it
    runs (Powertools log lines, EMF metric blobs, stray prints) goes to the runtime's log
    file; everything else goes to the stream it replaced. Stays in place for good once
    installed (loggers keep a reference to it) and passes through when nothing captures."""

    def __init__(self, default: IO[str]) -> None:
        self.default = default

    def _target(self) -> IO[str]:
        target: IO[str] | None = getattr(_CAPTURE, "target", None)
        return target if target is not None else self.default

    def write(self, text: str) -> int:
        return self._target().write(text)

    def writelines(self, lines: Any) -> None:
        self._target().writelines(lines)

    def flush(self) -> None:
        self._target().flush()

    def isatty(self) -> bool:
        return self.default.isatty()

    def fileno(self) -> int:
        return self.default.fileno()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.default, name)


def _route_standard_streams() -> None:
    """Replaces ``sys.stdout``/``sys.stderr`` by routed streams (once) and points logging
    handlers that write to the original streams at them."""
    originals: dict[int, _RoutedStream] = {}
    for name in ("stdout", "stderr"):
        current = getattr(sys, name)
        if not isinstance(current, _RoutedStream):
            routed = _RoutedStream(current)
            setattr(sys, name, routed)
            originals[id(current)] = routed
    if not originals:
        return
    loggers = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
    for logger in loggers:
        for handler in getattr(logger, "handlers", []):
            stream = getattr(handler, "stream", None)
            if isinstance(handler, logging.StreamHandler) and id(stream) in originals:
                handler.setStream(originals[id(stream)])


@contextmanager
def _captured(target: IO[str] | None) -> Iterator[None]:
    previous = getattr(_CAPTURE, "target", None)
    _CAPTURE.target = target
    try:
        yield
    finally:
        _CAPTURE.target = previous


class ExecutionTimeoutError(TimeoutError):
    """A Step Functions execution did not finish in time."""


def wait_for_execution(
    execution_arn: str, *, timeout: float = 60.0, client: Any | None = None
) -> dict[str, Any]:
    """Polls ``DescribeExecution`` until the execution finishes; returns the description
    with ``output`` parsed from JSON (as ``outputJson``) when present. The poll starts at
    every 50 ms and slows to every 250 ms: each one costs the runtime's interpreter a
    request (a long close was polled 1,600 times)."""
    sfn = client or aws_client("stepfunctions")
    deadline = time.monotonic() + timeout
    pause = 0.05
    while True:
        description: dict[str, Any] = sfn.describe_execution(executionArn=execution_arn)
        if description["status"] in _FINAL_EXECUTION_STATES:
            if description.get("output") is not None:
                description["outputJson"] = json.loads(description["output"])
            return description
        if time.monotonic() > deadline:
            raise ExecutionTimeoutError(f"{execution_arn} still {description['status']}")
        time.sleep(pause)
        pause = min(0.25, pause * 1.25)


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
        state_dir: str | os.PathLike[str] | None = None,
        snapshot_interval: float = 2.0,
        log_file: str | os.PathLike[str] | None = None,
        function_workers: bool = False,
    ) -> None:
        """``port`` 0 picks a free port (the one used last in this process if free).
        ``max_batching_window_seconds`` caps the mappings' ``MaximumBatchingWindowInSeconds``
        (e.g. 0 in tests: invoke with whatever one poll returns instead of waiting).

        ``state_dir`` makes the data durable: the deployed stack's data is restored from
        the snapshot there, if any, and snapshotted there every ``snapshot_interval``
        seconds when something changed, and at :meth:`stop` (see
        :mod:`billing.local.snapshot`). ``log_file``: what handlers write to stdout/stderr
        (log lines, metrics) is appended there instead of the process's output.
        ``function_workers``: the functions of the SQS and stream event source mappings
        and those invoked through Lambda's API (Step Functions' tasks) run in worker
        processes (:mod:`billing.local.workers`; ``BILLING_LOCAL_FUNCTION_WORKERS``
        overrides it)."""
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
        self.state_dir = Path(state_dir) if state_dir is not None else None
        self.snapshot_interval = snapshot_interval
        self.gate: MutationGate | None = None
        self.restored: SnapshotInfo | None = None
        self.restore_error: str | None = None
        self.last_snapshot: SnapshotInfo | None = None
        self._durable_stack: DeployedStack | None = None
        self._snapshot_lock = threading.Lock()
        self._snapshot_stop = threading.Event()
        self._snapshot_thread: threading.Thread | None = None
        self._capture_seconds = 0.0
        self._item_caches: dict[str, ItemCache] = {}
        self._message_caches: dict[str, MessageCache] = {}
        self.log_file = Path(log_file) if log_file is not None else None
        self._log_stream: IO[str] | None = None
        self._dispatch_invoke: Any = None
        self.function_workers = workers.enabled(function_workers)
        self.workers: workers.FunctionWorkers | None = None
        # moto's state only grows: full collections paced to its doubling (billing.local.heap)
        self.full_collections = FullCollections()

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
        fastpaths.install()
        self.full_collections.start()
        # Powertools' Metrics instances share one set of metrics per process: functions run
        # as threads here, so one may flush what another added, and the other's flush finds
        # nothing (a warning that cannot happen on AWS, one invocation per container).
        warnings.filterwarnings(
            "ignore", message="No application metrics to publish", category=UserWarning
        )
        if self.log_file is not None:
            self._capture_handler_output(self.log_file)
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
            # This process's own calls (handlers, pollers) skip the HTTP round trip.
            IN_PROCESS.register(self.endpoint_url, self._server._server.app)
            self._set_env(
                {
                    **self.env,
                    # moto's Step Functions interpreter calls the Lambda API of the server
                    # it runs in at http://localhost:$MOTO_PORT.
                    "MOTO_PORT": str(self._port),
                    "AWS_EC2_METADATA_DISABLED": "true",
                    # the local close settles 0 once intake is drained: ingest must see a
                    # freeze at once, not up to 30 s later (a fact read as on time after
                    # the close read its period would never be billed)
                    "FROZEN_CACHE_SECONDS": "0",
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
            server = _moto_server(self.host, port, self._gate_app)
            try:
                server.start()
                return server
            except (OSError, SystemExit):
                # werkzeug reports a port in use with SystemExit.
                if port == candidates[-1]:
                    raise OSError(f"cannot listen on {self.host}:{port}") from None
                LOG.debug("port %d taken, using another", port)
        raise AssertionError("unreachable")

    def _gate_app(self, app: Any) -> Any:
        self.gate = MutationGate(serialized_dynamodb(app))
        self.gate.control["flush"] = lambda: self._control_status(self.snapshot())
        self.gate.control["status"] = lambda: self._control_status(self.last_snapshot)
        return self.gate

    def _capture_handler_output(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._log_stream = path.open("a", encoding="utf-8", buffering=1)
        _route_standard_streams()
        original = self.dispatcher.invoke
        stream = self._log_stream

        def invoke(name_or_arn: str, event: Any, *, request_id: str | None = None) -> Any:
            with _captured(stream):
                return original(name_or_arn, event, request_id=request_id)

        self._dispatch_invoke = original
        self.dispatcher.invoke = invoke  # type: ignore[method-assign]
        invoke_payload = self.dispatcher.invoke_payload

        def invoke_payload_captured(name_or_arn: str, payload: bytes | str | None) -> Any:
            # the dispatcher logs a handler's failure after the handler returned: to the file
            with _captured(stream):
                return invoke_payload(name_or_arn, payload)

        self.dispatcher.invoke_payload = invoke_payload_captured  # type: ignore[method-assign]

    def stop(self) -> None:
        from moto.core.config import default_user_config
        from moto.moto_api._internal.models import moto_api_backend

        for group in self.pollers:
            group.stop()
        self.pollers.clear()
        if self.workers is not None:
            self.workers.close()
            self.workers = None
        self._stop_snapshots()
        if self._server is not None:
            if self._port is not None:
                IN_PROCESS.unregister(self.endpoint_url)
            self._server.stop()
            self._server = None
        self._patches.uninstall()
        fastpaths.uninstall()
        self.full_collections.stop()
        offload.uninstall()
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
        self.gate = None
        if self._dispatch_invoke is not None:
            del self.dispatcher.invoke
            del self.dispatcher.invoke_payload
            self._dispatch_invoke = None
        if self._log_stream is not None:
            self._log_stream.close()
            self._log_stream = None

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
        offload.install()  # invoice PDFs on another core (the handlers' modules are loaded)
        if self.state_dir is not None and self._durable_stack is None:
            self._restore(stack)  # the first stack deployed is the one kept
        self._start_workers(stack)  # with pollers or not: the close's tasks run there too
        if start_pollers:
            self.start_pollers(stack)
        return stack

    # -- durable state ---------------------------------------------------------------------

    def _restore(self, stack: DeployedStack) -> None:
        """Loads the state dir's snapshot into the new stack (before any poller runs) and
        starts taking snapshots of it."""
        from billing.local import snapshot

        assert self.state_dir is not None
        assert self.gate is not None
        self.state_dir.mkdir(parents=True, exist_ok=True)
        if (self.state_dir / snapshot.SNAPSHOT_FILE).exists():
            try:
                self.restored = restore(self.state_dir, stack, self.client, self._item_caches)
                LOG.info("restored %s", self.restored.describe())
            except Exception as error:
                # Keep the unreadable file for inspection; start empty.
                self.restore_error = f"{type(error).__name__}: {error}"
                LOG.exception("cannot restore %s: starting empty", self.state_dir)
                aside = self.state_dir / f"{snapshot.SNAPSHOT_FILE}.unreadable-{int(time.time())}"
                (self.state_dir / snapshot.SNAPSHOT_FILE).replace(aside)
        self._durable_stack = stack
        install_update_hook()
        self.gate.mark_changed()
        self.snapshot()  # the new stack's own values (e.g. a generated secret) at once
        self._snapshot_stop.clear()
        self._snapshot_thread = threading.Thread(
            target=self._snapshot_loop, name="snapshots", daemon=True
        )
        self._snapshot_thread.start()

    def snapshot(self) -> SnapshotInfo | None:
        """Takes a snapshot now if anything changed since the last one; returns the latest
        snapshot (``None`` without a state dir). Data requests wait while it is captured."""
        if self.state_dir is None or self._durable_stack is None or self.gate is None:
            return None
        with self._snapshot_lock:
            last = self.last_snapshot
            if last is not None and last.sequence == self.gate.changes:
                return last
            started = time.monotonic()
            with self.gate.quiesced() as changes:
                info, payload = capture(
                    self._durable_stack, changes, self._item_caches, self._message_caches
                )
            captured = time.monotonic()
            self._capture_seconds = captured - started
            info = write_snapshot(self.state_dir, info, payload)
            LOG.debug(
                "snapshot %d: %s, captured in %.3f s, written in %.3f s",
                info.sequence,
                info.describe(),
                captured - started,
                time.monotonic() - captured,
            )
            self.last_snapshot = info
            return info

    def _snapshot_loop(self) -> None:
        # Data requests wait while a snapshot is captured: at most a tenth of the time.
        while not self._snapshot_stop.wait(max(self.snapshot_interval, 10 * self._capture_seconds)):
            try:
                self.snapshot()
            except Exception:
                LOG.exception("snapshot failed")

    def _stop_snapshots(self) -> None:
        """Stops the periodic snapshots and takes the last one (clean stop)."""
        self._snapshot_stop.set()
        if self._snapshot_thread is not None:
            self._snapshot_thread.join()
            self._snapshot_thread = None
        if self._durable_stack is not None and self._server is not None:
            try:
                self.snapshot()
            except Exception:
                LOG.exception("final snapshot failed")
        if self._durable_stack is not None:
            uninstall_update_hook()
        self._durable_stack = None
        self._item_caches.clear()
        self._message_caches.clear()

    def _control_status(self, info: SnapshotInfo | None) -> dict[str, Any]:
        return {
            "durable": self.state_dir is not None,
            "changes": self.gate.changes if self.gate is not None else 0,
            "snapshot": info.to_dict() if info is not None else None,
            "restored": self.restored.to_dict() if self.restored is not None else None,
            "restore_error": self.restore_error,
        }

    def _start_workers(self, stack: DeployedStack) -> None:
        """With function workers, the pools that run the stack's functions in worker
        processes (``billing.local.workers``), once: each SQS mapping's function (its
        pollers keep a worker each busy while this process answers the other's requests)
        and the function of the stream the runtime reads (the live view: its records in
        ``STREAM_LANES`` invocations at once), started warm; and one pool for the
        functions invoked through Lambda's API (the close's tasks, by Step Functions'
        Maps, many at once), started in the background (a cold start is about a second of
        CPU each: while the runtime is idle or ingesting, not in the close)."""
        if not self.function_workers or self.workers is not None:
            return
        mappings = stack.event_source_mappings
        polled = {m.function_name for m in mappings if m.enabled and m.queue_url}
        streamed = {m.function_name for m in mappings if polled_stream(m)}
        mapped = {m.function_name for m in mappings}
        invoked = frozenset(f.name for f in stack.functions.values() if f.name not in mapped)
        each = [(polled, workers.POLLERS_PER_MAPPING), (streamed, workers.STREAM_LANES)]
        pools = {n: workers.Pool(frozenset({n}), count) for names, count in each for n in names}
        warm = list(pools)
        if invoked:
            pools[workers.INVOKED] = workers.Pool(invoked, workers.INVOKED_WORKERS)
        pool = workers.FunctionWorkers(
            self.dispatcher,
            pools,
            app=self._server._server.app,
            code_root=self.dispatcher.code_root,
            endpoint_url=self.endpoint_url,
            log_file=self.log_file,
        )
        pool.warm(warm)  # WorkerStartError: the deployment fails, no poller starts
        if invoked:  # meanwhile, the close's: its first tasks find them warm
            pool.warm_later([workers.INVOKED])
        self.workers = pool
        self._patches.invoker = pool  # Lambda's Invoke API: the invoked functions

    def start_pollers(self, stack: DeployedStack | None = None) -> PollerGroup:
        stack = stack or self.stack
        self._start_workers(stack)
        invoker: workers.Invoker = self.workers if self.workers is not None else self.dispatcher
        group = PollerGroup(
            stack.event_source_mappings,
            invoker,
            region=self.region,
            endpoint_url=self.endpoint_url,
            poll_wait_seconds=self.poll_wait_seconds,
            pollers_per_mapping=workers.POLLERS_PER_MAPPING if self.function_workers else 1,
            stream_lanes=workers.STREAM_LANES if self.workers is not None else 1,
            max_batching_window_seconds=self.max_batching_window_seconds,
            gate=self.gate,
        )
        group.start()
        self.pollers.append(group)
        return group

    def drain(self, timeout: float = 30.0, *, streams: bool = True) -> None:
        """Waits until every polled queue is empty (visible + in flight) and no batch is
        being handled, and (``streams``) every stream record has been handled too (the
        live view caught up)."""
        urls = sorted({url for group in self.pollers for url in group.queue_urls})
        drain_queues(
            urls,
            timeout=timeout,
            busy=lambda: any(group.busy(streams) for group in self.pollers),
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
