"""EcsExecutionRole documents for the tests, the chaos scenarios and the benchmark.

The e2e tests, the chaos scenarios and bench/ each used to write this dict themselves; one builder
keeps them agreeing on the API version, the metadata and the spec's required fields. Documents a
test writes by hand on purpose (CRD validation cases, hostile or generated specs) stay literal.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tests.stack.moto import DEFAULT_ACCOUNT_ID

#: What every ECS task execution role carries: the managed policy and the trust in ECS tasks.
SEED_POLICY = "arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"
SEED_TRUST: dict[str, Any] = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Sid": "",
            "Effect": "Allow",
            "Principal": {"Service": "ecs-tasks.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    ],
}
#: A trust in EC2 instead: what an impostor role made by hand carries in the claims tests.
EC2_TRUST: dict[str, Any] = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": "ec2.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    ],
}


def role_manifest(
    name: str,
    role_name: str,
    *,
    namespace: str | None = None,
    account_id: str = DEFAULT_ACCOUNT_ID,
    annotations: Mapping[str, str] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    """An EcsExecutionRole; `spec` keys are the CRD's camelCase field names and win over
    `accountId`/`roleName`. `namespace` and `annotations` go in the metadata only when given."""
    metadata: dict[str, Any] = {"name": name}
    if namespace is not None:
        metadata["namespace"] = namespace
    if annotations:
        metadata["annotations"] = dict(annotations)
    return {
        "apiVersion": "iam.ecsrole.dev/v1alpha1",
        "kind": "EcsExecutionRole",
        "metadata": metadata,
        "spec": {"accountId": account_id, "roleName": role_name, **spec},
    }
