"""Scenario 6: the operator's own IAM policy (docs/iam-policy.json) is enough, and every action in
it is needed.

moto's IAM access control (a moto server started with INITIAL_NO_AUTH_ACTION_COUNT) checks the
caller's policies for actions, but not resource scoping or most conditions. So the check uses a
copy of the shipped policy with every Allow statement's Resource widened to "*" and its
conditions dropped (the Deny statements only narrow resources, which moto cannot evaluate, and
are left out), gives exactly that policy to an IAM user in moto, runs the operator with the
user's keys through a lifecycle (create, update, drift repair, adopt, delete with an instance
profile, retain), and then repeats the lifecycle once per action with that action removed.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3

from tests.chaos.scenarios import (
    SEED_POLICY,
    SEED_TRUST,
    KubeApi,
    create_role_by_hand,
    settled,
    wait_leading,
)
from tests.stack.moto import DEFAULT_ACCOUNT_ID, MotoServer
from tests.stack.operator import OperatorProcess, dev_config
from tests.stack.resources import role_manifest

REPO_ROOT = Path(__file__).resolve().parents[2]
POLICY_PATH = REPO_ROOT / "docs" / "iam-policy.json"
ALLOWED_POLICY = "arn:aws:iam::aws:policy/AmazonSSMReadOnlyAccess"
ADMIN_POLICY = "arn:aws:iam::aws:policy/AdministratorAccess"
#: CreateUser, PutUserPolicy, CreateAccessKey of the admin user; everything after is checked.
SETUP_ACTIONS = 3


def shipped_actions() -> list[str]:
    """Every action the shipped policy allows, in order."""
    actions: list[str] = []
    for statement in json.loads(POLICY_PATH.read_text())["Statement"]:
        if statement["Effect"] != "Allow":
            continue
        listed = statement["Action"]
        for action in [listed] if isinstance(listed, str) else listed:
            if action not in actions:
                actions.append(action)
    return actions


def widened_policy(without: str | None = None) -> dict[str, Any]:
    """The shipped policy's Allow statements with Resource "*" and no conditions, minus `without`."""
    statements = []
    for statement in json.loads(POLICY_PATH.read_text())["Statement"]:
        if statement["Effect"] != "Allow":
            continue
        listed = statement["Action"]
        actions = [a for a in ([listed] if isinstance(listed, str) else listed) if a != without]
        if actions:
            statements.append(
                {"Sid": statement["Sid"], "Effect": "Allow", "Action": actions, "Resource": "*"}
            )
    return {"Version": "2012-10-17", "Statement": statements}


class AuthMoto:
    """A moto server that checks IAM policies, with an admin user for the test's own calls."""

    def __init__(self, workdir: Path) -> None:
        self.server = MotoServer(workdir)
        self.admin_keys: tuple[str, str] = ("", "")

    def start(self) -> AuthMoto:
        previous = os.environ.get("INITIAL_NO_AUTH_ACTION_COUNT")
        os.environ["INITIAL_NO_AUTH_ACTION_COUNT"] = str(SETUP_ACTIONS)
        try:
            self.server.start()
        finally:
            if previous is None:
                os.environ.pop("INITIAL_NO_AUTH_ACTION_COUNT", None)
            else:
                os.environ["INITIAL_NO_AUTH_ACTION_COUNT"] = previous
        env = self.server.aws_env()
        root = self._client("iam", env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"])
        root.create_user(UserName="chaos-admin")
        root.put_user_policy(
            UserName="chaos-admin",
            PolicyName="admin",
            PolicyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
                }
            ),
        )
        key = root.create_access_key(UserName="chaos-admin")["AccessKey"]
        self.admin_keys = (key["AccessKeyId"], key["SecretAccessKey"])
        return self

    def stop(self) -> None:
        self.server.stop()

    def _client(self, service: str, key_id: str, secret: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=self.server.url,
            aws_access_key_id=key_id,
            aws_secret_access_key=secret,
            region_name="us-east-1",
        )

    def admin(self, service: str = "iam") -> Any:
        return self._client(service, *self.admin_keys)

    def operator_user(self, name: str, policy: Mapping[str, Any]) -> dict[str, str]:
        """An IAM user with exactly `policy`; the AWS environment for an operator using it."""
        iam = self.admin()
        iam.create_user(UserName=name)
        iam.put_user_policy(UserName=name, PolicyName="ecsrole", PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName=name)["AccessKey"]
        return {
            **self.server.aws_env(),
            "AWS_ACCESS_KEY_ID": key["AccessKeyId"],
            "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"],
        }


@contextmanager
def auth_moto(workdir: Path) -> Iterator[AuthMoto]:
    server = AuthMoto(workdir).start()
    try:
        yield server
    finally:
        server.stop()


class StepFailedError(AssertionError):
    pass


# How long a step's resource must show AccessDenied before the step counts as failed: more than
# two drift sweeps (driftCheckInterval 3s below), each of which could still complete the step.
DENIED_FOR = 8.0


def lifecycle(
    api: KubeApi,
    namespace: str,
    iam: Any,
    operator: OperatorProcess,
    run: str,
    boundary_arn: str,
    *,
    step_timeout: float,
) -> list[str]:
    """create, update, drift repair, adopt, delete with an instance profile, retain.

    Returns the steps that completed; raises StepFailedError naming the first one that did not, with
    the resources' conditions as evidence.
    """
    done: list[str] = []
    role = f"pol-{run}-app"
    adopted_role = f"pol-{run}-adopted"
    secret = f"arn:aws:secretsmanager:us-east-1:{DEFAULT_ACCOUNT_ID}:secret:team/"

    def evidence() -> str:
        shown = []
        for item in api.list(namespace):
            conditions = {
                c["type"]: f"{c['status']}/{c.get('reason')}: {c.get('message', '')[:160]}"
                for c in (item.get("status") or {}).get("conditions") or []
                if c["type"] in ("Ready", "Synced", "Drifted")
            }
            shown.append(f"{item['metadata']['name']}: {conditions}")
        return "; ".join(shown) or "no resources"

    def denied(name: str) -> bool:
        """The step's resource says IAM refused the operator: the step cannot complete."""
        item = api.list_by_name(namespace).get(name) or {}
        return any(
            "AccessDenied" in f"{c.get('reason')} {c.get('message')}"
            for c in (item.get("status") or {}).get("conditions") or []
            if c.get("type") in ("Ready", "Synced")
        )

    def until(step: str, check: Callable[[], bool], resource: str) -> None:
        """Wait for `check`; fail once `resource` has shown AccessDenied for DENIED_FOR seconds
        on end (no waiting out the timeout for a refusal that stays), else after the timeout.

        Not at the first AccessDenied: another path may still get there (a sweep reads with
        GetAccountAuthorizationDetails and can apply an update whose own reads were denied).
        """
        deadline = time.monotonic() + step_timeout
        denied_since: float | None = None
        while time.monotonic() < deadline:
            operator.child.ensure_alive()
            try:
                if check():
                    done.append(step)
                    return
                denied_now = denied(resource)
            except Exception:  # a read that fails is simply not done yet
                denied_now = False
            now = time.monotonic()
            denied_since = (denied_since or now) if denied_now else None
            if denied_since is not None and now - denied_since >= DENIED_FOR:
                raise StepFailedError(
                    f"{step} did not complete: AccessDenied for {DENIED_FOR:.0f}s; {evidence()}"
                )
            time.sleep(0.5)
        raise StepFailedError(f"{step} did not complete in {step_timeout:.0f}s; {evidence()}")

    def reconciled(name: str) -> bool:
        item = api.list_by_name(namespace).get(name)
        return item is not None and settled(item)

    # 1. create: trust, seed policy, an allowed managed policy, an inline policy, tags, boundary
    api.apply(
        namespace,
        role_manifest(
            "app",
            role,
            tags={"team": "a"},
            additionalPolicyArns=[ALLOWED_POLICY],
            permissions={"secretArns": [secret + "db-??????"]},
        ),
    )
    until("create", lambda: reconciled("app"), "app")

    # 2. update: description, max session, a tag removed and one added, the inline policy changed
    api.apply(
        namespace,
        role_manifest(
            "app",
            role,
            description="v2",
            maxSessionDuration=7200,
            tags={"owner": "b"},
            additionalPolicyArns=[ALLOWED_POLICY],
            permissions={"secretArns": [secret + "api-??????"]},
        ),
    )

    def updated() -> bool:
        got = iam.get_role(RoleName=role)["Role"]
        tags = {t["Key"]: t["Value"] for t in iam.list_role_tags(RoleName=role)["Tags"]}
        return bool(
            reconciled("app")
            and got.get("Description") == "v2"
            and got.get("MaxSessionDuration") == 7200
            and tags.get("owner") == "b"
            and "team" not in tags
            and "api-"
            in json.dumps(iam.get_role_policy(RoleName=role, PolicyName="ecsrole-permissions"))
        )

    until("update", updated, "app")

    # 3. drift repair: privilege creep by hand, found by the sweep and put back
    iam.attach_role_policy(RoleName=role, PolicyArn=ADMIN_POLICY)
    iam.put_role_policy(
        RoleName=role,
        PolicyName="extra",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
            }
        ),
    )
    wide = {
        **SEED_TRUST,
        "Statement": [
            *SEED_TRUST["Statement"],
            {
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{DEFAULT_ACCOUNT_ID}:root"},
                "Action": "sts:AssumeRole",
            },
        ],
    }
    iam.update_assume_role_policy(RoleName=role, PolicyDocument=json.dumps(wide))
    iam.delete_role_permissions_boundary(RoleName=role)

    def repaired() -> bool:
        got = iam.get_role(RoleName=role)["Role"]
        attached = {
            p["PolicyArn"]
            for p in iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"]
        }
        inline = set(iam.list_role_policies(RoleName=role)["PolicyNames"])
        trust = got["AssumeRolePolicyDocument"]
        trust_text = trust if isinstance(trust, str) else json.dumps(trust)
        return (
            ADMIN_POLICY not in attached
            and SEED_POLICY in attached
            and inline == {"ecsrole-permissions"}
            and ":root" not in trust_text
            and (got.get("PermissionsBoundary") or {}).get("PermissionsBoundaryArn") == boundary_arn
        )

    until("drift repair", repaired, "app")

    # 4. adopt a role made by hand
    create_role_by_hand(iam, adopted_role)
    api.apply(namespace, role_manifest("adopted", adopted_role, adopt=True))

    def adopted() -> bool:
        tags = {t["Key"] for t in iam.list_role_tags(RoleName=adopted_role)["Tags"]}
        attached = {
            p["PolicyArn"]
            for p in iam.list_attached_role_policies(RoleName=adopted_role)["AttachedPolicies"]
        }
        return reconciled("adopted") and "ecsrole.dev/uid" in tags and SEED_POLICY in attached

    until("adopt", adopted, "adopted")

    # 5. delete, the role being in an instance profile
    profile = f"pol-{run}-profile"
    iam.create_instance_profile(InstanceProfileName=profile)
    iam.add_role_to_instance_profile(InstanceProfileName=profile, RoleName=role)
    api.delete(namespace, "app")

    def deleted() -> bool:
        if "app" in api.list_by_name(namespace):
            return False
        try:
            iam.get_role(RoleName=role)
        except iam.exceptions.NoSuchEntityException:
            return True
        return False

    until("delete with instance profile", deleted, "app")

    # 6. retain: the adopted role stays, without the ownership tags
    api.delete(namespace, "adopted")

    def retained() -> bool:
        if "adopted" in api.list_by_name(namespace):
            return False
        tags = {t["Key"] for t in iam.list_role_tags(RoleName=adopted_role)["Tags"]}
        return not any(k.startswith("ecsrole.dev/") for k in tags)

    until("retain", retained, "adopted")
    return done


STEPS = ["create", "update", "drift repair", "adopt", "delete with instance profile", "retain"]


def run_variant(
    server: AuthMoto,
    api: KubeApi,
    create_namespace: Callable[[], str],
    start_operator: Callable[..., OperatorProcess],
    secrets: set[str],
    without: str | None,
    boundary_arn: str,
    step_timeout: float,
) -> dict[str, Any]:
    run = uuid.uuid4().hex[:8]
    namespace = create_namespace()
    env = server.operator_user(f"ecsrole-{run}", widened_policy(without))
    secrets.update({env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]})
    config = dev_config(
        f"pol-{run}",
        {
            DEFAULT_ACCOUNT_ID: {
                "namespaces": [namespace],
                "allowAdoption": True,
                "permissionsBoundaryArn": boundary_arn,
                "allowedPolicyArns": [ALLOWED_POLICY],
                "allowedResourcePatterns": {
                    namespace: [f"arn:aws:secretsmanager:*:{DEFAULT_ACCOUNT_ID}:secret:team/*"]
                },
            }
        },
        driftCheckInterval="3s",
    )
    started = time.monotonic()
    operator = start_operator(config, namespaces=[namespace], aws_env=env)
    result: dict[str, Any] = {"removed": without}
    try:
        wait_leading(operator)
        done = lifecycle(
            api,
            namespace,
            server.admin(),
            operator,
            run,
            boundary_arn,
            step_timeout=step_timeout,
        )
        result.update(completed=done, failed_step=None, evidence="")
    except StepFailedError as failure:
        message = str(failure)
        denied = [
            line
            for line in operator.log_path.read_text(errors="replace").splitlines()
            if "AccessDenied" in line
        ]
        result.update(
            failed_step=message.split(" did not complete", 1)[0],
            evidence=message,
            access_denied_in_conditions="AccessDenied" in message,
            access_denied_log_lines=len(denied),
            access_denied_log_sample=denied[0][:400] if denied else "",
            access_denied_shown="AccessDenied" in message or bool(denied),
        )
    finally:
        result["seconds"] = round(time.monotonic() - started, 1)
        # Nothing may stay stuck behind a finalizer: abandon what the lifecycle left.
        for item in api.list(namespace):
            name = item["metadata"]["name"]
            api.request(
                "PATCH",
                f"{api.collection(namespace)}/{name}",
                {"metadata": {"annotations": {"ecsrole.dev/abandon": "true"}}},
                content_type="application/merge-patch+json",
            )
            api.delete(namespace, name)
        operator.stop()
    return result


def policy_matrix(
    server: AuthMoto,
    api: KubeApi,
    create_namespace: Callable[[], str],
    start_operator: Callable[..., OperatorProcess],
    secrets: set[str],
    *,
    actions: list[str] | None = None,
    parallel: int = 4,
    step_timeout: float = 25.0,
) -> dict[str, Any]:
    """The lifecycle with the full widened policy, then once per removed action."""
    iam = server.admin()
    boundary_arn = iam.create_policy(
        PolicyName=f"ecsrole-boundary-{uuid.uuid4().hex[:6]}",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
            }
        ),
    )["Policy"]["Arn"]
    variants: list[str | None] = [None, *(actions if actions is not None else shipped_actions())]
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=parallel) as pool:
        results = list(
            pool.map(
                lambda without: run_variant(
                    server,
                    api,
                    create_namespace,
                    start_operator,
                    secrets,
                    without,
                    boundary_arn,
                    step_timeout,
                ),
                variants,
            )
        )
    full = results[0]
    removed = results[1:]
    return {
        "actions": len(variants) - 1,
        "full_policy": full,
        "removed": removed,
        "full_policy_passes": full["failed_step"] is None,
        "actions_not_needed": [r["removed"] for r in removed if r["failed_step"] is None],
        "failures_without_access_denied": [
            r["removed"]
            for r in removed
            if r["failed_step"] is not None and not r.get("access_denied_shown")
        ],
        "seconds": round(time.monotonic() - started, 1),
    }
