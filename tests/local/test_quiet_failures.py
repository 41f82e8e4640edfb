"""A handler's failure on the local runtime is logged to the runtime's log file, not to the
CLI's output (the dispatcher reports it after the handler returned)."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import pytest

from billing.local import LocalAws

from . import template

pytestmark = pytest.mark.e2e


def test_a_failed_invocation_is_logged_to_the_log_file_only(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "runtime.log"
    dispatch_log = logging.getLogger("billing.local.dispatch")
    with LocalAws(log_file=log) as aws:
        aws.deploy(template.write_assembly(tmp_path / "assembly"))
        # what the CLI has: records reach sys.stderr (logging's last resort there)
        to_stderr = logging.StreamHandler(sys.stderr)
        dispatch_log.addHandler(to_stderr)
        try:
            capfd.readouterr()
            failed = aws.client("lambda").invoke(
                FunctionName=aws.stack.function("ExplodeFunction").arn, Payload=b'{"run": "api"}'
            )
            assert json.loads(failed["Payload"].read())["errorMessage"] == "exploded on purpose"
            out, err = capfd.readouterr()
        finally:
            dispatch_log.removeHandler(to_stderr)
    assert "exploded on purpose" not in out + err
    assert "ExplodeFunction" not in out + err
    assert "exploded on purpose" in log.read_text()
