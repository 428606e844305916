"""The IAM adapter: reads a role into the core's ObservedRole and applies the core's Operations.

Blocking by design (boto3 is); callers run it in the bounded worker pool. It decides nothing:
what to read and what to write come from the pure core, so this stays a thin translation.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from botocore import xform_name
from botocore.exceptions import BotoCoreError, ClientError
from botocore.parsers import ResponseParserError

from ecsrole import gcpause
from ecsrole.aws.clients import AccountClients
from ecsrole.aws.errors import AwsCallError, FailureKind, NotFoundError, classify
from ecsrole.core.iam import CallerIdentity as CallerIdentity  # defined in the core (the port)
from ecsrole.core.model import ObservedRole, Operation

T = TypeVar("T")

_BIG_PAGES = {"PageSize": 1000}
# After CreateRole, IAM may answer NoSuchEntity for a while (eventual consistency). Within one
# apply the adapter waits a little; beyond that the reconciler retries later.
NEW_ROLE_RETRY_SECONDS = 10.0


def _translate(operation: str, error: Exception) -> AwsCallError:
    if isinstance(error, ClientError):
        err = error.response.get("Error", {})
        code = str(err.get("Code", ""))
        message = str(err.get("Message", ""))
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code == "NoSuchEntity":
            return NotFoundError(FailureKind.AWS_ERROR, operation, code, message)
        return AwsCallError(classify(code, status), operation, code, message)
    return AwsCallError(FailureKind.AWS_ERROR, operation, type(error).__name__, str(error))


def _call(operation: str, fn: Callable[..., T], **params: Any) -> T:
    """Call `fn(**params)`, translating botocore's failures into AwsCallError.

    ResponseParserError is not a BotoCoreError: it is what an HTML 5xx page from something in
    front of the endpoint becomes, and it is as transient as any other 5xx.
    """
    try:
        return fn(**params)
    except (ClientError, BotoCoreError, ResponseParserError) as error:
        raise _translate(operation, error) from error


def _pages(client: Any, operation: str, key: str, **params: Any) -> Iterator[Any]:
    paginator = client.get_paginator(xform_name(operation))
    pages: list[Any] = _call(operation, lambda: list(paginator.paginate(**params)))
    for page in pages:
        yield from page.get(key, [])


class IamAdapter:
    """IAM reads and writes for one account."""

    def __init__(self, clients: AccountClients) -> None:
        self.clients = clients

    def caller_identity(self) -> CallerIdentity:
        response = _call("GetCallerIdentity", self.clients.sts.get_caller_identity)
        return CallerIdentity(
            account_id=str(response["Account"]),
            arn=str(response["Arn"]),
            user_id=str(response["UserId"]),
        )

    def read_role(
        self, role_name: str, *, with_instance_profiles: bool = False
    ) -> ObservedRole | None:
        """The role as IAM has it now, or None when it does not exist."""
        iam = self.clients.iam
        try:
            role = _call("GetRole", iam.get_role, RoleName=role_name)["Role"]
            attached = [
                p["PolicyArn"]
                for p in _pages(
                    iam, "ListAttachedRolePolicies", "AttachedPolicies", RoleName=role_name
                )
            ]
            inline_names = list(_pages(iam, "ListRolePolicies", "PolicyNames", RoleName=role_name))
            inline = {
                name: _call(
                    "GetRolePolicy", iam.get_role_policy, RoleName=role_name, PolicyName=name
                )["PolicyDocument"]
                for name in inline_names
            }
            profiles: tuple[str, ...] | None = None
            if with_instance_profiles:
                profiles = tuple(
                    p["InstanceProfileName"]
                    for p in _pages(
                        iam, "ListInstanceProfilesForRole", "InstanceProfiles", RoleName=role_name
                    )
                )
        except NotFoundError:
            return None
        return ObservedRole.from_iam(
            role,
            managed_policy_arns=attached,
            inline_policies=inline,
            instance_profile_names=profiles,
        )

    def read_roles_bulk(self, path_prefix: str) -> dict[str, ObservedRole]:
        """Every role under `path_prefix`, in a handful of calls, keyed by lower-cased name.

        GetAccountAuthorizationDetails(Filter=["Role"]) carries trust, attached and inline
        policies, tags and boundary for all roles; ListRoles(PathPrefix) adds what it lacks
        (description, maximum session duration). Pages of up to 1000 roles each. The cyclic
        garbage collector is off meanwhile (ecsrole.gcpause): the parsed pages would otherwise
        make it walk the whole process while holding the GIL, stalling the event loop.
        """
        with gcpause.paused():
            return self._read_roles_bulk(path_prefix)

    def _read_roles_bulk(self, path_prefix: str) -> dict[str, ObservedRole]:
        iam = self.clients.iam
        listed = {
            role["RoleName"].lower(): role
            for role in _pages(
                iam, "ListRoles", "Roles", PathPrefix=path_prefix, PaginationConfig=_BIG_PAGES
            )
        }
        observed: dict[str, ObservedRole] = {}
        for detail in _pages(
            iam,
            "GetAccountAuthorizationDetails",
            "RoleDetailList",
            Filter=["Role"],
            PaginationConfig=_BIG_PAGES,
        ):
            key = detail["RoleName"].lower()
            summary = listed.get(key)
            if summary is None:
                continue  # outside the path prefix: never ours
            role = {
                **detail,
                "Description": summary.get("Description"),
                "MaxSessionDuration": summary.get("MaxSessionDuration", 3600),
            }
            observed[key] = ObservedRole.from_iam(
                role,
                managed_policy_arns=[
                    p["PolicyArn"] for p in detail.get("AttachedManagedPolicies", [])
                ],
                inline_policies={
                    p["PolicyName"]: p["PolicyDocument"] for p in detail.get("RolePolicyList", [])
                },
                instance_profile_names=[
                    p["InstanceProfileName"] for p in detail.get("InstanceProfileList", [])
                ],
            )
        return observed

    def read_roles_each(self, path_prefix: str, names: Iterable[str]) -> dict[str, ObservedRole]:
        """perRole mode: ListRoles(PathPrefix), then a full read of each wanted role that exists."""
        iam = self.clients.iam
        existing = {
            role["RoleName"].lower(): role["RoleName"]
            for role in _pages(
                iam, "ListRoles", "Roles", PathPrefix=path_prefix, PaginationConfig=_BIG_PAGES
            )
        }
        observed: dict[str, ObservedRole] = {}
        for name in names:
            actual = existing.get(name.lower())
            if actual is None:
                continue
            role = self.read_role(actual)
            if role is not None:
                observed[name.lower()] = role
        return observed

    def apply(self, operations: Iterable[Operation]) -> dict[str, Any] | None:
        """Run operations in order; return the Role from CreateRole when one was created.

        Operations are idempotent as planned; a crash between two of them is repaired by the
        next reconcile, which observes and plans again.
        """
        created: dict[str, Any] | None = None
        created_at = 0.0
        for op in operations:
            method = getattr(self.clients.iam, op.method_name)
            while True:
                try:
                    response: dict[str, Any] = _call(op.action, method, **op.params)
                    break
                except NotFoundError:
                    if op.absent_target_means_done:
                        response = {}
                        break
                    if created is None or time.monotonic() - created_at > NEW_ROLE_RETRY_SECONDS:
                        raise
                    time.sleep(0.5)
            if op.action == "CreateRole":
                created = response["Role"]
                created_at = time.monotonic()
        return created
