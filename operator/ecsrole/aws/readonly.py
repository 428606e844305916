"""Read-only IAM access for the tools: the adapter's reads, and nothing that could write.

Two layers, because "the diff never writes" is a promise to the security engineer who grants
the CI job its role:

- `ReadOnlyIam` wraps the operator's `IamAdapter` and exposes only its read methods, so the
  diff and import code have no `apply` to call (mypy would refuse it);
- `forbid_writes` registers a botocore `before-call` hook on the account's IAM client that
  refuses any operation other than Get* and List* before a request is signed or sent, so even
  a future read method that slips a write in cannot reach IAM.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    NoCredentialsError,
    PartialCredentialsError,
)

from ecsrole.aws.clients import AccountAccess, AccountClients, ClientFactory
from ecsrole.aws.errors import AwsCallError, FailureKind, classify
from ecsrole.aws.iam import CallerIdentity, IamAdapter
from ecsrole.core.config import AccountConfig
from ecsrole.core.model import ObservedRole, Operation

if TYPE_CHECKING:
    from mypy_boto3_iam import IAMClient

READ_PREFIXES = ("Get", "List")
_HOOK_ID = "ecsrole-tools-read-only"


class MissingCredentialsError(Exception):
    """The standard AWS credential chain found no credentials (or only part of them)."""


class WriteRefusedError(RuntimeError):
    """A tool tried an IAM operation that is not a read (a bug: the tools never write)."""


def _refuse_writes(model: Any = None, **_: Any) -> None:
    name = str(getattr(model, "name", ""))
    if not name.startswith(READ_PREFIXES):
        raise WriteRefusedError(f"refused IAM {name}: ecsrole's tools only read IAM")


def forbid_writes(iam_client: IAMClient) -> None:
    """Make `iam_client` refuse every operation but Get* and List* (idempotent)."""
    iam_client.meta.events.register("before-call.iam", _refuse_writes, unique_id=_HOOK_ID)


class Reader(Protocol):
    """The reads a tool makes in one account (`ReadOnlyIam`, or a fake in tests)."""

    def caller_identity(self) -> CallerIdentity: ...

    def read_role(self, role_name: str) -> ObservedRole | None: ...


class PlanningPort:
    """`core.decide.Port` for the tools: reads through read-only views, and `apply` records
    the calls the operator would make (`planned`) without sending anything.

    `identities` is shared between the ports of one run: one caller identity per account.
    """

    def __init__(
        self,
        reader_for: Callable[[AccountConfig], Reader],
        identities: dict[str, CallerIdentity] | None = None,
    ) -> None:
        self.reader_for = reader_for
        self.identities = {} if identities is None else identities
        self.planned: list[Operation] = []

    def caller_identity(self, account: AccountConfig) -> CallerIdentity:
        identity = self.identities.get(account.account_id)
        if identity is None:
            identity = self.reader_for(account).caller_identity()
            self.identities[account.account_id] = identity
        return identity

    def read_role(self, account: AccountConfig, role_name: str) -> ObservedRole | None:
        return self.reader_for(account).read_role(role_name)

    def apply(self, account: AccountConfig, operations: Sequence[Operation]) -> None:
        self.planned.extend(operations)


class ReadOnlyIam:
    """The read half of `IamAdapter` for one account."""

    def __init__(self, clients: AccountClients) -> None:
        forbid_writes(clients.iam)
        self._adapter = IamAdapter(clients)

    def caller_identity(self) -> CallerIdentity:
        return self._adapter.caller_identity()

    def read_role(self, role_name: str) -> ObservedRole | None:
        return self._adapter.read_role(role_name)

    def read_roles_bulk(self, path_prefix: str) -> dict[str, ObservedRole]:
        return self._adapter.read_roles_bulk(path_prefix)


def base_identity(factory: ClientFactory) -> CallerIdentity:
    """The identity of the tool's own credentials (standard chain), before any per-account work.

    Checked first because a missing credential surfaces late and obscurely otherwise (botocore's
    AssumeRole fetcher fails on absent source credentials with an AttributeError).
    """
    sts = factory.base_sts()
    try:
        response = sts.get_caller_identity()
    except (NoCredentialsError, PartialCredentialsError) as error:
        raise MissingCredentialsError(str(error)) from error
    except ClientError as error:
        err = error.response.get("Error", {})
        code, message = str(err.get("Code", "")), str(err.get("Message", ""))
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        raise AwsCallError(classify(code, status), "GetCallerIdentity", code, message) from error
    except BotoCoreError as error:
        raise AwsCallError(
            FailureKind.AWS_ERROR, "GetCallerIdentity", type(error).__name__, str(error)
        ) from error
    return CallerIdentity(
        account_id=str(response["Account"]),
        arn=str(response["Arn"]),
        user_id=str(response["UserId"]),
    )


def role_arn_from_template(template: str, account_id: str) -> str:
    """`--role-arn-template` for one account: "{account}" replaced by the account id."""
    return template.replace("{account}", account_id)


def missing_credentials_message(detail: str) -> str:
    return (
        f"no AWS credentials found: {detail}. The tools use the standard AWS credential chain "
        "(AWS_PROFILE, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_WEB_IDENTITY_TOKEN_FILE with "
        "AWS_ROLE_ARN for CI OIDC, SSO, instance or container roles)"
    )


class Session:
    """The tool's AWS access: its own credentials, then one read-only view per account.

    Accounts are reached exactly as the operator reaches them (the config's roleArn and
    externalId through the same ClientFactory), unless `role_arn_template` names a role to
    assume in every account instead (a read-only role for CI, without the operator's writes).
    """

    def __init__(
        self, *, region: str, session_name: str, role_arn_template: str | None = None
    ) -> None:
        # STS session names allow only [\w+=,.@-]; a cluster name may hold more (spaces, / :).
        safe_name = re.sub(r"[^\w+=,.@-]", "-", session_name, flags=re.ASCII)[:64]
        self.factory = ClientFactory(region=region, session_name=safe_name)
        self.role_arn_template = role_arn_template
        self._identity: CallerIdentity | None = None
        self._readers: dict[str, ReadOnlyIam] = {}

    def identity(self) -> CallerIdentity:
        """The tool's own identity; MissingCredentialsError when the chain has nothing."""
        if self._identity is None:
            self._identity = base_identity(self.factory)
        return self._identity

    def reader(self, account: AccountConfig) -> ReadOnlyIam:
        cached = self._readers.get(account.account_id)
        if cached is not None:
            return cached
        self.identity()
        if self.role_arn_template is not None:
            role_arn: str | None = role_arn_from_template(
                self.role_arn_template, account.account_id
            )
            external_id = None
        else:
            role_arn, external_id = account.role_arn, account.external_id
        access = AccountAccess(
            account_id=account.account_id,
            role_arn=role_arn,
            external_id=external_id,
            max_calls_per_second=account.max_calls_per_second,
        )
        reader = self._readers[account.account_id] = ReadOnlyIam(self.factory.for_account(access))
        return reader
