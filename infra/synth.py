"""Build the CDK app: one ``Billing-{stage}`` stack, checked by cdk-nag on every synthesis."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aws_cdk as cdk

from infra.config import BillingConfig
from infra.nag import register_checks
from infra.stack import BillingStack, stack_name

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def project_context() -> dict[str, Any]:
    """The ``context`` of cdk.json (feature flags), also when synthesized without the CLI."""
    path = PROJECT_ROOT / "cdk.json"
    if not path.is_file():
        return {}
    context = json.loads(path.read_text(encoding="utf-8")).get("context", {})
    return dict(context) if isinstance(context, dict) else {}


def build_app(
    context: Mapping[str, Any] | None = None,
    *,
    outdir: str | None = None,
    nag: bool = True,
) -> tuple[cdk.App, BillingStack]:
    """The app and its stack. CLI context (``-c key=value``) overrides ``context``."""
    merged = {**project_context(), **(context or {})}
    app = cdk.App(context=merged, outdir=outdir or os.environ.get("CDK_OUTDIR") or "cdk.out")
    config = BillingConfig.from_node(app.node)
    stack = BillingStack(app, stack_name(config), config=config)
    if nag:
        register_checks(app)
    return app, stack
