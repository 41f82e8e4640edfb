#!/usr/bin/env python3
"""CDK entry point: ``python app.py`` (or ``npx cdk synth``) writes cdk.out/.

The stage and every other setting come from context: ``npx cdk synth -c stage=prod``.
cdk-nag's AWS Solutions checks run during synthesis; any unacknowledged finding fails it.
"""

import os

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

from infra.synth import build_app

if __name__ == "__main__":
    app, _ = build_app()
    app.synth()
