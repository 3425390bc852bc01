"""ELBv2 request parameter scalars: integers and booleans as the query protocol sends them.

Both halves of the ELBv2 settings (``settings`` for target groups, ``rule_settings`` for listener
rules) read numbers and flags that may still be strings; these convert them or raise ``ElbError``
with botocore's constraint sentence naming the member.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from portside.core.lb.errors import constraint_message, validation_error

__all__ = ["bool_param", "given", "int_param"]


def int_param(value: Any, member: str, low: int, high: int) -> int:
    """Returns: ``value`` as an int within [low, high]. Raises: ElbError ValidationError."""
    try:
        number = value if isinstance(value, int) and not isinstance(value, bool) else int(str(value).strip())
    except ValueError:
        raise validation_error(constraint_message(value, member, "Member must be an integer")) from None
    if number < low:
        raise validation_error(
            constraint_message(number, member, f"Member must have value greater than or equal to {low}")
        )
    if number > high:
        raise validation_error(
            constraint_message(number, member, f"Member must have value less than or equal to {high}")
        )
    return number


def bool_param(value: Any, member: str) -> bool:
    """Returns: ``value`` as a bool (``true``/``false``, any case). Raises: ElbError ValidationError."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "false"):
        return text == "true"
    raise validation_error(constraint_message(value, member, "Member must be a boolean (true or false)"))


def given(params: Mapping[str, Any], key: str) -> bool:
    return params.get(key) is not None
