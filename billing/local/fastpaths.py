"""Two costs of moto that the month close pays locally and AWS does not.

* **DynamoDB Query reads the whole table.** moto 5.2 answers a Query on a table's key by
  comparing the hash key of every item of the table, then sorting the matches: its
  latency grows with the table (about 90 ms per Query at 4,000 items, seconds at 100k),
  while the close makes a few Queries per storage shard of every account. A Query on the
  table's own key is narrowed to the queried partition (moto keeps items by hash key):
  same items, same order, same pages.
* **Step Functions builds a new boto3 client for every task.** moto's interpreter calls
  ``boto3.client(...)`` (service model loading, a new connection pool and connection)
  for each Lambda task it runs. One client per service, region and endpoint is kept
  instead (botocore clients are thread safe), with the settings moto gives them (no
  retries, no client-side validation, moto's timeouts) and a pool for concurrent Maps.

``install()`` / ``uninstall()`` are idempotent and process wide, like the runtime's other
patches (``billing.local.patches``).
"""

from __future__ import annotations

import importlib
import pkgutil
import threading
from collections.abc import Callable
from typing import Any

_partition = threading.local()
_lock = threading.Lock()
_clients: dict[tuple[str, str, str], Any] = {}
_saved: list[tuple[Any, str, Any]] = []


def install() -> None:
    if _saved:
        return
    _index_queries()
    _reuse_task_clients()


def uninstall() -> None:
    while _saved:
        owner, name, original = _saved.pop()
        setattr(owner, name, original)
    with _lock:
        _clients.clear()


def _replace(owner: Any, name: str, replacement: Any) -> None:
    _saved.append((owner, name, getattr(owner, name)))
    setattr(owner, name, replacement)


def _index_queries() -> None:
    from moto.dynamodb.models.table import Table

    full_table = Table.all_items
    query = Table.query

    def all_items(self: Any) -> Any:
        current = getattr(_partition, "value", None)
        if current is not None and current[0] is self:
            return list(current[1].values())
        return full_table(self)

    def query_partition(self: Any, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
        # Table.query(hash_key, range_comparison, range_objs, limit, exclusive_start_key,
        #             scan_index_forward, projection_expressions, index_name=None, ...)
        index_name = kwargs.get("index_name", args[6] if len(args) > 6 else None)
        if index_name or hash_key is None or not self.range_key_attr:
            return query(self, hash_key, *args, **kwargs)
        _partition.value = (self, self.items.get(hash_key, {}))
        try:
            return query(self, hash_key, *args, **kwargs)
        finally:
            _partition.value = None

    _replace(Table, "all_items", all_items)
    _replace(Table, "query", query_partition)


def _reuse_task_clients() -> None:
    from moto.stepfunctions.parser.asl import component
    from moto.stepfunctions.parser.asl.utils import boto_client

    original: Callable[..., Any] = boto_client.boto_client_for

    def boto_client_for(region: str, service: str, state_credentials: Any = None) -> Any:
        from moto.core.models import botocore_stubber

        if botocore_stubber.enabled:  # in-process mock_aws: moto's own way
            return original(region, service, state_credentials)
        key = (region, service, _endpoint())
        with _lock:
            if key not in _clients:
                _clients[key] = _task_client(region, service, key[2])
            return _clients[key]

    _replace(boto_client, "boto_client_for", boto_client_for)
    # the interpreter's modules imported the function by name
    for info in pkgutil.walk_packages(component.__path__, f"{component.__name__}."):
        module = importlib.import_module(info.name)
        if getattr(module, "boto_client_for", None) is original:
            _replace(module, "boto_client_for", boto_client_for)


def _endpoint() -> str:
    from moto.settings import moto_server_port

    return f"http://127.0.0.1:{moto_server_port()}"


def _task_client(region: str, service: str, endpoint: str) -> Any:
    """What moto's ``boto_client_for`` builds, once, with a pool for concurrent Map items."""
    import boto3
    from botocore.config import Config
    from moto.stepfunctions.parser.asl.component.common.timeouts.timeout import (
        TimeoutSeconds,
    )

    return boto3.session.Session().client(
        service,
        region_name=region,
        endpoint_url=endpoint,
        aws_access_key_id="ak",
        aws_secret_access_key="sk",  # noqa: S106 - moto's fake credentials
        config=Config(
            parameter_validation=False,
            retries={"max_attempts": 0, "total_max_attempts": 1},
            connect_timeout=TimeoutSeconds.DEFAULT_TIMEOUT_SECONDS,
            read_timeout=TimeoutSeconds.DEFAULT_TIMEOUT_SECONDS,
            max_pool_connections=64,
        ),
    )
