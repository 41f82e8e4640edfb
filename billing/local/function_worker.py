"""A function worker of the embedded runtime (``billing.local.workers``): runs Lambda
handlers in a process of its own, as the Lambda service runs a function in a sandbox of
its own, and sends their AWS requests to the runtime over its pipe.

    python billing/local/function_worker.py CODE_ROOT ENDPOINT_URL LOG_FILE

Started by the runtime with the runtime's environment (its endpoint, credentials and the
deployed functions' variables). It reads messages on stdin and writes messages on stdout,
each a length-prefixed pickle:

* ``("invoke", function, payload)`` in: invoke the handler of ``function`` (a
  ``billing.local.stack.Function``) with the JSON ``payload`` as the runtime's dispatcher
  does (``LambdaDispatcher``: the same context, the same error payloads); answered by
  ``("result", response_payload, function_error)``. ``("register", function, None)``
  imports the handler only (the runtime starts its workers warm).
* While a handler runs, each of its requests to ``ENDPOINT_URL`` goes out as
  ``("request", environ, body)`` (the WSGI environ ``InProcessTransport`` builds, without
  its streams) and waits for ``("response", status, headers, body)``: the runtime answers
  it with its own application, as it answers an in-process call. No HTTP, no signing.

What the handlers print goes to ``LOG_FILE`` (``-``: the runtime's standard error, which
``billing local start`` sends to its log). Exits when stdin closes (the runtime ended,
even by ``kill -9``).
"""

from __future__ import annotations

import os
import pickle
import struct
import sys
import threading
from typing import IO, Any

HEADER = struct.Struct(">Q")


def read_message(stream: IO[bytes]) -> Any:
    """The next message, ``None`` at the end of the stream."""
    header = _read(stream, HEADER.size)
    if header is None:
        return None
    body = _read(stream, HEADER.unpack(header)[0])
    return None if body is None else pickle.loads(body)  # noqa: S301 - runtime <-> its worker


def write_message(stream: IO[bytes], message: Any) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(HEADER.pack(len(data)) + data)
    stream.flush()


def _read(stream: IO[bytes], size: int) -> bytes | None:
    chunks, left = [], size
    while left:
        chunk = stream.read(left)
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


class _Forwarding:
    """The WSGI application the worker's in-process transport calls: each request goes to
    the runtime over the pipe, one at a time."""

    def __init__(self, requests: IO[bytes], replies: IO[bytes]) -> None:
        self.requests = requests
        self.replies = replies
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        body = environ["wsgi.input"].read()
        plain = {k: v for k, v in environ.items() if not k.startswith("wsgi.")}
        with self._lock:
            write_message(self.replies, ("request", plain, body))
            reply = read_message(self.requests)
        if reply is None:
            raise SystemExit(0)  # the runtime ended
        _, status, headers, content = reply
        start_response(status, headers)
        return [content]


def main(argv: list[str]) -> int:
    code_root, endpoint_url, log_file = argv[1], argv[2], argv[3]
    requests = sys.stdin.buffer
    replies = os.fdopen(os.dup(1), "wb")  # the protocol's; fd 1 and 2 go to the log
    if log_file == "-":  # the runtime's own error stream
        os.dup2(2, 1)
        sys.stdout = sys.stderr
    else:
        log = open(log_file, "a", encoding="utf-8", buffering=1)  # noqa: SIM115 (the process's)
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        sys.stdout = sys.stderr = log
    sys.path.insert(0, code_root)
    from billing.local import fastpaths
    from billing.local.clients import IN_PROCESS
    from billing.local.dispatch import LambdaDispatcher
    from billing.local.heap import freeze_loaded

    fastpaths.install_client()  # as in the runtime's process: the responses parse faster

    IN_PROCESS.register(endpoint_url, _Forwarding(requests, replies))
    dispatcher = LambdaDispatcher(code_root)
    while (message := read_message(requests)) is not None:
        kind, function, payload = message
        if dispatcher.lookup(function.name) is None:
            dispatcher.register(function)  # its module imported: the cold start
            freeze_loaded()  # kept for the worker's life, never rescanned
        if kind == "register":
            write_message(replies, ("result", b"", False))
            continue
        response, errored = dispatcher.invoke_payload(function.arn, payload)
        write_message(replies, ("result", response, errored))
    return 0


def serve(app: Any, environ: dict[str, Any], body: bytes) -> tuple[str, list[Any], bytes]:
    """A worker's request answered by ``app`` (the runtime's side)."""
    from billing.local.clients import call_wsgi, wsgi_streams

    return call_wsgi(app, {**environ, **wsgi_streams(body)})


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
