"""``billing.local.deploy.Synthesis``: the CDK app runs in its own process while the
caller goes on (``billing demo`` starts the runtime meanwhile); its failure, or its
running too long, is a ``DeployError`` with what it printed."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from billing.local.deploy import DeployError, Synthesis, synth


def _project(tmp_path: Path, app: str) -> Path:
    (tmp_path / "app.py").write_text(app)
    return tmp_path


def test_the_app_runs_while_the_caller_goes_on(tmp_path: Path) -> None:
    root = _project(
        tmp_path,
        "import os, pathlib, time\n"
        "time.sleep(1)\n"
        "pathlib.Path(os.environ.get('CDK_OUTDIR', 'cdk.out')).mkdir()\n",
    )
    started = time.monotonic()
    synthesis = Synthesis(root)
    assert time.monotonic() - started < 0.5  # started, not waited for
    assert synthesis.result() == root / "cdk.out"
    assert (root / "cdk.out").is_dir()
    elsewhere = tmp_path / "out"
    assert synth(root, outdir=elsewhere) == elsewhere.resolve()


def test_a_failing_app_is_a_deploy_error_with_its_output(tmp_path: Path) -> None:
    root = _project(tmp_path, "import sys\nsys.stderr.write('no such construct')\nsys.exit(3)\n")
    with pytest.raises(DeployError, match=r"synthesis failed \(3\):\n.*no such construct"):
        Synthesis(root).result()


def test_an_app_running_too_long_is_stopped(tmp_path: Path) -> None:
    root = _project(tmp_path, "import time\ntime.sleep(60)\n")
    synthesis = Synthesis(root)
    with pytest.raises(DeployError, match=r"still running after 0\.5 s"):
        synthesis.result(timeout=0.5)
    assert synthesis.process.returncode is not None  # killed, not left behind


def test_a_project_without_an_app_is_refused_at_once(tmp_path: Path) -> None:
    with pytest.raises(DeployError, match="no CDK app"):
        Synthesis(tmp_path)
