"""The `ecsrole` command: `run` starts the operator, `check-config` validates a configuration."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from ecsrole import __version__
from ecsrole import config as config_module

DEFAULT_CONFIG_PATH = "/etc/ecsrole/config.yaml"


def _env(name: str, default: str) -> str:
    return os.environ.get(name, default) or default


def _address(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {value!r}")
    return host or "0.0.0.0", int(port)  # noqa: S104 - in-cluster default, like any exporter


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ecsrole",
        description="Keeps AWS ECS task execution IAM roles exactly as EcsExecutionRole resources declare them.",
    )
    parser.add_argument("--version", action="version", version=f"ecsrole {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser(
        "run",
        help="run the operator",
        description="Run the operator against the cluster in KUBECONFIG (or in-cluster) and AWS "
        "(standard AWS credential chain). Every flag has an environment variable.",
    )
    run.add_argument(
        "--config",
        default=_env("ECSROLE_CONFIG", DEFAULT_CONFIG_PATH),
        help=f"operator configuration file (env ECSROLE_CONFIG, default {DEFAULT_CONFIG_PATH})",
    )
    run.add_argument(
        "--metrics-address",
        type=_address,
        default=_address(_env("ECSROLE_METRICS_ADDRESS", "0.0.0.0:8080")),
        help="HOST:PORT of the Prometheus /metrics endpoint (env ECSROLE_METRICS_ADDRESS, default 0.0.0.0:8080)",
    )
    run.add_argument(
        "--health-address",
        type=_address,
        default=_address(_env("ECSROLE_HEALTH_ADDRESS", "0.0.0.0:8081")),
        help="HOST:PORT of the liveness endpoint /healthz (env ECSROLE_HEALTH_ADDRESS, default 0.0.0.0:8081)",
    )
    run.add_argument(
        "--log-format",
        choices=("auto", "json", "console"),
        default=_env("ECSROLE_LOG_FORMAT", "auto"),
        help="auto: JSON lines unless stderr is a terminal (env ECSROLE_LOG_FORMAT)",
    )
    run.add_argument(
        "--log-level",
        default=_env("ECSROLE_LOG_LEVEL", "INFO"),
        help="DEBUG, INFO, WARNING or ERROR (env ECSROLE_LOG_LEVEL, default INFO)",
    )
    run.add_argument(
        "--namespace",
        action="append",
        default=[n for n in _env("ECSROLE_WATCH_NAMESPACES", "").split(",") if n],
        help="watch only this namespace (repeatable; env ECSROLE_WATCH_NAMESPACES, comma-separated); "
        "default: all namespaces",
    )
    run.add_argument(
        "--aws-workers",
        type=int,
        default=int(_env("ECSROLE_AWS_WORKERS", "16")),
        help="threads for AWS calls, so the event loop never blocks (env ECSROLE_AWS_WORKERS, default 16)",
    )

    check = commands.add_parser(
        "check-config",
        help="validate an operator configuration file",
        description="Validate an operator configuration file; every problem is printed with the field it concerns.",
    )
    check.add_argument("file", help="configuration file (YAML)")
    return parser


def _check_config(path: str) -> int:
    try:
        loaded = config_module.load_config(path)
    except config_module.ConfigError as error:
        print(f"{path}: invalid configuration", file=sys.stderr)
        for problem in error.errors:
            print(f"  - {problem}", file=sys.stderr)
        return 1
    print(f"{path}: valid ({len(loaded.accounts)} account(s), cluster {loaded.cluster_name})")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "check-config":
        return _check_config(args.file)
    from ecsrole import runtime  # kopf and boto3 load only when the operator runs

    return runtime.run(
        config_path=args.config,
        metrics_address=args.metrics_address,
        health_address=args.health_address,
        log_format=args.log_format,
        log_level=args.log_level,
        namespaces=tuple(args.namespace),
        aws_workers=args.aws_workers,
    )


if __name__ == "__main__":
    sys.exit(main())
