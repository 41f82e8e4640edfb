"""boto3's DynamoDB resources, made safe to share between threads.

A boto3 DynamoDB resource turns ``Key``/``Attr`` conditions into expression strings with
one placeholder counter per resource (``TransformationInjector``): every call resets it,
then numbers the names and values it builds. Two threads building at once share the
counter, so one placeholder can be given to two attributes: ``(#n0 = :v0 AND #n0 >= :v0)``
is a Query moto or DynamoDB refuses ("missed key schema element"), and
``(#n0 = :v0 AND #n1 >= :v0)`` is a valid Query on the wrong value that silently returns
too little. One invocation per Lambda environment never builds two at once, but the
embedded runtime runs the invocations of a Map in threads of one process (the close
units of several accounts share the handler module's store), and a handler may use a
thread pool itself.

``install()`` makes each injection of condition expressions atomic (a process-wide lock
around a few microseconds of string building). It is idempotent and applied on import
of :mod:`billing.adapters.store`, before any resource registers its handlers.
"""

from __future__ import annotations

import threading
from typing import Any

from boto3.dynamodb.transform import TransformationInjector

_LOCK = threading.Lock()
_MARK = "_billing_atomic"


def install() -> None:
    original = TransformationInjector.inject_condition_expressions
    if getattr(original, _MARK, False):
        return

    def inject_condition_expressions(
        self: TransformationInjector, params: Any, model: Any, **kwargs: Any
    ) -> None:
        with _LOCK:
            original(self, params, model, **kwargs)

    setattr(inject_condition_expressions, _MARK, True)
    inject_condition_expressions.__doc__ = original.__doc__
    TransformationInjector.inject_condition_expressions = inject_condition_expressions
