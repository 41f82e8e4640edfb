"""Context parsing and the Lambda asset build: plain Python, no synthesis."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# ``tests/infra`` would otherwise be found as a namespace package ``infra`` first.
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

from billing import expiry  # noqa: E402
from billing.adapters.ids import IDS  # noqa: E402
from billing.domain.retention import HOT_MONTHS_FLOOR, TTL_MARGIN_DAYS  # noqa: E402
from infra import config as infra_config  # noqa: E402
from infra import expiry as infra_expiry  # noqa: E402
from infra.bundling import (  # noqa: E402
    build_asset,
    pip_install_command,
    runtime_requirements,
)
from infra.config import CONTEXT_KEYS, BillingConfig, ConfigError  # noqa: E402
from infra.storage import IDS_PREFIX  # noqa: E402

pytestmark = pytest.mark.infra


def test_the_app_and_the_functions_agree_on_shared_constants() -> None:
    """The CDK app does not import the functions' code: what both need is written twice."""
    assert infra_config.HOT_MONTHS_FLOOR == HOT_MONTHS_FLOOR
    assert infra_config.TTL_MARGIN_DAYS == TTL_MARGIN_DAYS
    assert infra_expiry.TTL_PRINCIPAL == expiry.TTL_PRINCIPAL
    assert IDS_PREFIX == IDS


def test_the_ttl_margin_outlasts_the_draft_days() -> None:
    """Invoices kept as drafts delay the final close, which archives: the items wait."""
    assert BillingConfig().ttl_margin_days == TTL_MARGIN_DAYS
    drafts = BillingConfig.from_mapping({"invoice_grace_days": "20"})
    assert drafts.ttl_margin_days == TTL_MARGIN_DAYS + 20


def test_defaults() -> None:
    config = BillingConfig.from_mapping({})
    assert config == BillingConfig()
    assert config.stage == "dev"
    assert config.retain_data is True
    assert config.intake_max_receives == 5
    assert config.ingest_batch_size == 100
    assert config.shards == 16
    assert config.settle_seconds == 120
    assert config.close_grace_hours == 6
    assert config.bundle_dependencies is False
    assert config.intake_visibility_timeout_seconds == 6 * 60 + 5
    assert config.rejects_retention_days == 30
    assert config.invoice_lock_mode == "GOVERNANCE"
    assert config.invoice_retention_years == 10
    assert config.finance_principal_arn == config.operator_principal_arn == ""
    for key, (default, _) in CONTEXT_KEYS.items():
        assert BillingConfig.from_mapping({key: default}) == config, key


def test_command_line_strings_are_parsed() -> None:
    config = BillingConfig.from_mapping(
        {
            "stage": "prod",
            "shards": "32",
            "bundle_dependencies": "true",
            "removal_policy": "DESTROY",
            "log_level": "debug",
            "ingest_reserved_concurrency": "0",
        }
    )
    assert config.stage == "prod"
    assert config.shards == 32
    assert config.bundle_dependencies is True
    assert config.retain_data is False
    assert config.log_level == "DEBUG"
    assert config.ingest_reserved_concurrency == 0


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("stage", "Prod"),
        ("stage", "prod_1"),
        ("shards", "many"),
        ("shards", "0"),
        ("close_grace_hours", "24"),
        ("removal_policy", "snapshot"),
        ("bundle_dependencies", "maybe"),
        ("finance_principal_arn", "123456789012"),
        ("operator_principal_arn", "operators"),
        ("invoice_lock_mode", "legal-hold"),
        ("invoice_retention_years", "0"),
        ("rejects_retention_days", "0"),
        ("log_retention_days", "42"),
        ("ingest_max_batching_window_seconds", "0"),
    ],
)
def test_bad_values_are_refused(key: str, value: str) -> None:
    with pytest.raises(ConfigError, match=key):
        BillingConfig.from_mapping({key: value})


def test_runtime_requirements_leave_out_boto3(tmp_path: Path) -> None:
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(
        '[project]\nname = "x"\ndependencies = ["boto3==1.0", "pydantic==2.0", '
        '"aws-lambda-powertools[tracer]==3.0"]\n',
        encoding="utf-8",
    )
    assert runtime_requirements(pyproject) == [
        "pydantic==2.0",
        "aws-lambda-powertools[tracer]==3.0",
    ]
    project = runtime_requirements()
    assert project
    assert not [r for r in project if r.lower().startswith("boto3")]


def test_pip_command_targets_the_lambda_platform(tmp_path: Path) -> None:
    command = pip_install_command(tmp_path, ["pydantic==2.0"])
    assert command[1:4] == ["-m", "pip", "install"]
    joined = " ".join(command)
    assert f"--target {tmp_path}" in joined
    assert "--platform manylinux2014_x86_64" in joined
    assert "--python-version 3.12" in joined
    assert "--only-binary=:all:" in joined
    assert command[-1] == "pydantic==2.0"


def test_build_asset_copies_the_packages_without_caches(tmp_path: Path) -> None:
    root = tmp_path / "project"
    (root / "billing" / "__pycache__").mkdir(parents=True)
    (root / "billing" / "__init__.py").write_text("", encoding="utf-8")
    (root / "billing" / "__pycache__" / "x.cpython-312.pyc").write_bytes(b"")
    (root / "functions" / "close").mkdir(parents=True)
    (root / "functions" / "close" / "handlers.py").write_text("", encoding="utf-8")
    (root / "tests").mkdir()
    (root / "tests" / "test_x.py").write_text("", encoding="utf-8")
    out = tmp_path / "out"
    build_asset(out, install_dependencies=False, root=root)
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert files == ["billing/__init__.py", "functions/close/handlers.py"]
