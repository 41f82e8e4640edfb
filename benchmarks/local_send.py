"""``billing send`` of N events to the embedded runtime, its intake consumers paused.

    python benchmarks/local_send.py --events 1000000 --every 100000

What it measures is the send side alone: the rate of every block of ``--every`` events
from the first to the last, as the intake queue fills to ``--events`` events (10 per
message, ``billing send``'s default since JSON Lines messages; one each before). The
runtime's ingest would share the CPU with the send; ``benchmarks/local_ingest.py`` measures
the two together.

* The runtime runs as ``billing local start`` runs it (``billing.local.service.start``:
  moto, the synthesized stack, durable snapshots every 2 s in its state dir, batching
  window 0), in a new temporary state dir, ``paused``: its pollers (the SQS intake
  consumer and the stream poller) are not started, so every event sent stays queued; its
  log has each snapshot's timings.
* ``--events`` lines of the reference mix (``billing.gen``, ``--accounts`` accounts,
  ``--seed``) are written to a JSON Lines file beside it.
* The file is sent by ``billing send FILE --no-wait --every N`` in a process of its own
  (the CLI's code path: the line count, 10 messages of 10 events per ``SendMessageBatch``
  over HTTP, SigV4), whose rate lines are printed as they come.
  ``--function``: sent with ``send_lines`` (what ``billing send`` calls) from this
  process instead, which also runs on commits whose ``billing send`` has no ``--every``.
* Per block, also printed: the CPU per event of the runtime and of the sender (``/proc``),
  the runtime's resident memory, the load average, and the snapshots the runtime took
  meanwhile (the longest time requests were held back while one was captured), read from
  its log.

The runtime is stopped and its temporary directory deleted at the end (``--keep-dir`` to
keep it).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent

_SNAPSHOT = re.compile(
    r"snapshot (\d+): .*?(\d[\d,]*) queued messages.*captured in ([\d.]+) s, written in ([\d.]+) s"
)
_BLOCK = re.compile(r"events\s+([\d,]+)-\s*([\d,]+):\s+([\d.]+) s \(([\d,]+)/s\)")


# ``billing.local.service``'s own entry, logging each snapshot's timings (debug level)
_SERVE_WITH_SNAPSHOT_TIMINGS = (
    "-c",
    "import logging, sys; "
    "logging.getLogger('billing.local.runtime').setLevel(logging.DEBUG); "
    "from billing.local.service import main; sys.exit(main(sys.argv[1:]))",
)


def _rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def _snapshots(log: Path, offset: int) -> tuple[list[tuple[int, float, float]], int]:
    """The snapshot lines the runtime logged after ``offset``: (messages, captured s,
    written s) each, and the new offset."""
    try:
        with log.open("rb") as stream:
            stream.seek(offset)
            text = stream.read().decode(errors="replace")
            offset = stream.tell()
    except OSError:
        return [], offset
    found = [
        (int(m[2].replace(",", "")), float(m[3]), float(m[4])) for m in _SNAPSHOT.finditer(text)
    ]
    return found, offset


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all threads."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class _Blocks:
    """One printed row per block of events: the rate, the CPU per event of the runtime
    and of the sender, the runtime's memory, the load average and the snapshots taken."""

    def __init__(self, runtime_pid: int, log: Path) -> None:
        self.runtime_pid = runtime_pid
        self.log = log
        _, self.offset = _snapshots(log, 0)
        self.runtime_cpu = _cpu_seconds(runtime_pid)
        self.sender_cpu = 0.0
        self.rows = 0

    def row(self, first: int, last: int, seconds: float, sender_cpu: float) -> None:
        found, self.offset = _snapshots(self.log, self.offset)
        held = max((c for _, c, _ in found), default=0.0)
        runtime_cpu = _cpu_seconds(self.runtime_pid)
        count = last - first + 1
        per_event = (
            f"{1000 * (runtime_cpu - self.runtime_cpu) / count:.2f}"
            f"+{1000 * (sender_cpu - self.sender_cpu) / count:.2f} ms"
        )
        self.runtime_cpu, self.sender_cpu = runtime_cpu, sender_cpu
        at = f" at {found[-1][0]:,} messages" if found else ""
        if not self.rows:
            print(
                f"{'events':>23} {'seconds':>8} {'rate':>9}  {'CPU runtime+sender':>18}"
                f"  {'runtime RSS':>11}  {'load 1m':>7}  snapshots (requests held: longest)"
            )
        self.rows += 1
        print(
            f"  {first:>9,}-{last:>11,} {seconds:8.1f} {count / seconds:7,.0f}/s  {per_event:>18}"
            f"  {_rss_mb(self.runtime_pid):8,.0f} MB  {os.getloadavg()[0]:7.2f}"
            f"  {len(found)} ({held:.2f} s{at})",
            flush=True,
        )


def _send_with_cli(events_file: Path, env: dict[str, str], every: int, blocks: _Blocks) -> int:
    """``billing send FILE --no-wait --every N`` in its own process; its rate lines become
    rows. Returns its exit code."""
    cli = Path(sys.executable).parent / "billing"
    command = [str(cli)] if cli.exists() else [sys.executable, "-m", "billing.cli.main"]
    command += ["send", str(events_file), "--no-wait", "--every", str(every)]
    print(f"$ billing send {events_file.name} --no-wait --every {every}", flush=True)
    started = time.monotonic()
    sender = subprocess.Popen(
        command,
        cwd=REPO,
        env={**env, "COLUMNS": "200"},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert sender.stdout is not None
    tail: list[str] = []
    for line in sender.stdout:
        block = _BLOCK.search(line)
        if block is None:
            if line.strip():
                tail.append(line.rstrip())
            continue
        first, last = (int(block[i].replace(",", "")) for i in (1, 2))
        blocks.row(first, last, float(block[3]), _cpu_seconds(sender.pid))
    code = sender.wait()
    elapsed = time.monotonic() - started
    for line in tail:
        print(f"  | {line}")
    print(f"billing send exited with {code} after {elapsed:.1f} s (its start included)")
    return code


def _send_in_process(events_file: Path, state: Any, every: int, blocks: _Blocks) -> int:
    """``send_lines`` (what ``billing send`` calls) from this process, timed per block."""
    os.environ.update(state.env)
    from billing.cli.operations import send_lines
    from billing.cli.stack import deployed

    queue_url = deployed().queue_url
    marks = [(0, time.monotonic())]

    def lines() -> Iterator[str]:
        with events_file.open(encoding="utf-8") as stream:
            for count, line in enumerate(stream, 1):
                yield line.rstrip("\n")
                if count % every == 0:
                    now = time.monotonic()
                    blocks.row(count - every + 1, count, now - marks[-1][1], time.process_time())
                    marks.append((count, now))

    print(f"send_lines(<intake queue>, {events_file.name}), in process", flush=True)
    blocks.sender_cpu = time.process_time()
    sent = send_lines(queue_url, lines())
    elapsed = time.monotonic() - marks[0][1]
    print(f"sent {sent:,} events in {elapsed:.1f} s ({sent / elapsed:,.0f}/s)")
    return 0


def _start_runtime(state_dir: Path) -> Any:
    """The runtime as ``billing local start`` starts it, its pollers paused, its log with
    the snapshots' timings."""
    from billing.local import service

    service.start(
        state_dir,
        template_dir=REPO / "cdk.out",
        project_root=REPO,
        max_batching_window_seconds=0,
        paused=True,
        entry=_SERVE_WITH_SNAPSHOT_TIMINGS,
        timeout=300,
    )
    return service.load_state(state_dir)


def _stop_runtime(state_dir: Path, timeout: float) -> float:
    """SIGTERM (a clean stop: the runtime takes its last snapshot), SIGKILL after
    ``timeout``; returns the seconds it took."""
    from billing.local import service

    started = time.monotonic()
    service.stop(state_dir, timeout=timeout)
    return time.monotonic() - started


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--accounts", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--period", default="2026-10")
    parser.add_argument("--every", type=int, default=100_000, help="rate block size")
    parser.add_argument("--keep-dir", action="store_true", help="keep the temporary dir")
    parser.add_argument(
        "--function",
        action="store_true",
        help="send with billing send's function (send_lines) in this process, not the CLI",
    )
    args = parser.parse_args(argv)

    sys.path.insert(0, str(REPO))
    from billing.gen.mix import write_jsonl

    work = Path(tempfile.mkdtemp(prefix="local-send-"))
    state_dir = work / "state"
    events_file = work / "events.jsonl"
    state: Any = None
    try:
        started = time.monotonic()
        written = write_jsonl(events_file, args.seed, args.events, args.period, args.accounts)
        size_mb = events_file.stat().st_size / 1e6
        print(
            f"generated {written:,} events ({size_mb:,.0f} MB) in "
            f"{time.monotonic() - started:.1f} s: {events_file}",
            flush=True,
        )

        base = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        base["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), base.get("PYTHONPATH")]))
        started = time.monotonic()
        state = _start_runtime(state_dir)
        print(
            f"runtime started in {time.monotonic() - started:.1f} s (pid {state.pid}, "
            f"{state.endpoint_url}, pollers paused), RSS {_rss_mb(state.pid):,.0f} MB",
            flush=True,
        )
        blocks = _Blocks(state.pid, Path(state.log_file))
        if args.function:
            code = _send_in_process(events_file, state, args.every, blocks)
        else:
            code = _send_with_cli(events_file, {**base, **state.env}, args.every, blocks)
        status_line = _queue_status(state)
        print(status_line)
        print(
            f"runtime RSS {_rss_mb(state.pid):,.0f} MB; load average "
            + " ".join(f"{x:.2f}" for x in os.getloadavg()),
            flush=True,
        )
        return code
    finally:
        if state is not None:
            seconds = _stop_runtime(state_dir, timeout=600)
            found, _ = _snapshots(state_dir / "service.log", 0)
            if found:
                biggest = max(found)
                print(
                    f"runtime stopped in {seconds:.1f} s; {len(found)} snapshots, the largest "
                    f"{biggest[0]:,} messages captured in {biggest[1]:.2f} s, written in "
                    f"{biggest[2]:.2f} s"
                )
        if args.keep_dir:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def _queue_status(state: Any) -> str:
    """The intake queue's depth and the runtime's last snapshot, after the send."""
    sqs = state.client("sqs")
    url = next(
        (u for lid, u in state.stack.queues.items() if "IntakeQueue" in lid),
        "",
    )
    depth = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])[
        "Attributes"
    ]["ApproximateNumberOfMessages"]
    try:
        from billing.local import snapshot
    except ImportError:  # a runtime without durable state
        return f"intake queue: {int(depth):,} messages"
    answer = snapshot.control(state.endpoint_url, "status") or {}
    last = json.dumps(answer.get("snapshot"))
    return f"intake queue: {int(depth):,} messages; last snapshot: {last}"


if __name__ == "__main__":
    sys.exit(main())
