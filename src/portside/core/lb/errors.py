"""ELBv2 API errors: one exception class, the AWS error code set per instance.

The ELBv2 API speaks the AWS query protocol; an error answers
``<ErrorResponse><Error><Type>Sender</Type><Code>…</Code><Message>…</Message>``
with HTTP 400 for every code we raise here (spec alb.md §3). ``ElbError`` is a
``PortsideError`` so the API edge renders it like every other portside error:
``code`` is the AWS code, ``status_hint`` the HTTP status.

Messages copy AWS's wording where it is known (``settings.py`` lists where each
came from); the rest name the facts in the same style. ``constraint_message`` builds AWS's generic
"1 validation error detected: …" sentence for shape-level failures (range,
length, pattern, enum), which AWS returns with code ``ValidationError``.
"""

from __future__ import annotations

from collections.abc import Iterable

from portside.errors import PortsideError

__all__ = [
    "ELB_ERROR_CODES",
    "INVALID_CONFIGURATION_REQUEST",
    "INVALID_LOAD_BALANCER_ACTION",
    "TARGET_GROUP_NOT_FOUND",
    "VALIDATION_ERROR",
    "ElbError",
    "constraint_message",
    "invalid_action",
    "invalid_configuration",
    "target_group_not_found",
    "validation_error",
]

VALIDATION_ERROR = "ValidationError"
INVALID_CONFIGURATION_REQUEST = "InvalidConfigurationRequest"
INVALID_LOAD_BALANCER_ACTION = "InvalidLoadBalancerAction"
TARGET_GROUP_NOT_FOUND = "TargetGroupNotFound"

# Every code spec alb.md §3 lists, with its HTTP status (all 400 unless noted).
ELB_ERROR_CODES: dict[str, int] = {
    VALIDATION_ERROR: 400,
    "TargetGroupNotFound": 400,
    "LoadBalancerNotFound": 400,
    "ListenerNotFound": 400,
    "RuleNotFound": 400,
    "InvalidTarget": 400,
    "TooManyTargets": 400,
    "TooManyRegistrationsForTargetId": 400,
    "DuplicateTargetGroupName": 400,
    "DuplicateLoadBalancerName": 400,
    "DuplicateListener": 400,
    "PriorityInUse": 400,
    "TooManyRules": 400,
    "TooManyActions": 400,
    "TooManyTargetGroups": 400,
    INVALID_CONFIGURATION_REQUEST: 400,
    "IncompatibleProtocols": 400,
    "UnsupportedProtocol": 400,
    INVALID_LOAD_BALANCER_ACTION: 400,
    "TargetGroupAssociationLimit": 400,
    "ResourceInUse": 400,
    "OperationNotPermitted": 400,
    "HealthUnavailable": 500,
    "PriorRequestNotComplete": 429,
    "InsufficientCapacity": 500,
}


class ElbError(PortsideError):
    """An ELBv2 API error.

    :param code: the AWS error code (``ValidationError``, ``TargetGroupNotFound`` …).
    :param message: the sentence AWS would put in ``<Message>``.
    :param status: the HTTP status; defaults to the code's status in ``ELB_ERROR_CODES``
        (400 for unknown codes).
    """

    def __init__(self, code: str, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.status_hint = status if status is not None else ELB_ERROR_CODES.get(code, 400)

    @property
    def status(self) -> int:
        """Returns: the HTTP status this error answers with."""
        return self.status_hint

    def __repr__(self) -> str:
        return f"ElbError({self.code!r}, {self.message!r}, status={self.status_hint})"


def constraint_message(value: object, member: str, constraint: str) -> str:
    """AWS's generic shape-validation sentence.

    Returns: e.g. ``1 validation error detected: Value '600' at 'healthCheckIntervalSeconds'
    failed to satisfy constraint: Member must have value less than or equal to 300``.
    """
    return (
        f"1 validation error detected: Value '{value}' at '{member}' "
        f"failed to satisfy constraint: {constraint}"
    )


def validation_error(message: str) -> ElbError:
    """Returns: an ``ElbError`` with code ``ValidationError``."""
    return ElbError(VALIDATION_ERROR, message)


def invalid_configuration(message: str) -> ElbError:
    """Returns: an ``ElbError`` with code ``InvalidConfigurationRequest``."""
    return ElbError(INVALID_CONFIGURATION_REQUEST, message)


def invalid_action(message: str) -> ElbError:
    """Returns: an ``ElbError`` with code ``InvalidLoadBalancerAction``."""
    return ElbError(INVALID_LOAD_BALANCER_ACTION, message)


def target_group_not_found(arns: Iterable[str] | None = None) -> ElbError:
    """Returns: ``TargetGroupNotFound``; naming the ARN(s) when given (as an action's check does)."""
    names = list(arns or ())
    if not names:
        return ElbError(TARGET_GROUP_NOT_FOUND, "The specified target group does not exist.")
    return ElbError(TARGET_GROUP_NOT_FOUND, f"Target groups '{', '.join(names)}' not found")
