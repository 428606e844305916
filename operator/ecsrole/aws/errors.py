"""AWS failures translated into the few kinds the reconciler acts on (no botocore types leak)."""

from __future__ import annotations

from enum import StrEnum

THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "RequestThrottled",
        "SlowDown",
        "PriorRequestNotComplete",
    }
)
ACCESS_DENIED_CODES = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "UnauthorizedOperation",
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "ExpiredToken",
        "ExpiredTokenException",
        "SignatureDoesNotMatch",
    }
)


class FailureKind(StrEnum):
    """What the reconciler does next; values are Synced condition reasons."""

    ACCESS_DENIED = "AccessDenied"
    THROTTLED = "Throttled"
    AWS_ERROR = "AwsError"


class AwsCallError(Exception):
    """An AWS call failed after botocore's own retries."""

    def __init__(self, kind: FailureKind, operation: str, code: str, message: str) -> None:
        super().__init__(f"{operation}: {code}: {message}" if code else f"{operation}: {message}")
        self.kind = kind
        self.operation = operation
        self.code = code
        self.message = message


class NotFoundError(AwsCallError):
    """NoSuchEntity: the role (or the thing the call names) does not exist, or not yet."""


def classify(code: str, http_status: int | None) -> FailureKind:
    if code in THROTTLING_CODES:
        return FailureKind.THROTTLED
    if code in ACCESS_DENIED_CODES or http_status == 403:
        return FailureKind.ACCESS_DENIED
    return FailureKind.AWS_ERROR
