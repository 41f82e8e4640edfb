"""The in-process moto fixtures of tests/pipeline, reused."""

from tests.pipeline.conftest import aws_env, env

__all__ = ["aws_env", "env"]
