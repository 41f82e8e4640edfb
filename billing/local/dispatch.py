"""In-process Lambda dispatch: function name/ARN -> the real Python handler."""

from __future__ import annotations

import importlib
import json
import logging
import os
import site
import sys
import sysconfig
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from billing.local.stack import Function

LOG = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]

#: Variables that may legitimately differ between functions; they are set per function
#: while its handler module is imported instead of globally.
PER_FUNCTION_ENV = frozenset({"POWERTOOLS_SERVICE_NAME"})

Handler = Callable[[Any, Any], Any]


class HandlerImportError(ImportError):
    """A function's handler string does not lead to a callable."""


class EnvironmentConflictError(ValueError):
    """Two functions need different values for the same environment variable."""


class LambdaContext:
    """The subset of the Lambda runtime's context object handlers commonly use."""

    function_version = "$LATEST"
    identity = None
    client_context = None

    def __init__(
        self,
        *,
        function_name: str,
        invoked_function_arn: str,
        memory_limit_in_mb: int = 128,
        timeout_seconds: float = 3.0,
        aws_request_id: str | None = None,
    ) -> None:
        self.function_name = function_name
        self.invoked_function_arn = invoked_function_arn
        self.memory_limit_in_mb = memory_limit_in_mb
        self.aws_request_id = aws_request_id or str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = time.strftime("%Y/%m/%d/[$LATEST]") + uuid.uuid4().hex
        self._deadline = time.monotonic() + timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


@dataclass(frozen=True)
class RegisteredFunction:
    function: Function
    handler: Handler


def function_name_of(name_or_arn: str) -> str:
    """``arn:aws:lambda:r:a:function:name[:qualifier]`` or ``name[:qualifier]`` -> name."""
    if ":function:" in name_or_arn:
        name_or_arn = name_or_arn.split(":function:", 1)[1]
    return name_or_arn.split(":", 1)[0]


def merge_environments(functions: Iterable[Function]) -> dict[str, str]:
    """The union of the functions' environments; conflicting values are an error, except
    for :data:`PER_FUNCTION_ENV` (left out of the union when they differ)."""
    merged: dict[str, str] = {}
    owners: dict[str, str] = {}
    per_function: dict[str, set[str]] = {}
    for function in functions:
        for name, value in function.env.items():
            if name in PER_FUNCTION_ENV:
                per_function.setdefault(name, set()).add(value)
                continue
            if name in merged and merged[name] != value:
                raise EnvironmentConflictError(
                    f"{name}: {owners[name]} has {merged[name]!r} but {function.name} has {value!r}"
                )
            merged[name] = value
            owners[name] = function.name
    for name, values in per_function.items():
        if len(values) == 1:
            merged[name] = next(iter(values))
    return merged


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


class LambdaDispatcher:
    """Imports real handlers and invokes them with Lambda-shaped arguments."""

    def __init__(self, code_root: str | os.PathLike[str] | None = None) -> None:
        self.code_root = Path(code_root or REPO_ROOT).resolve()
        self._functions: dict[str, RegisteredFunction] = {}
        self._lock = threading.RLock()
        self._saved_env: dict[str, str | None] = {}
        self._owned_modules: set[str] = set()
        self._path_added = False

    # -- registration ----------------------------------------------------------------------

    def register_functions(self, functions: Iterable[Function]) -> None:
        """Sets the functions' merged environment in ``os.environ`` and imports their
        handlers. Functions that are not Python (e.g. CDK's own Node.js helpers) are left
        to moto."""
        python = [f for f in functions if f.runtime.startswith("python") or not f.runtime]
        with self._lock:
            known = [entry.function for entry in self._functions.values()]
            merged = merge_environments([*known, *python])
            for name, value in merged.items():
                self._saved_env.setdefault(name, os.environ.get(name))
                os.environ[name] = value
            for function in python:
                self.register(function)

    def register(self, function: Function) -> None:
        """Imports one function's handler and makes it reachable by name and ARN."""
        with self._lock:
            handler = self._import_handler(function)
            entry = RegisteredFunction(function, handler)
            self._functions[function.name] = entry
            LOG.debug("registered %s -> %s", function.name, function.handler)

    def _import_handler(self, function: Function) -> Handler:
        module_path, _, attribute = function.handler.rpartition(".")
        if not module_path or not attribute:
            raise HandlerImportError(f"{function.name}: bad handler {function.handler!r}")
        module_name = module_path.replace("/", ".")
        if not self._path_added and str(self.code_root) not in sys.path:
            sys.path.insert(0, str(self.code_root))
            self._path_added = True
        overrides = {
            name: function.env[name]
            for name in PER_FUNCTION_ENV
            if name in function.env and os.environ.get(name) != function.env[name]
        }
        saved = {name: os.environ.get(name) for name in overrides}
        before = set(sys.modules)
        try:
            os.environ.update(overrides)
            module = importlib.import_module(module_name)
        except Exception as error:
            raise HandlerImportError(
                f"{function.name}: cannot import {module_name!r} from {self.code_root}: {error}"
            ) from error
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
            self._owned_modules.update(self._modules_under_root(set(sys.modules) - before))
        handler = getattr(module, attribute, None)
        if not callable(handler):
            raise HandlerImportError(f"{function.name}: {function.handler!r} is not callable")
        return handler  # type: ignore[no-any-return]

    def _modules_under_root(self, names: set[str]) -> set[str]:
        """The handler code's own modules (not installed packages, even when the virtual
        environment lives under the code root: dropping a library's modules would leave
        half of it re-imported, e.g. fontTools tables without their subsetting methods)."""
        libraries = {
            Path(p).resolve() for p in [*site.getsitepackages(), sysconfig.get_paths()["purelib"]]
        }
        owned = set()
        for name in names:
            file = getattr(sys.modules.get(name), "__file__", None)
            if not file:
                continue
            path = Path(file).resolve()
            if path.is_relative_to(self.code_root) and not any(
                path.is_relative_to(lib) for lib in libraries
            ):
                owned.add(name)
        return owned

    def forget(self) -> None:
        """Unregisters everything, restores the environment and drops the handler modules
        imported here, so a later runtime imports them afresh (with its own endpoint and
        environment)."""
        with self._lock:
            self._functions.clear()
            for name, value in self._saved_env.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
            self._saved_env.clear()
            for name in self._owned_modules:
                sys.modules.pop(name, None)
            self._owned_modules.clear()
            importlib.invalidate_caches()

    # -- invocation ------------------------------------------------------------------------

    def lookup(self, name_or_arn: str) -> RegisteredFunction | None:
        return self._functions.get(function_name_of(name_or_arn))

    @property
    def functions(self) -> dict[str, Function]:
        return {name: entry.function for name, entry in self._functions.items()}

    def invoke(self, name_or_arn: str, event: Any, *, request_id: str | None = None) -> Any:
        """Calls the handler of a registered function; handler exceptions propagate."""
        entry = self.lookup(name_or_arn)
        if entry is None:
            raise KeyError(f"no local handler registered for {name_or_arn!r}")
        function = entry.function
        context = LambdaContext(
            function_name=function.name,
            invoked_function_arn=function.arn,
            memory_limit_in_mb=function.memory_size,
            timeout_seconds=function.timeout,
            aws_request_id=request_id,
        )
        started = time.monotonic()
        try:
            return entry.handler(event, context)
        finally:
            elapsed = time.monotonic() - started
            LOG.debug("%s %s took %.3f s", function.name, context.aws_request_id, elapsed)
            if elapsed > function.timeout:
                LOG.warning(
                    "%s ran %.1f s, longer than its %d s timeout (not enforced locally)",
                    function.name,
                    elapsed,
                    function.timeout,
                )

    def invoke_payload(self, name_or_arn: str, payload: bytes | str | None) -> tuple[bytes, bool]:
        """Invokes with a JSON payload the way the Lambda service does; returns the response
        payload and whether it is a function error (``X-Amz-Function-Error: Unhandled``)."""
        request_id = str(uuid.uuid4())
        try:
            event = json.loads(payload) if payload else {}
        except ValueError as error:
            return _error_payload("Runtime.InvalidPayload", str(error), request_id), True
        try:
            result = self.invoke(name_or_arn, event, request_id=request_id)
        except Exception as error:
            LOG.exception("%s failed", function_name_of(name_or_arn))
            return _error_payload(type(error).__name__, str(error), request_id, error), True
        try:
            return json.dumps(result, default=_json_default).encode(), False
        except (TypeError, ValueError) as error:
            return _error_payload("Runtime.MarshalError", str(error), request_id), True


def _handler_frames(error: BaseException) -> traceback.StackSummary:
    """The traceback from the handler down, without this module's own frames."""
    frames = traceback.extract_tb(error.__traceback__)
    here = str(Path(__file__).resolve())
    return traceback.StackSummary.from_list(
        [frame for frame in frames if str(Path(frame.filename).resolve()) != here]
    )


def _error_payload(
    error_type: str, message: str, request_id: str, error: BaseException | None = None
) -> bytes:
    document: dict[str, Any] = {
        "errorMessage": message,
        "errorType": error_type,
        "requestId": request_id,
        "stackTrace": traceback.format_list(_handler_frames(error)) if error else [],
    }
    return json.dumps(document).encode()
