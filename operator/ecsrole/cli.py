"""The `ecsrole` command: `run` starts the operator, `check-config` validates a configuration,
`diff` and `import` are the GitOps and brownfield tools (ecsrole.tools, docs/cli.md).

Importable without kopf or boto3: each command imports what it needs when it runs.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path

from ecsrole import __version__
from ecsrole import config as config_module
from ecsrole.leader import LeaseSettings

DEFAULT_CONFIG_PATH = "/etc/ecsrole/config.yaml"
SERVICE_ACCOUNT_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


def _env(name: str, default: str) -> str:
    return os.environ.get(name, default) or default


def _in_cluster_namespace() -> str:
    try:
        return Path(SERVICE_ACCOUNT_NAMESPACE).read_text().strip() or "default"
    except OSError:
        return "default"


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
        "--leader-election",
        action=argparse.BooleanOptionalAction,
        default=_env("ECSROLE_LEADER_ELECTION", "true").lower() == "true",
        help="run only while holding a coordination.k8s.io Lease, so replicas can stand by "
        "(env ECSROLE_LEADER_ELECTION, default true)",
    )
    run.add_argument(
        "--selector",
        type=_label_selector,
        default=os.environ.get("ECSROLE_WATCH_SELECTOR") or None,
        metavar="SELECTOR",
        help="serve only the EcsExecutionRoles whose labels match this Kubernetes label selector, "
        "e.g. ecsrole.dev/shard=team-a (the API server filters the watch); one operator per "
        "selector shards the resources, each with a Lease of its own (env ECSROLE_WATCH_SELECTOR; "
        "default: all)",
    )
    run.add_argument(
        "--lease-name",
        default=os.environ.get("ECSROLE_LEASE_NAME") or None,
        help="name of the Lease (env ECSROLE_LEASE_NAME, default ecsrole-leader, or with "
        "--selector ecsrole-leader-<hash of the selector>)",
    )
    run.add_argument(
        "--lease-namespace",
        default=_env("ECSROLE_LEASE_NAMESPACE", _env("POD_NAMESPACE", _in_cluster_namespace())),
        help="namespace of the Lease (env ECSROLE_LEASE_NAMESPACE, else POD_NAMESPACE, else the "
        "pod's own namespace, else default)",
    )
    run.add_argument(
        "--lease-duration",
        type=float,
        default=float(_env("ECSROLE_LEASE_DURATION", "15")),
        help="seconds a standby waits for a silent leader before taking over; the leader stops "
        "when it cannot renew within two thirds of it (env ECSROLE_LEASE_DURATION, default 15)",
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
    _add_tool_parsers(commands)
    return parser


def _label_selector(value: str) -> str:
    from ecsrole import selector

    try:
        selector.parse(value)
    except selector.SelectorError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return value.strip()


def _role_arn_template(value: str) -> str:
    from ecsrole.core import iam

    if "{account}" not in value:
        raise argparse.ArgumentTypeError(
            'must contain "{account}", e.g. arn:aws:iam::{account}:role/ecsrole-diff'
        )
    parsed = iam.parse_role_arn(value.replace("{account}", "123456789012"))
    if isinstance(parsed, str):
        raise argparse.ArgumentTypeError(f"not a role ARN once {{account}} is filled in: {parsed}")
    return value


def _add_tool_parsers(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`diff` and `import`: thin wiring; the logic is in ecsrole.tools (see docs/cli.md)."""
    template_help = (
        "assume this role in every account instead of the configuration's roleArn, e.g. "
        "arn:aws:iam::{account}:role/ecsrole-readonly (a read-only role for CI)"
    )
    diff = commands.add_parser(
        "diff",
        help="show the IAM changes the operator would make for EcsExecutionRole manifests",
        description="Judge EcsExecutionRole manifests against IAM as the operator would, without "
        "a cluster, and print the changes it would make and the refusals. Read-only. Exit "
        "status: 0 no changes, 2 changes or refusals, 1 error. See docs/cli.md.",
    )
    diff.add_argument(
        "-f",
        "--filename",
        dest="files",
        action="append",
        required=True,
        metavar="FILE_OR_DIR",
        help="manifest file, directory (read recursively) or - for stdin; repeatable",
    )
    diff.add_argument(
        "--config",
        metavar="FILE",
        default=_env("ECSROLE_CONFIG", DEFAULT_CONFIG_PATH),
        help=f"the operator's configuration file (env ECSROLE_CONFIG, default {DEFAULT_CONFIG_PATH})",
    )
    diff.add_argument(
        "-o",
        "--output",
        choices=("text", "json"),
        default="text",
        help="text for people, json for machines (apiVersion ecsrole.dev/diff/v1)",
    )
    diff.add_argument(
        "-n",
        "--namespace",
        default="default",
        help="namespace of manifests without metadata.namespace (default: default)",
    )
    diff.add_argument(
        "--role-arn-template", metavar="ARN", type=_role_arn_template, help=template_help
    )

    imp = commands.add_parser(
        "import",
        help="write EcsExecutionRole manifests for an account's existing ECS execution roles",
        description="Find the roles of an account that trust ecs-tasks.amazonaws.com and write "
        "one manifest per role (adopt: true, deletionPolicy: Retain, the role's current "
        "settings). Read-only. See docs/cli.md.",
    )
    imp.add_argument("--account", required=True, metavar="ID", help="12-digit AWS account id")
    imp.add_argument(
        "--config",
        metavar="FILE",
        default=os.environ.get("ECSROLE_CONFIG") or None,
        help="the operator's configuration file (env ECSROLE_CONFIG): how to reach the account, "
        "and the allow-lists the manifests are checked against",
    )
    imp.add_argument(
        "-n", "--namespace", default="default", help="metadata.namespace of the manifests"
    )
    imp.add_argument(
        "--output", metavar="DIR", help="write one file per role here (default: stdout)"
    )
    imp.add_argument(
        "--path-prefix",
        metavar="PATH",
        help="only roles under this IAM path (default: the account's rolePathPrefix, else /)",
    )
    imp.add_argument(
        "--role-arn-template", metavar="ARN", type=_role_arn_template, help=template_help
    )
    imp.add_argument("--force", action="store_true", help="overwrite existing files")


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
    if args.command == "diff":
        from ecsrole.tools import diff

        return diff.run(
            diff.DiffOptions(
                files=args.files,
                config_path=args.config,
                output=args.output,
                namespace=args.namespace,
                role_arn_template=args.role_arn_template,
            )
        )
    if args.command == "import":
        from ecsrole.tools import importer

        return importer.run(
            importer.ImportOptions(
                account_id=args.account,
                config_path=args.config,
                namespace=args.namespace,
                output_dir=args.output,
                path_prefix=args.path_prefix,
                role_arn_template=args.role_arn_template,
                force=args.force,
            )
        )
    from ecsrole import runtime  # kopf and boto3 load only when the operator runs

    lease = None
    if args.leader_election:
        from ecsrole import selector

        duration = args.lease_duration
        lease = LeaseSettings(
            namespace=args.lease_namespace,
            name=args.lease_name or selector.lease_name(args.selector),
            identity=f"{_env('POD_NAME', socket.gethostname())}_{uuid.uuid4().hex[:8]}",
            lease_duration=duration,
            renew_deadline=duration * 2 / 3,
            retry_period=max(0.5, duration / 7.5),
        )
    return runtime.run(
        lease=lease,
        config_path=args.config,
        metrics_address=args.metrics_address,
        health_address=args.health_address,
        log_format=args.log_format,
        log_level=args.log_level,
        namespaces=tuple(args.namespace),
        selector=args.selector,
        aws_workers=args.aws_workers,
    )


if __name__ == "__main__":
    sys.exit(main())
