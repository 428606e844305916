"""CloudTrail IAM events (delivered by EventBridge to SQS) -> which role to re-read, if any.

Events only trigger a read: they arrive best effort (IAM events are delivered in us-east-1
only), so the sweep stays the source of truth and an event is never trusted for its content.
Events with an errorCode changed nothing, and events caused by the operator's own identity are
its own writes: both are skipped.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ecsrole.core import iam

DETAIL_TYPE = "AWS API Call via CloudTrail"
SOURCE = "aws.iam"
ROLE_EVENTS = frozenset(
    {
        "AttachRolePolicy",
        "DetachRolePolicy",
        "UpdateAssumeRolePolicy",
        "PutRolePolicy",
        "DeleteRolePolicy",
        "DeleteRole",
        "TagRole",
        "UntagRole",
        "UpdateRole",
        "UpdateRoleDescription",
        "PutRolePermissionsBoundary",
        "DeleteRolePermissionsBoundary",
    }
)


@dataclass(frozen=True)
class RoleChange:
    """A successful IAM call on a role, made by someone: the role to re-read now."""

    account_id: str
    role_name: str
    event_name: str
    event_time: float | None
    actor_arn: str
    issuer_arn: str


@dataclass(frozen=True)
class Skipped:
    """Why a message leads to no read (it is still deleted from the queue)."""

    reason: str


def parse_message(body: str) -> RoleChange | Skipped:
    """Parse one SQS message body holding an EventBridge event."""
    try:
        event = json.loads(body)
    except (TypeError, ValueError):
        return Skipped("not JSON")
    if not isinstance(event, Mapping):
        return Skipped("not an event")
    if event.get("source") != SOURCE or event.get("detail-type") != DETAIL_TYPE:
        return Skipped("not a CloudTrail IAM API call")
    detail = event.get("detail")
    if not isinstance(detail, Mapping):
        return Skipped("no detail")
    name = str(detail.get("eventName", ""))
    if name not in ROLE_EVENTS:
        return Skipped(f"{name or 'unnamed'} does not change a role")
    if detail.get("errorCode"):
        return Skipped(f"{name} failed ({detail.get('errorCode')}): nothing changed")
    parameters = detail.get("requestParameters")
    role_name = parameters.get("roleName") if isinstance(parameters, Mapping) else None
    if not isinstance(role_name, str) or not role_name:
        return Skipped(f"{name} names no role")
    account_id = str(detail.get("recipientAccountId") or event.get("account") or "")
    if not iam.is_account_id(account_id):
        return Skipped("no account id")
    identity = detail.get("userIdentity")
    identity = identity if isinstance(identity, Mapping) else {}
    return RoleChange(
        account_id=account_id,
        role_name=role_name,
        event_name=name,
        event_time=_epoch(detail.get("eventTime") or event.get("time")),
        actor_arn=str(identity.get("arn", "")),
        issuer_arn=_issuer_arn(identity),
    )


def _issuer_arn(identity: Mapping[str, Any]) -> str:
    context = identity.get("sessionContext")
    issuer = context.get("sessionIssuer") if isinstance(context, Mapping) else None
    return str(issuer.get("arn", "")) if isinstance(issuer, Mapping) else ""


def _epoch(value: object) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.UTC)
    return parsed.timestamp()


def made_by(change: RoleChange, caller_arn: str) -> bool:
    """True when `caller_arn` (the operator's STS identity in that account) made the change.

    An assumed role is matched by role name, whatever the session name (the operator's sessions
    are renewed, and IRSA or Pod Identity pick their own session names); a user by its ARN.
    """
    own_role = iam.caller_role_name(caller_arn)
    if own_role is not None and caller_arn.split(":")[2] == "sts":
        actor_role = iam.caller_role_name(change.actor_arn)
        issuer_role = iam.role_name_from_arn(change.issuer_arn) if change.issuer_arn else None
        return own_role in {actor_role, issuer_role}
    return bool(change.actor_arn) and change.actor_arn == caller_arn
