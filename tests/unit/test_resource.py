"""The index's copy of an object: what the sweeps read must be what the API server sent."""

from __future__ import annotations

import copy
import json
from typing import Any

from ecsrole.core.constants import PAUSED_ANNOTATION
from ecsrole.reconciler import Resource
from tests.unit.factories import ACCOUNT_ID, NAMESPACE, spec_dict


def body(name: str, uid: str) -> dict[str, Any]:
    """An object as a watch event decodes it: bookkeeping annotations, managedFields, status."""
    conditions = [
        {
            "type": kind,
            "status": "True" if kind in ("Ready", "Synced") else "False",
            "reason": reason,
            "message": f"{kind} message.",
            "observedGeneration": 2,
            "lastTransitionTime": "2026-11-29T05:09:40Z",
        }
        for kind, reason in (("Ready", "Reconciled"), ("Synced", "ReconcileSuccess"))
    ]
    decoded: dict[str, Any] = json.loads(
        json.dumps(
            {
                "metadata": {
                    "namespace": NAMESPACE,
                    "name": name,
                    "uid": uid,
                    "generation": 2,
                    "creationTimestamp": "2026-11-29T05:09:38Z",
                    "annotations": {
                        PAUSED_ANNOTATION: "true",
                        "kubectl.kubernetes.io/last-applied-configuration": "{...}",
                        "ecsrole.dev/last-handled-configuration": "{...}",
                    },
                    "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:spec": {}}}],
                },
                "spec": spec_dict(tags={"team": "a"}),
                "status": {
                    "observedGeneration": 2,
                    "roleId": f"AROA{uid.upper()}",
                    "arn": f"arn:aws:iam::{ACCOUNT_ID}:role/ecs/{name}",
                    "conditions": conditions,
                },
            }
        )
    )
    return decoded


def test_index_copy_reads_like_the_object() -> None:
    decoded = body("web", "uid-1")
    resource = Resource.from_body(decoded)

    indexed = resource.for_index()

    assert indexed == resource
    assert indexed.annotations == {PAUSED_ANNOTATION: "true"}  # only the user's switches
    assert indexed.annotated(PAUSED_ANNOTATION)


def test_index_copy_is_independent_of_the_decoded_body() -> None:
    decoded = body("web", "uid-1")
    before = copy.deepcopy(decoded)

    indexed = Resource.from_body(decoded).for_index()
    decoded["spec"]["tags"]["team"] = "b"
    decoded["status"]["conditions"][0]["status"] = "False"

    assert indexed.spec["tags"] == before["spec"]["tags"]
    assert indexed.status["conditions"] == before["status"]["conditions"]


def test_index_copies_share_repeated_strings() -> None:
    first = Resource.from_body(body("web", "uid-1")).for_index()
    second = Resource.from_body(body("api", "uid-2")).for_index()

    ready_first, ready_second = first.status["conditions"][0], second.status["conditions"][0]
    assert ready_first["reason"] is ready_second["reason"]
    assert ready_first["lastTransitionTime"] is ready_second["lastTransitionTime"]
    assert first.spec["accountId"] is second.spec["accountId"]
    assert first.namespace is second.namespace
    assert first.status["roleId"] != second.status["roleId"]
