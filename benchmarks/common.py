"""Shared pieces of the ingest and close benchmarks: moto on loopback, metering, plans.

Importing this module sets the environment the handlers read when *their* modules are
imported (powertools metrics off, log level WARNING, fake credentials), so the benchmark
scripts import it before anything from ``billing``.

The AWS services run in moto's ``ThreadedMotoServer`` on 127.0.0.1 and boto3 talks to it
over HTTP (``AWS_ENDPOINT_URL``), so ``time.thread_time()`` in the calling thread counts
the handler's own CPU (validation, hashing, boto3 serialization and HTTP) and none of
moto's request handling. By default the server runs in a child process: in this process's
threads it would put every stored item on this process's heap, and the cyclic garbage
collector, triggered by the handler's allocations, would bill the handler for traversing
moto's objects (seconds over 100k events) -- a cost a Lambda container, whose heap holds
one batch, does not have. ``moto_server(in_process=True)`` keeps the threads in-process.
"""

from __future__ import annotations

import hashlib
import logging
import multiprocessing
import os
import platform
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.update(
    {
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "benchmark",
        "AWS_SECRET_ACCESS_KEY": "benchmark",
        "POWERTOOLS_METRICS_DISABLED": "true",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_LOG_LEVEL": "WARNING",
        "LOG_LEVEL": "WARNING",
    }
)

REPO = Path(__file__).resolve().parent.parent
PLANS_DIR = REPO / "examples" / "plans"
TABLE = "usage"
REJECTS_BUCKET = "rejects"
INVOICE_BUCKET = "invoices"
BUS = "billing"
KEY = b"benchmark-pseudonymization-key-32"

# --- AWS list prices, us-east-1, on-demand (USD) -------------------------------------------
DDB_WRITE_PER_MILLION = 0.625  # per million write request units
DDB_READ_PER_MILLION = 0.125  # per million read request units
LAMBDA_REQUEST_PER_MILLION = 0.20
LAMBDA_GB_SECOND = 0.0000166667
SQS_REQUEST_PER_MILLION = 0.40  # standard queue, per request (64 KB chunk)
S3_PUT_PER_THOUSAND = 0.005


def cpu_model() -> str:
    try:
        for row in Path("/proc/cpuinfo").read_text().splitlines():
            if row.startswith("model name"):
                return row.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> list[str]:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return [
        f"python        {platform.python_version()} ({platform.python_implementation()})",
        f"cpu           {cpu_model()} ({cores} cores available)",
    ]


# --- moto ---------------------------------------------------------------------------------


def create_table(ddb: Any, name: str) -> Any:
    """The usage table as the CDK app defines it (``pk``/``sk`` strings, on demand)."""
    from billing.adapters.store import create_usage_table  # after the environment is set

    return create_usage_table(ddb, name)


@dataclass
class Aws:
    """boto3 handles on a moto server running in this process's other threads."""

    endpoint: str
    ddb: Any  # dynamodb resource
    table: Any
    s3: Any
    events: Any

    def new_table(self, name: str) -> Any:
        return create_table(self.ddb, name)

    def new_bucket(self, name: str) -> str:
        self.s3.create_bucket(Bucket=name)
        return name

    def drop(self, table: str) -> None:
        """Delete a table (moto keeps every item in memory)."""
        self.ddb.Table(table).delete()


def _serve(ports: Any) -> None:
    """Child process: moto's ThreadedMotoServer on a free loopback port until terminated."""
    from moto.server import ThreadedMotoServer

    from billing.local import fastpaths

    fastpaths.install()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no access log per request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    ports.put(server.get_host_and_port()[1])
    threading.Event().wait()


@contextmanager
def moto_server(in_process: bool = False) -> Iterator[Aws]:
    """Start ``ThreadedMotoServer`` on a free loopback port, in a child process (default)
    or in this process's threads, with the embedded runtime's fast paths
    (``billing.local.fastpaths``: a Query reads only the queried partition, as DynamoDB
    does, so benchmarks and the runtime measure the same moto); create the table, the
    buckets and the event bus; point boto3 at it."""
    import boto3
    from botocore.config import Config
    from moto.server import ThreadedMotoServer

    from billing.local import fastpaths

    child = None
    server = None
    if in_process:
        fastpaths.install()
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        port = server.get_host_and_port()[1]
    else:
        context = multiprocessing.get_context("spawn")
        ports = context.Queue()
        child = context.Process(target=_serve, args=(ports,), name="moto-server", daemon=True)
        child.start()
        port = int(ports.get(timeout=120))
    endpoint = f"http://127.0.0.1:{port}"
    previous = os.environ.get("AWS_ENDPOINT_URL")
    os.environ["AWS_ENDPOINT_URL"] = endpoint
    try:
        # As in functions/ingest: no client-side parameter validation of items we build.
        ddb = boto3.resource(
            "dynamodb", endpoint_url=endpoint, config=Config(parameter_validation=False)
        )
        table = create_table(ddb, TABLE)
        s3 = boto3.client("s3", endpoint_url=endpoint)
        for bucket in (REJECTS_BUCKET, INVOICE_BUCKET):
            s3.create_bucket(Bucket=bucket)
        events = boto3.client("events", endpoint_url=endpoint)
        events.create_event_bus(Name=BUS)
        yield Aws(endpoint, ddb, table, s3, events)
    finally:
        if previous is None:
            os.environ.pop("AWS_ENDPOINT_URL", None)
        else:
            os.environ["AWS_ENDPOINT_URL"] = previous
        if server is not None:
            server.stop()
        if child is not None:
            child.terminate()
            child.join(timeout=30)


# --- metering -----------------------------------------------------------------------------


def write_kind(item: Mapping[str, Any]) -> str:
    """What a written item is, by its key (docs/architecture.md, the key design)."""
    pk, sk = str(item["pk"]), str(item["sk"])
    if "adj" in item:
        return "late facts"
    if pk.startswith(("F#", "E#")):
        return "fact puts"
    if pk.startswith("P#") and sk.startswith("A#"):
        return "registry items"
    if pk.startswith("P#") and sk.startswith("ADJ#"):
        return "markers"
    return "other"


@dataclass
class Meter:
    """Counts API calls and the items/units written, from boto3's own events.

    ``provide-client-params`` sees the parameters as the caller passed them (Python values,
    before the DynamoDB resource copies them into typed JSON). The hook only keeps a
    reference to each item: ``settle()`` counts items and units, with ``item_write_units``
    as ``UsageStore`` does, outside any timed section, so metering adds next to nothing to
    the CPU time of the thread that makes the calls.
    """

    units_of: Callable[[Mapping[str, Any]], int]
    calls: Counter[str] = field(default_factory=Counter)
    items: Counter[str] = field(default_factory=Counter)
    units: Counter[str] = field(default_factory=Counter)
    pending: list[dict[str, Any]] = field(default_factory=list)

    def attach(self, client: Any) -> None:
        events = client.meta.events
        service = client.meta.service_model.service_name
        events.register(f"before-call.{service}", self._call)
        if service == "dynamodb":
            events.register("provide-client-params.dynamodb.BatchWriteItem", self._batch)
            events.register("provide-client-params.dynamodb.PutItem", self._put)

    def reset(self) -> None:
        for counter in (self.calls, self.items, self.units):
            counter.clear()
        self.pending.clear()

    def settle(self) -> None:
        """Count the items kept since the last call."""
        for item in self.pending:
            kind = write_kind(item)
            self.items[kind] += 1
            self.units[kind] += self.units_of(item)
        self.pending.clear()

    def _call(self, model: Any, **_: Any) -> None:
        self.calls[f"{model.service_model.service_name}.{model.name}"] += 1

    def _batch(self, params: Mapping[str, Any], **_: Any) -> None:
        for requests in params.get("RequestItems", {}).values():
            self.pending.extend(r["PutRequest"]["Item"] for r in requests if "PutRequest" in r)

    def _put(self, params: Mapping[str, Any], **_: Any) -> None:
        self.pending.append(params["Item"])


# --- traffic and plans --------------------------------------------------------------------


def sqs_event(bodies: Sequence[str], first: int) -> dict[str, Any]:
    """The event Lambda receives from an SQS event source, one record per body (records as
    the local runtime's poller builds them)."""
    from billing.local.poller import sqs_record  # after the environment is set

    records = []
    for i, body in enumerate(bodies, start=first):
        digest = hashlib.md5(body.encode("utf-8", "surrogateescape")).hexdigest()
        mid = f"{i:08d}-{digest[:8]}-bench"
        message = {
            "MessageId": mid,
            "ReceiptHandle": f"rh-{mid}",
            "Body": body,
            "Attributes": {
                "ApproximateReceiveCount": "1",
                "SentTimestamp": "1790000000000",
                "SenderId": "AIDABENCHMARK",
                "ApproximateFirstReceiveTimestamp": "1790000000000",
            },
            "MD5OfBody": digest,
        }
        records.append(
            sqs_record(
                message,
                event_source_arn="arn:aws:sqs:us-east-1:123456789012:intake",
                region="us-east-1",
            )
        )
    return {"Records": records}


def put_plans(store: Any, accounts: Sequence[str]) -> None:
    """Store a price plan for every account: the example plans, round-robin, billed in UTC
    (the benchmarks load facts in UTC periods and close one group; an example plan names
    Asia/Seoul)."""
    from billing.domain.plan import load_plan

    plans = [load_plan(p) for p in sorted(PLANS_DIR.glob("*.yaml"))]
    for i, account in enumerate(accounts):
        plan = plans[i % len(plans)]
        utc = plan.settings.model_copy(update={"time_zone": "UTC"})
        plan = plan.model_copy(update={"account": account, "settings": utc})
        store.put_plan(account, plan.effective_from, plan.model_dump(mode="json"))


def rename_account(line: str, old: str, new: str) -> str:
    """A generated line re-addressed to another account (``subject`` is the account)."""
    return line.replace(f'"subject":"{old}"', f'"subject":"{new}"', 1)


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1024 or unit == "GB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024
    return f"{n:,.1f} GB"
