"""boto3 clients for the local runtime's own calls, and the in-process transport.

The handlers, the pollers and the state machine run in the process that runs moto's
server, and call it with plain boto3 over HTTP on loopback. :class:`InProcessTransport`
answers the calls of :data:`IN_PROCESS_SERVICES` without the network: a botocore
``before-send`` hook hands the request straight to the server's WSGI application in the
calling thread. The application is the one behind the socket (moto's dispatcher and
whatever middleware the runtime puts in front of it), so the answer is the same; only the
HTTP round trip (serialising a request on a socket, a server thread parsing it, and back)
is skipped. No call to the runtime from its own process is signed (moto checks no
signature): a ``before-call`` hook marks them unsigned and gives them the
``Authorization`` header moto reads the caller's account and region from, without the
SigV4 computation. Clients in other processes, and calls to any other endpoint, still use
HTTP and SigV4; the handlers' code does not change (the same boto3 calls reach AWS when
deployed).
"""

from __future__ import annotations

import io
import os
import sys
import threading
from typing import Any
from urllib.parse import unquote, urlsplit

import boto3
from botocore.awsrequest import AWSResponse, HeadersDict
from botocore.config import Config
from botocore.handlers import BUILTIN_HANDLERS

DEFAULT_REGION = "us-east-1"

_CONFIG = Config(retries={"max_attempts": 2, "mode": "standard"}, read_timeout=60)
_CLIENTS: dict[tuple[str, str | None, str, tuple[str, str] | None], Any] = {}
_LOCK = threading.Lock()


def aws_client(
    service: str,
    *,
    endpoint_url: str | None = None,
    region: str | None = None,
    credentials: tuple[str, str] | None = None,
) -> Any:
    """A (cached, thread-safe) client for ``service``; endpoint, region and credentials
    default to the process environment (``AWS_ENDPOINT_URL``, ``AWS_DEFAULT_REGION``...),
    which :class:`billing.local.LocalAws` sets."""
    endpoint = endpoint_url or os.environ.get("AWS_ENDPOINT_URL")
    region_name = region or os.environ.get("AWS_DEFAULT_REGION") or DEFAULT_REGION
    key = (service, endpoint, region_name, credentials)
    with _LOCK:
        client = _CLIENTS.get(key)
        if client is None:
            access_key, secret_key = credentials or (None, None)
            client = boto3.session.Session(
                aws_access_key_id=access_key, aws_secret_access_key=secret_key
            ).client(service, endpoint_url=endpoint, region_name=region_name, config=_CONFIG)
            _CLIENTS[key] = client
        return client


#: Services whose calls to a registered endpoint are answered in-process: the ingest path
#: (SQS receive/delete, DynamoDB writes) and the close's reads and documents
#: (S3). Lambda and Step Functions calls keep the socket: answered in the calling thread,
#: a Lambda invocation runs its handler nested in the interpreter's task thread, and the
#: close measured a quarter more CPU that way (docs/local-runtime.md).
IN_PROCESS_SERVICES = frozenset({"dynamodb", "sqs", "s3", "eventbridge", "secrets-manager"})

#: Date of the credential scope in the ``Authorization`` header of unsigned local calls
#: (moto reads the access key and the region from it, nothing else).
_SCOPE_DATE = "20260101"


class _Body(io.BytesIO):
    """A response body botocore can read or stream."""

    def stream(self, **kwargs: Any) -> Any:
        while chunk := self.read(65536):
            yield chunk


def _request_body(body: Any) -> bytes:
    if body is None:
        return b""
    if isinstance(body, bytes | bytearray):
        return bytes(body)
    if isinstance(body, str):
        return body.encode("utf-8")
    data = body.read()
    if hasattr(body, "seek"):
        body.seek(0)
    return data if isinstance(data, bytes) else str(data).encode("utf-8")


class InProcessTransport:
    """botocore ``before-send`` hook: requests for a registered ``host:port`` are passed to
    that endpoint's WSGI application in the calling thread (see the module docstring)."""

    def __init__(self) -> None:
        self.dynamodb_lock = threading.RLock()
        self._apps: dict[str, Any] = {}
        self.calls = 0  # every thread's
        self._thread = threading.local()

    @property
    def thread_calls(self) -> int:
        """The calls answered in-process for the calling thread (pollers run in others)."""
        return int(getattr(self._thread, "calls", 0))

    def register(self, endpoint_url: str, app: Any) -> None:
        """Answers this endpoint's calls in-process from now on, unless the environment
        says ``BILLING_LOCAL_IN_PROCESS=0`` (every call over HTTP, e.g. to compare)."""
        if os.environ.get("BILLING_LOCAL_IN_PROCESS", "1") == "0":
            return
        netloc = urlsplit(endpoint_url).netloc
        host, _, port = netloc.rpartition(":")
        self._apps[netloc] = app
        if host in ("127.0.0.1", "localhost"):
            self._apps[f"{'localhost' if host == '127.0.0.1' else '127.0.0.1'}:{port}"] = app
        default = boto3.DEFAULT_SESSION
        if default is not None:
            events = default._session.get_component("event_emitter")
            events.unregister("before-send", self)
            events.register("before-send", self)
            events.unregister("before-call", self.unsigned)
            events.register("before-call", self.unsigned)

    def unsigned(
        self, params: Any = None, request_signer: Any = None, context: Any = None, **kwargs: Any
    ) -> None:
        """botocore ``before-call`` hook: a call that will be answered in-process is not
        signed; it carries the header moto reads the account (from the access key) and
        the region from, as a signed one would."""
        if not self._apps or params is None or context is None:
            return
        if urlsplit(str(params.get("url", ""))).netloc not in self._apps:
            return
        credentials = getattr(request_signer, "_credentials", None)
        access_key = getattr(credentials, "access_key", None) or "testing"
        signing = context.get("signing") or {}
        region = signing.get("region") or context.get("client_region") or DEFAULT_REGION
        name = signing.get("signing_name") or getattr(request_signer, "_signing_name", "")
        context["auth_type"] = "none"
        params.setdefault("headers", {})["Authorization"] = (
            f"AWS4-HMAC-SHA256 Credential={access_key}/{_SCOPE_DATE}/{region}/{name}"
            "/aws4_request, SignedHeaders=host, Signature=0"
        )

    def unregister(self, endpoint_url: str) -> None:
        netloc = urlsplit(endpoint_url).netloc
        port = netloc.rpartition(":")[2]
        for name in (netloc, f"localhost:{port}", f"127.0.0.1:{port}"):
            self._apps.pop(name, None)

    def __call__(self, request: Any, event_name: str = "", **kwargs: Any) -> AWSResponse | None:
        if not self._apps:
            return None
        parts = urlsplit(request.url)
        app = self._apps.get(parts.netloc)
        service = event_name.split(".")[1] if event_name.count(".") >= 2 else ""
        if app is None or service not in IN_PROCESS_SERVICES:
            return None
        self.calls += 1
        self._thread.calls = self.thread_calls + 1
        if service == "dynamodb":  # moto's tables are not thread-safe: one call at a time
            with self.dynamodb_lock:
                return self._call(app, request, parts)
        return self._call(app, request, parts)

    @staticmethod
    def _call(app: Any, request: Any, parts: Any) -> AWSResponse:
        body = _request_body(request.body)
        host, _, port = parts.netloc.rpartition(":")
        environ: dict[str, Any] = {
            "REQUEST_METHOD": request.method,
            "SCRIPT_NAME": "",
            "PATH_INFO": unquote(parts.path) or "/",
            "RAW_URI": parts.path + (f"?{parts.query}" if parts.query else ""),
            "REQUEST_URI": parts.path + (f"?{parts.query}" if parts.query else ""),
            "QUERY_STRING": parts.query,
            "SERVER_NAME": host,
            "SERVER_PORT": port,
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": "127.0.0.1",
            "REMOTE_PORT": 0,
            "CONTENT_LENGTH": str(len(body)),
            **wsgi_streams(body, parts.scheme or "http"),
        }
        for name, value in request.headers.items():
            text = value.decode("latin-1") if isinstance(value, bytes) else str(value)
            key = name.upper().replace("-", "_")
            if key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
                environ[key] = text
            else:
                environ[f"HTTP_{key}"] = text
        environ.setdefault("HTTP_HOST", parts.netloc)
        status, headers, content = call_wsgi(app, environ)
        response_headers = HeadersDict()
        for name, value in headers:
            response_headers[name] = value
        return AWSResponse(request.url, int(status.split()[0]), response_headers, _Body(content))


def wsgi_streams(body: bytes, scheme: str = "http") -> dict[str, Any]:
    """The WSGI keys of a request's environ besides its HTTP ones (its body's stream)."""
    return {
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scheme,
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }


def call_wsgi(app: Any, environ: dict[str, Any]) -> tuple[str, list[tuple[str, str]], bytes]:
    """``app``'s answer to ``environ``: status line, headers, body."""
    started: list[Any] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc: Any = None) -> Any:
        started[:] = [status, headers]
        return lambda data: None

    result = app(environ, start_response)
    try:
        content = b"".join(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    return str(started[0]), list(started[1]), content


def serialized_dynamodb(app: Any) -> Any:
    """``app`` (moto's WSGI application) answering DynamoDB and DynamoDB Streams requests
    one at a time, whichever thread sends them: moto's tables are not thread-safe, and
    requests arrive from the socket's threads (the CLI, function workers) as well as in
    process (``InProcessTransport``, which holds the same lock)."""

    def application(environ: dict[str, Any], start_response: Any) -> Any:
        if str(environ.get("HTTP_X_AMZ_TARGET", "")).startswith("DynamoDB"):
            with IN_PROCESS.dynamodb_lock:
                return list(app(environ, start_response))
        return app(environ, start_response)

    return application


#: The process's transport; inert until an endpoint is registered.
IN_PROCESS = InProcessTransport()
BUILTIN_HANDLERS.append(("before-send", IN_PROCESS))
BUILTIN_HANDLERS.append(("before-call", IN_PROCESS.unsigned))
