"""CloudWatch's error codes (the query-era codes it answers in every protocol)."""

from __future__ import annotations

from portside.errors import PortsideError


class CloudWatchError(PortsideError):
    status_hint = 400

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def invalid(message: str) -> CloudWatchError:
    return CloudWatchError("InvalidParameterValue", message)


def invalid_value(value: object, field: str, rule: str = "") -> CloudWatchError:
    suffix = f": {rule}" if rule else "."
    return CloudWatchError("InvalidParameterValue", f"The value {value} for parameter {field} is not valid{suffix}")


def missing(field: str) -> CloudWatchError:
    return CloudWatchError("MissingParameter", f"The parameter {field} is required.")


def combination(message: str) -> CloudWatchError:
    return CloudWatchError("InvalidParameterCombination", message)


def unsupported(field: str, why: str = "portside does not implement it") -> CloudWatchError:
    return CloudWatchError("InvalidParameterValue", f"The parameter {field} is not supported: {why}.")
