"""Names that are part of the public contract, defined once (DESIGN sections 2 and 3).

The API (group, version, plural, kind), the `ecsrole.dev` prefix of kopf's bookkeeping, of the
user's switches and of the ownership tags, and the role paths AWS keeps for itself. Changing one
of these re-handles or orphans every existing object, so nothing else spells them out.
"""

from __future__ import annotations

GROUP = "iam.ecsrole.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
PLURAL = "ecsexecutionroles"
KIND = "EcsExecutionRole"
CRD_NAME = f"{PLURAL}.{GROUP}"

#: kopf's progress and diff-base annotations and its finalizer live under this prefix, like
#: the annotations and tags below: the operator's bookkeeping never clutters status.
PREFIX = "ecsrole.dev"
PAUSED_ANNOTATION = f"{PREFIX}/paused"
ABANDON_ANNOTATION = f"{PREFIX}/abandon"

OWNERSHIP_TAG_PREFIX = f"{PREFIX}/"
TAG_CLUSTER = f"{PREFIX}/cluster"
TAG_NAMESPACE = f"{PREFIX}/namespace"
TAG_NAME = f"{PREFIX}/name"
TAG_UID = f"{PREFIX}/uid"
OWNERSHIP_TAG_KEYS = (TAG_CLUSTER, TAG_NAMESPACE, TAG_NAME, TAG_UID)
#: Tag keys a spec may not set, in any letter case: AWS's own, and the ownership tags.
RESERVED_TAG_PREFIXES = ("aws:", OWNERSHIP_TAG_PREFIX)

#: Role paths AWS reserves for its own roles (service-linked roles, IAM Identity Center).
RESERVED_PATH_PREFIXES = ("/aws-service-role/", "/aws-reserved/")
