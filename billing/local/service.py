"""The local runtime as a background service, for the CLI.

``start`` launches ``python -m billing.local.service serve ...`` as a detached process that
runs :class:`LocalAws`, deploys the stack and polls the queues until it is stopped. Once
ready it writes ``state.json`` into the state directory (endpoint, region, credentials,
physical ids of the stack, pid). The handlers run inside that process: Lambda invocations,
Step Functions Lambda tasks and SQS event source mappings all happen there, whichever
process sends the request.

The service's data is durable: it keeps snapshots in ``<state_dir>/snapshot.pickle`` and
restores the latest one when it starts again, also after a ``kill -9`` (what it restored
is recorded in ``state.json``); :func:`reset` deletes them (see :mod:`billing.local.snapshot`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from billing.local import snapshot
from billing.local.clients import aws_client
from billing.local.deploy import find_stack, synth
from billing.local.dispatch import REPO_ROOT
from billing.local.poller import drain_queues
from billing.local.runtime import FAKE_CREDENTIALS, LocalAws
from billing.local.stack import DeployedStack

LOG = logging.getLogger(__name__)

DEFAULT_STATE_DIR = Path(".billing-local")
STATE_FILE = "state.json"
LOG_FILE = "service.log"
_MODULE = "billing.local.service"


class ServiceError(RuntimeError):
    """The background service could not be started or reached."""


@dataclass(frozen=True)
class ServiceState:
    """What ``state.json`` records about a running service."""

    pid: int
    endpoint_url: str
    region: str
    account_id: str
    env: dict[str, str]
    stack: DeployedStack
    started_at: str
    template_dir: str
    log_file: str
    running: bool = True
    #: What the service restored at its start (a :class:`snapshot.SnapshotInfo` as a
    #: dict), ``None`` if it started empty; ``restore_error`` if a snapshot was unreadable.
    restored: dict[str, Any] | None = None
    restore_error: str | None = None

    @property
    def credentials(self) -> tuple[str, str]:
        return (self.env["AWS_ACCESS_KEY_ID"], self.env["AWS_SECRET_ACCESS_KEY"])

    def client(self, service_name: str) -> Any:
        """A boto3 client for the service's endpoint, usable from any process."""
        return aws_client(
            service_name,
            endpoint_url=self.endpoint_url,
            region=self.region,
            credentials=self.credentials,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "pid": self.pid,
            "endpoint_url": self.endpoint_url,
            "region": self.region,
            "account_id": self.account_id,
            "credentials": {
                "aws_access_key_id": FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
                "aws_secret_access_key": FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            },
            "env": self.env,
            "stack": self.stack.to_dict(),
            "started_at": self.started_at,
            "template_dir": self.template_dir,
            "log_file": self.log_file,
            "restored": self.restored,
            "restore_error": self.restore_error,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, running: bool = True) -> ServiceState:
        return cls(
            pid=int(data["pid"]),
            endpoint_url=data["endpoint_url"],
            region=data["region"],
            account_id=data["account_id"],
            env=dict(data["env"]),
            stack=DeployedStack.from_dict(data["stack"]),
            started_at=data["started_at"],
            template_dir=data["template_dir"],
            log_file=data["log_file"],
            running=running,
            restored=data.get("restored"),
            restore_error=data.get("restore_error"),
        )

    def snapshot_status(self) -> dict[str, Any] | None:
        """The running service's snapshot figures (``changes``, ``snapshot``, ``restored``)."""
        return snapshot.control(self.endpoint_url, "status", timeout=10)


# -- helpers ---------------------------------------------------------------------------------


def _state_path(state_dir: str | os.PathLike[str]) -> Path:
    return Path(state_dir) / STATE_FILE


def _read_state(state_dir: str | os.PathLike[str]) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads(_state_path(state_dir).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return data


def _write_state(state_dir: Path, state: ServiceState) -> None:
    temporary = state_dir / f".{STATE_FILE}.{os.getpid()}"
    temporary.write_text(json.dumps(state.to_dict(), indent=2))
    temporary.replace(state_dir / STATE_FILE)


def _is_service_process(pid: int) -> bool:
    """True if ``pid`` is alive (not a zombie) and runs this module's ``serve``."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False
    proc = Path(f"/proc/{pid}")
    if proc.exists():
        try:
            if (proc / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                return False
            return _MODULE in (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            return False
    return True


def _reachable(endpoint_url: str, timeout: float = 1.0) -> bool:
    host_port = endpoint_url.split("://", 1)[-1].split("/", 1)[0]
    host, _, port = host_port.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            return True
    except OSError:
        return False


_children: dict[int, subprocess.Popen[bytes]] = {}


def _reap(pid: int) -> None:
    child = _children.get(pid)
    if child is not None and child.poll() is not None:
        _children.pop(pid, None)
        return
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


# -- public API ------------------------------------------------------------------------------


def status(state_dir: str | os.PathLike[str] = DEFAULT_STATE_DIR) -> ServiceState | None:
    """The recorded state of the service, with ``running`` telling whether its process is
    alive and its endpoint answers; ``None`` if nothing was ever started there."""
    data = _read_state(state_dir)
    if data is None:
        return None
    pid = int(data.get("pid", 0))
    _reap(pid)
    running = _is_service_process(pid) and _reachable(data["endpoint_url"])
    return ServiceState.from_dict(data, running=running)


def start(
    state_dir: str | os.PathLike[str] = DEFAULT_STATE_DIR,
    *,
    template_dir: str | os.PathLike[str] = "cdk.out",
    stack_name: str | None = None,
    port: int = 0,
    synth_if_missing: bool = True,
    project_root: str | os.PathLike[str] | None = None,
    max_batching_window_seconds: int | None = None,
    snapshot_interval: float | None = None,
    timeout: float = 180.0,
    paused: bool = False,
    entry: Sequence[str] = ("-m", _MODULE),
) -> dict[str, str]:
    """Starts the service (if it is not already running) and waits until the stack is
    deployed; returns the environment variables to export (``AWS_ENDPOINT_URL``, region,
    fake credentials). The service's output goes to ``<state_dir>/service.log``.
    ``paused``: no poller is started (events sent stay queued). ``entry``: the Python
    arguments that run this module's ``main`` (e.g. ``-c`` code that sets log levels first;
    its command line must name this module, which is how a running service is recognized)."""
    state_path = Path(state_dir).resolve()
    current = status(state_path)
    if current is not None and current.running:
        return dict(current.env)
    state_path.mkdir(parents=True, exist_ok=True)
    _state_path(state_path).unlink(missing_ok=True)
    root = Path(project_root or REPO_ROOT).resolve()
    template_path = Path(template_dir)
    if not template_path.is_absolute():
        template_path = (Path.cwd() / template_path).resolve()
    command = [
        sys.executable,
        *entry,
        "serve",
        "--port",
        str(port),
        "--state-dir",
        str(state_path),
        "--template-dir",
        str(template_path),
        "--project-root",
        str(root),
    ]
    if stack_name:
        command += ["--stack-name", stack_name]
    if synth_if_missing:
        command.append("--synth-if-missing")
    if max_batching_window_seconds is not None:
        command += ["--max-batching-window", str(max_batching_window_seconds)]
    if snapshot_interval is not None:
        command += ["--snapshot-interval", str(snapshot_interval)]
    if paused:
        command.append("--paused")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH")]))
    log_path = state_path / LOG_FILE
    with log_path.open("ab") as log:
        child = subprocess.Popen(  # noqa: S603
            command,
            cwd=root,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    _children[child.pid] = child
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        data = _read_state(state_path)
        if data is not None and int(data.get("pid", 0)) == child.pid:
            return dict(data["env"])
        if child.poll() is not None:
            _children.pop(child.pid, None)
            raise ServiceError(
                f"local AWS service exited with {child.returncode}:\n{_tail(log_path)}"
            )
        time.sleep(0.1)
    child.terminate()
    with contextlib.suppress(subprocess.TimeoutExpired):
        child.wait(10)
    raise ServiceError(f"local AWS service not ready after {timeout:.0f} s:\n{_tail(log_path)}")


def stop(state_dir: str | os.PathLike[str] = DEFAULT_STATE_DIR, *, timeout: float = 15.0) -> bool:
    """Stops the service recorded in ``state_dir``; returns whether one was running."""
    data = _read_state(state_dir)
    if data is None:
        return False
    pid = int(data.get("pid", 0))
    was_running = _is_service_process(pid)
    if was_running:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _is_service_process(pid) and time.monotonic() < deadline:
            _reap(pid)
            time.sleep(0.05)
        if _is_service_process(pid):
            os.kill(pid, signal.SIGKILL)
        child = _children.pop(pid, None)
        if child is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(5)
    _state_path(state_dir).unlink(missing_ok=True)
    return was_running


def load_state(state_dir: str | os.PathLike[str] = DEFAULT_STATE_DIR) -> ServiceState:
    """The running service's state; raises :class:`ServiceError` if it is not running."""
    state = status(state_dir)
    if state is None or not state.running:
        raise ServiceError(f"no local AWS service running (state dir {Path(state_dir)})")
    return state


def reset(state_dir: str | os.PathLike[str] = DEFAULT_STATE_DIR) -> bool:
    """Stops the service if it runs and deletes its saved data, so that the next start
    begins empty; returns whether there was saved data."""
    path = Path(state_dir)
    stop(path)
    return snapshot.remove(path) if path.exists() else False


def checkpoint(
    state_dir: str | os.PathLike[str] = DEFAULT_STATE_DIR, *, timeout: float = 300.0
) -> dict[str, Any] | None:
    """Makes the service snapshot what it has accepted so far; returns the snapshot's
    description (``SnapshotInfo.to_dict()``)."""
    answer = snapshot.control(load_state(state_dir).endpoint_url, "flush", timeout=timeout)
    return None if answer is None else answer.get("snapshot")


def drain(state_dir: str | os.PathLike[str] = DEFAULT_STATE_DIR, *, timeout: float = 30.0) -> None:
    """Waits, from any process, until every queue the service polls is empty."""
    state = load_state(state_dir)
    urls = [m.queue_url for m in state.stack.event_source_mappings if m.queue_url and m.enabled]
    drain_queues(
        urls,
        timeout=timeout,
        endpoint_url=state.endpoint_url,
        region=state.region,
        credentials=state.credentials,
    )


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


# -- the service process ---------------------------------------------------------------------


def serve(
    *,
    port: int,
    state_dir: str | os.PathLike[str],
    template_dir: str | os.PathLike[str],
    stack_name: str | None = None,
    project_root: str | os.PathLike[str] | None = None,
    synth_if_missing: bool = False,
    max_batching_window_seconds: int | None = None,
    durable: bool = True,
    snapshot_interval: float = 2.0,
    pollers: bool = True,
) -> None:
    """Runs in the foreground until SIGTERM/SIGINT: moto, the deployed stack, the pollers
    (``pollers=False``: none started). ``durable``: restore the state dir's snapshot and
    keep taking snapshots there."""
    state_path = Path(state_dir).resolve()
    state_path.mkdir(parents=True, exist_ok=True)
    stopping = threading.Event()

    def request_stop(signum: int, frame: Any) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    root = Path(project_root or REPO_ROOT).resolve()
    templates = Path(template_dir)
    try:
        find_stack(templates, stack_name)
    except Exception:
        if not synth_if_missing:
            raise
        LOG.info("no template in %s: synthesizing %s/app.py", templates, root)
        synth(root)
    with LocalAws(
        port=port,
        code_root=root,
        max_batching_window_seconds=max_batching_window_seconds,
        state_dir=state_path if durable else None,
        snapshot_interval=snapshot_interval,
        function_workers=True,
    ) as aws:
        stack = aws.deploy(templates, stack_name=stack_name, start_pollers=pollers)
        state = ServiceState(
            pid=os.getpid(),
            endpoint_url=aws.endpoint_url,
            region=aws.region,
            account_id=aws.account_id,
            env=aws.env,
            stack=stack,
            started_at=datetime.now(UTC).isoformat(timespec="seconds"),
            template_dir=str(templates.resolve()),
            log_file=str(state_path / LOG_FILE),
            restored=aws.restored.to_dict() if aws.restored is not None else None,
            restore_error=aws.restore_error,
        )
        _write_state(state_path, state)
        LOG.info("ready on %s (stack %s)", aws.endpoint_url, stack.stack_name)
        try:
            stopping.wait()
        finally:
            data = _read_state(state_path)
            if data is not None and int(data.get("pid", 0)) == os.getpid():
                _state_path(state_path).unlink(missing_ok=True)
    LOG.info("stopped")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m {_MODULE}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve_parser = commands.add_parser("serve", help="run in the foreground")
    serve_parser.add_argument("--port", type=int, default=0)
    serve_parser.add_argument("--state-dir", default=str(DEFAULT_STATE_DIR))
    serve_parser.add_argument("--template-dir", default="cdk.out")
    serve_parser.add_argument("--stack-name")
    serve_parser.add_argument("--project-root")
    serve_parser.add_argument("--synth-if-missing", action="store_true")
    serve_parser.add_argument("--max-batching-window", type=int)
    serve_parser.add_argument("--no-durable", dest="durable", action="store_false")
    serve_parser.add_argument("--snapshot-interval", type=float, default=2.0)
    serve_parser.add_argument("--paused", dest="pollers", action="store_false")
    for name in ("start", "stop", "status", "reset"):
        sub = commands.add_parser(name)
        sub.add_argument("--state-dir", default=str(DEFAULT_STATE_DIR))
        if name == "start":
            sub.add_argument("--port", type=int, default=0)
            sub.add_argument("--template-dir", default="cdk.out")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=os.environ.get("LOG_LEVEL_LOCAL", "INFO"),
        format="%(asctime)s %(threadName)s %(name)s %(levelname)s %(message)s",
    )
    for noisy in ("botocore", "boto3", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if args.command == "serve":
        serve(
            port=args.port,
            state_dir=args.state_dir,
            template_dir=args.template_dir,
            stack_name=args.stack_name,
            project_root=args.project_root,
            synth_if_missing=args.synth_if_missing,
            max_batching_window_seconds=args.max_batching_window,
            durable=args.durable,
            snapshot_interval=args.snapshot_interval,
            pollers=args.pollers,
        )
    elif args.command == "start":
        env = start(args.state_dir, port=args.port, template_dir=args.template_dir)
        for key, value in env.items():
            print(f"export {key}={value}")
    elif args.command == "stop":
        print("stopped" if stop(args.state_dir) else "not running")
    elif args.command == "reset":
        print("saved data deleted" if reset(args.state_dir) else "no saved data")
    else:
        state = status(args.state_dir)
        if state is None:
            print("not started")
            return 1
        print(f"{'running' if state.running else 'dead'} pid={state.pid} {state.endpoint_url}")
        return 0 if state.running else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
