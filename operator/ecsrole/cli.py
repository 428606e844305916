"""The `ecsrole` command: `run` starts the operator, `check-config` validates a configuration,
`diff` and `import` are the GitOps and brownfield tools (ecsrole.tools, docs/cli.md).

Built on click, like kopf's own command. Every option of `run` has an environment variable, and
the rules are the usual ones (12-factor): a flag on the command line wins over its variable, the
variable over the default, an empty variable counts as unset, and a value that does not parse is
a usage error (exit 2) naming the flag and the variable, never a traceback and never a silent
default. Booleans accept true/false, 1/0, yes/no, on/off, t/f and y/n in any case.

Importable without kopf or boto3: each command imports what it needs when it runs. A new command
is one more `@ecsrole.command`, a new option of `run` one more `@click.option` and keyword.
"""

from __future__ import annotations

import os
import socket
import sys
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

import click
import click.core

from ecsrole import __version__, leader
from ecsrole import config as config_module

if TYPE_CHECKING:
    from ecsrole import logs

DEFAULT_CONFIG_PATH = "/etc/ecsrole/config.yaml"
SERVICE_ACCOUNT_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
#: A lease shorter than this leaves no room between renew deadline and retry period.
MIN_LEASE_DURATION = 1.0

F = TypeVar("F", bound=Callable[..., Any])


class EnvOption(click.Option):
    """An option that shows its environment variable in --help (click names it in errors)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("show_envvar", True)
        super().__init__(*args, **kwargs)


class Address(click.ParamType[tuple[str, int]]):
    """HOST:PORT; an empty host means every interface, as for any exporter."""

    name = "HOST:PORT"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> tuple[str, int]:
        if isinstance(value, tuple):
            return value
        host, sep, port = str(value).rpartition(":")
        if not sep or not port.isdigit() or not 0 < int(port) < 65536:
            self.fail(f"expected HOST:PORT, got {value!r}", param, ctx)
        return host or "0.0.0.0", int(port)  # noqa: S104 - in-cluster default


class NamespaceList(click.ParamType[str]):
    """One namespace (glob) per flag; the environment variable holds them comma-separated."""

    name = "NAMESPACE"
    envvar_list_splitter = ","

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        return str(value).strip()


def _drop_empty(
    ctx: click.Context, param: click.Parameter, value: tuple[str, ...]
) -> tuple[str, ...]:
    """`ECSROLE_WATCH_NAMESPACES=""` (the chart's default) and stray commas mean no entry."""
    return tuple(namespace for namespace in value if namespace)


class RoleArnTemplate(click.ParamType[str]):
    """`--role-arn-template`: a role ARN with "{account}" where each account id goes."""

    name = "ARN"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        from ecsrole.core import iam

        text = str(value)
        if "{account}" not in text:
            self.fail(
                'must contain "{account}", e.g. arn:aws:iam::{account}:role/ecsrole-diff',
                param,
                ctx,
            )
        parsed = iam.parse_role_arn(text.replace("{account}", "123456789012"))
        if isinstance(parsed, str):
            self.fail(f"not a role ARN once {{account}} is filled in: {parsed}", param, ctx)
        return text


def _in_cluster_namespace() -> str:
    try:
        return Path(SERVICE_ACCOUNT_NAMESPACE).read_text().strip() or "default"
    except OSError:
        return "default"


def _address_option(flag: str, envvar: str, port: int, endpoint: str) -> Callable[[F], F]:
    return click.option(
        flag,
        cls=EnvOption,
        envvar=envvar,
        type=Address(),
        default=f"0.0.0.0:{port}",  # every interface: in-cluster default, like any exporter
        show_default=True,
        help=f"HOST:PORT of {endpoint} endpoint.",
    )


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="ecsrole", message="%(prog)s %(version)s")
def ecsrole() -> None:
    """Keeps AWS ECS task execution IAM roles exactly as EcsExecutionRole resources declare them."""


@ecsrole.command("run")
@click.option(
    "--config",
    "config_path",
    cls=EnvOption,
    envvar="ECSROLE_CONFIG",
    default=DEFAULT_CONFIG_PATH,
    show_default=True,
    help="Operator configuration file.",
)
@_address_option("--metrics-address", "ECSROLE_METRICS_ADDRESS", 8080, "the Prometheus /metrics")
@_address_option("--health-address", "ECSROLE_HEALTH_ADDRESS", 8081, "the liveness /healthz")
@click.option(
    "--log-format",
    cls=EnvOption,
    envvar="ECSROLE_LOG_FORMAT",
    type=click.Choice(["auto", "json", "console"]),
    default="auto",
    show_default=True,
    help="auto: JSON lines unless stderr is a terminal.",
)
@click.option(
    "--log-level",
    cls=EnvOption,
    envvar="ECSROLE_LOG_LEVEL",
    type=click.Choice(LOG_LEVELS, case_sensitive=False),
    default="INFO",
    show_default=True,
    help="Log level (any letter case).",
)
@click.option(
    "--namespace",
    "namespaces",
    cls=EnvOption,
    envvar="ECSROLE_WATCH_NAMESPACES",
    type=NamespaceList(),
    multiple=True,
    callback=_drop_empty,
    help="Watch only this namespace (glob); repeatable. The environment variable is "
    "comma-separated, and flags replace it. Default: all namespaces.",
)
@click.option(
    "--selector",
    cls=EnvOption,
    envvar="ECSROLE_WATCH_SELECTOR",
    callback=lambda _ctx, _param, value: _label_selector(value),
    metavar="SELECTOR",
    help="Serve only the EcsExecutionRoles whose labels match this Kubernetes label selector, "
    "e.g. ecsrole.dev/shard=team-a (the API server filters the watch); one operator per "
    "selector shards the resources, each with a Lease of its own. Default: all.",
)
@click.option(
    "--leader-election/--no-leader-election",
    cls=EnvOption,
    envvar="ECSROLE_LEADER_ELECTION",
    default=True,
    show_default=True,
    help="Run only while holding a coordination.k8s.io Lease, so replicas can stand by.",
)
@click.option(
    "--lease-name",
    cls=EnvOption,
    envvar="ECSROLE_LEASE_NAME",
    default=None,
    show_default="ecsrole-leader, or with --selector ecsrole-leader-<hash of the selector>",
    help="Name of the Lease.",
)
@click.option(
    "--lease-namespace",
    cls=EnvOption,
    envvar=["ECSROLE_LEASE_NAMESPACE", "POD_NAMESPACE"],
    default=_in_cluster_namespace,
    show_default="the pod's own namespace, else default",
    help="Namespace of the Lease.",
)
@click.option(
    "--lease-duration",
    cls=EnvOption,
    envvar="ECSROLE_LEASE_DURATION",
    type=click.FloatRange(min=MIN_LEASE_DURATION),
    default=15.0,
    show_default=True,
    help="Seconds a standby waits for a silent leader before taking over; the leader stops "
    "when it cannot renew within two thirds of it.",
)
@click.option(
    "--aws-workers",
    cls=EnvOption,
    envvar="ECSROLE_AWS_WORKERS",
    type=click.IntRange(min=1),
    default=16,
    show_default=True,
    help="Threads for AWS calls, so the event loop never blocks.",
)
def run_command(
    *,
    config_path: str,
    metrics_address: tuple[str, int],
    health_address: tuple[str, int],
    log_format: str,
    log_level: str,
    namespaces: tuple[str, ...],
    selector: str | None,
    leader_election: bool,
    lease_name: str | None,
    lease_namespace: str,
    lease_duration: float,
    aws_workers: int,
) -> int:
    """Run the operator against the cluster in KUBECONFIG (or in-cluster) and AWS (standard AWS
    credential chain). Every option has an environment variable."""
    from ecsrole import runtime  # kopf and boto3 load only when the operator runs
    from ecsrole import selector as selector_module

    name = lease_name or selector_module.lease_name(selector)
    return runtime.run(
        lease=lease_settings(name, lease_namespace, lease_duration) if leader_election else None,
        config_path=config_path,
        metrics_address=metrics_address,
        health_address=health_address,
        log_format=cast("logs.LogFormat", log_format),  # one of the Choice's values
        log_level=log_level.upper(),
        namespaces=namespaces,
        selector=selector,
        aws_workers=aws_workers,
    )


def _label_selector(value: str | None) -> str | None:
    """A label selector checked before anything starts; None or empty: every resource."""
    if not value or not value.strip():
        return None
    from ecsrole import selector

    try:
        selector.parse(value)
    except selector.SelectorError as error:
        raise click.BadParameter(str(error)) from None
    return value.strip()


def lease_settings(name: str, namespace: str, duration: float) -> leader.LeaseSettings:
    """The Lease timings of client-go's defaults (15 s, 10 s, 2 s), scaled to `duration`."""
    return leader.LeaseSettings(
        namespace=namespace,
        name=name,
        identity=f"{os.environ.get('POD_NAME') or socket.gethostname()}_{uuid.uuid4().hex[:8]}",
        lease_duration=duration,
        renew_deadline=duration * 2 / 3,
        retry_period=max(0.5, duration / 7.5),
    )


@ecsrole.command("check-config")
@click.argument("file", type=click.Path(dir_okay=True, path_type=str))
def check_config_command(file: str) -> int:
    """Validate an operator configuration file; every problem is printed with the field it
    concerns."""
    try:
        loaded = config_module.load_config(file)
    except config_module.ConfigError as error:
        click.echo(f"{file}: invalid configuration", err=True)
        for problem in error.errors:
            click.echo(f"  - {problem}", err=True)
        return 1
    click.echo(f"{file}: valid ({len(loaded.accounts)} account(s), cluster {loaded.cluster_name})")
    return 0


_TEMPLATE_HELP = (
    "Assume this role in every account instead of the configuration's roleArn, e.g. "
    "arn:aws:iam::{account}:role/ecsrole-readonly (a read-only role for CI)."
)


@ecsrole.command("diff")
@click.option(
    "-f",
    "--filename",
    "files",
    multiple=True,
    required=True,
    metavar="FILE_OR_DIR",
    help="Manifest file, directory (read recursively) or - for stdin; repeatable.",
)
@click.option(
    "--config",
    "config_path",
    cls=EnvOption,
    envvar="ECSROLE_CONFIG",
    metavar="FILE",
    default=DEFAULT_CONFIG_PATH,
    show_default=True,
    help="The operator's configuration file.",
)
@click.option(
    "-o",
    "--output",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="text for people, json for machines (apiVersion ecsrole.dev/diff/v1).",
)
@click.option(
    "-n",
    "--namespace",
    default="default",
    show_default=True,
    help="Namespace of manifests without metadata.namespace.",
)
@click.option("--role-arn-template", type=RoleArnTemplate(), help=_TEMPLATE_HELP)
def diff_command(
    *,
    files: tuple[str, ...],
    config_path: str,
    output: str,
    namespace: str,
    role_arn_template: str | None,
) -> int:
    """Show the IAM changes the operator would make for EcsExecutionRole manifests.

    Judges the manifests against IAM as the operator would, without a cluster, and prints the
    changes it would make and the refusals. Read-only. Exit status: 0 no changes, 2 changes or
    refusals, 1 error. See docs/cli.md.
    """
    from ecsrole.tools import diff

    return diff.run(
        diff.DiffOptions(
            files=list(files),
            config_path=config_path,
            output=output,
            namespace=namespace,
            role_arn_template=role_arn_template,
        )
    )


@ecsrole.command("import")
@click.option(
    "--account", "account_id", required=True, metavar="ID", help="12-digit AWS account id."
)
@click.option(
    "--config",
    "config_path",
    cls=EnvOption,
    envvar="ECSROLE_CONFIG",
    metavar="FILE",
    default=None,
    help="The operator's configuration file: how to reach the account, and the allow-lists "
    "the manifests are checked against.",
)
@click.option(
    "-n",
    "--namespace",
    default="default",
    show_default=True,
    help="metadata.namespace of the manifests.",
)
@click.option(
    "--output", "output_dir", metavar="DIR", help="Write one file per role here (default: stdout)."
)
@click.option(
    "--path-prefix",
    metavar="PATH",
    help="Only roles under this IAM path (default: the account's rolePathPrefix, else /).",
)
@click.option("--role-arn-template", type=RoleArnTemplate(), help=_TEMPLATE_HELP)
@click.option("--force", is_flag=True, help="Overwrite existing files.")
def import_command(
    *,
    account_id: str,
    config_path: str | None,
    namespace: str,
    output_dir: str | None,
    path_prefix: str | None,
    role_arn_template: str | None,
    force: bool,
) -> int:
    """Write EcsExecutionRole manifests for an account's existing ECS execution roles.

    Finds the roles of an account that trust ecs-tasks.amazonaws.com and writes one manifest per
    role (adopt: true, deletionPolicy: Retain, the role's current settings). Read-only. See
    docs/cli.md.
    """
    from ecsrole.tools import importer

    return importer.run(
        importer.ImportOptions(
            account_id=account_id,
            config_path=config_path,
            namespace=namespace,
            output_dir=output_dir,
            path_prefix=path_prefix,
            role_arn_template=role_arn_template,
            force=force,
        )
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command and return its exit status; a usage error exits 2 with click's message."""
    try:
        result = ecsrole.main(
            args=list(argv) if argv is not None else None,
            prog_name="ecsrole",
            standalone_mode=False,
        )
    except click.ClickException as error:
        error.show()
        raise SystemExit(error.exit_code) from None
    except click.Abort:
        click.echo("Aborted!", err=True)
        raise SystemExit(1) from None
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
