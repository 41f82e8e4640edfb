"""The one code asset shared by every Lambda function of the stack, built without Docker.

CDK asks a local bundler first and only falls back to Docker when it declines, so
``LocalBundler.try_bundle`` always does the work: it copies the ``billing`` and
``functions`` packages into the asset folder and, with ``bundle_dependencies``, installs
the runtime dependencies for the Lambda platform (Python 3.12, x86_64, manylinux wheels
only) next to them. The Docker image named in the options is never pulled.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import jsii
from aws_cdk import aws_lambda as lambda_

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("billing", "functions")
# The AWS SDK comes with the Lambda Python runtime. It is not installed, and what other
# packages pull in of it is removed again: a bundled botocore would shadow the runtime's
# and no longer match the runtime's boto3.
PROVIDED_BY_RUNTIME = frozenset({"boto3", "botocore", "s3transfer"})
LAMBDA_PYTHON_VERSION = "3.12"
# Lambda's Python 3.12 runs on Amazon Linux 2023 (glibc 2.34), which accepts both tags.
LAMBDA_PLATFORMS = ("manylinux2014_x86_64", "manylinux_2_28_x86_64")

_IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo", ".mypy_cache", ".pytest_cache")
_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def runtime_requirements(pyproject: Path | None = None) -> list[str]:
    """``[project.dependencies]`` of pyproject.toml, less what the Lambda runtime provides."""
    path = pyproject or PROJECT_ROOT / "pyproject.toml"
    with path.open("rb") as handle:
        project = tomllib.load(handle)["project"]
    requirements: list[str] = []
    for requirement in project.get("dependencies", []):
        match = _NAME.match(requirement)
        if match is None:
            raise ValueError(f"cannot read the dependency {requirement!r} in {path}")
        name = match.group(1).lower().replace("_", "-")
        if name not in PROVIDED_BY_RUNTIME:
            requirements.append(requirement)
    return requirements


def pip_install_command(target: Path, requirements: list[str]) -> list[str]:
    platforms = [arg for platform in LAMBDA_PLATFORMS for arg in ("--platform", platform)]
    return [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-compile",
        "--target",
        str(target),
        *platforms,
        "--implementation",
        "cp",
        "--python-version",
        LAMBDA_PYTHON_VERSION,
        "--only-binary=:all:",
        *requirements,
    ]


def build_asset(output_dir: Path, *, install_dependencies: bool, root: Path = PROJECT_ROOT) -> None:
    """Fill ``output_dir`` with the Lambda code: our packages, optionally with dependencies."""
    output_dir.mkdir(parents=True, exist_ok=True)
    for package in PACKAGES:
        source = root / package
        if source.is_dir():
            shutil.copytree(source, output_dir / package, ignore=_IGNORED, dirs_exist_ok=True)
    if install_dependencies:
        requirements = runtime_requirements(root / "pyproject.toml")
        if requirements:
            subprocess.run(pip_install_command(output_dir, requirements), check=True)  # noqa: S603
            _prune(output_dir)


def _prune(output_dir: Path) -> None:
    """Drop the runtime-provided SDK and console scripts (useless in Lambda) from the asset."""
    doomed = [output_dir / "bin"]
    for name in PROVIDED_BY_RUNTIME:
        doomed.append(output_dir / name)
        doomed.extend(output_dir.glob(f"{name}-*.dist-info"))
    for path in doomed:
        if path.is_dir():
            shutil.rmtree(path)


@jsii.implements(cdk.ILocalBundling)
class LocalBundler:
    """CDK local bundling: builds the asset in-process, so no Docker is needed."""

    def __init__(self, *, install_dependencies: bool, root: Path = PROJECT_ROOT) -> None:
        self.install_dependencies = install_dependencies
        self.root = root

    def try_bundle(self, output_dir: str, *, image: cdk.DockerImage, **_options: Any) -> bool:
        build_asset(
            Path(output_dir), install_dependencies=self.install_dependencies, root=self.root
        )
        return True


def lambda_code(*, install_dependencies: bool, root: Path = PROJECT_ROOT) -> lambda_.Code:
    """The shared asset. Reuse the returned object for every function: one upload, one zip."""
    return lambda_.Code.from_asset(
        str(root),
        # Only these paths are fingerprinted to name the bundling folder; the asset's own
        # hash is taken from the bundled output, so a dependency change shows up too.
        exclude=[
            "*",
            *(f"!{package}" for package in PACKAGES),
            *(f"!{package}/**" for package in PACKAGES),
            "**/__pycache__",
            "**/*.pyc",
        ],
        ignore_mode=cdk.IgnoreMode.GLOB,
        asset_hash_type=cdk.AssetHashType.OUTPUT,
        bundling=cdk.BundlingOptions(
            image=cdk.DockerImage.from_registry("unused-local-bundling-only"),
            local=LocalBundler(install_dependencies=install_dependencies, root=root),
            # Part of the bundling options' fingerprint: switching the flag re-bundles.
            environment={"BUNDLE_DEPENDENCIES": "1" if install_dependencies else "0"},
        ),
    )
