"""SSM Parameter Store names, paths and ARNs (pure).

Rules, as AWS states them for PutParameter:

- a name holds letters, digits and ``. - _``, and ``/`` between the levels of a hierarchy;
- a name with a ``/`` must be fully qualified: it begins with ``/`` (``/app/db/password``);
- no name (nor its first level) begins with ``aws`` or ``ssm``, in any case;
- a hierarchy has at most 15 levels;
- the whole name is at most 2048 characters (the model checks that: botocore's ``max``).

A parameter is also given by ARN (``arn:aws:ssm:REGION:ACCOUNT:parameter/NAME``; a
hierarchical name keeps its leading slash out of the ARN) and may carry a version selector
(``NAME:3``). Violations raise ``ValueError`` with AWS's message; callers give it AWS's code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_LEVELS = 15
_CHARS = re.compile(r"^[A-Za-z0-9_.\-/]+$")
_RESERVED = ("aws", "ssm")

NAME_RULE = (
    'Parameter name: can\'t be prefixed with "aws" or "ssm" (case-insensitive). If formed as a path, it can '
    "consist of sub-paths divided by slash symbol; each sub-path can be formed as a mix of letters, numbers "
    "and the following 3 symbols .-_"
)
QUALIFIED_RULE = "Parameter name must be a fully qualified name."
LEVELS_RULE = f"A hierarchy can have a maximum of {MAX_LEVELS} levels."


class HierarchyTooDeep(ValueError):
    """The name has more than MAX_LEVELS levels (AWS's HierarchyLevelLimitExceededException)."""


def check_name(name: str) -> None:
    """ValueError (AWS's message) unless ``name`` is a parameter name PutParameter accepts."""
    if not _CHARS.match(name) or "//" in name or (name != "/" and name.endswith("/")):
        raise ValueError(NAME_RULE)
    if "/" in name and not name.startswith("/"):
        raise ValueError(QUALIFIED_RULE)
    first = name.lstrip("/").split("/", 1)[0].lower()
    if first.startswith(_RESERVED):
        raise ValueError(NAME_RULE)
    if name.count("/") > MAX_LEVELS:
        raise HierarchyTooDeep(LEVELS_RULE)


def check_path(path: str) -> None:
    """ValueError unless ``path`` is a path GetParametersByPath takes (``/`` or ``/a/b``, ``/a/b/`` too)."""
    if path == "/":
        return
    if not path.startswith("/") or not _CHARS.match(path) or "//" in path:
        raise ValueError(
            'The parameter doesn\'t meet the parameter name requirements. The parameter name must begin with a forward '
            'slash "/". It can\'t be prefixed with "aws" or "ssm" (case-insensitive). It must use only letters, '
            "numbers, or the following symbols: . (period), - (hyphen), _ (underscore). Special characters are not "
            "allowed. All sub-paths, if specified, must use the forward slash symbol \"/\". Valid example: /get/"
            "parameters2-/by1./path0_."
        )
    if path.rstrip("/").count("/") > MAX_LEVELS:
        raise HierarchyTooDeep(LEVELS_RULE)


def parameter_arn(region: str, account: str, name: str) -> str:
    return f"arn:aws:ssm:{region}:{account}:parameter/{name.lstrip('/')}"


@dataclass(frozen=True)
class ParameterRef:
    """A parameter as GetParameter(s) and task ``secrets`` name it."""

    region: str | None  # from an ARN; None: the caller's region
    name: str
    version: int | None  # ``NAME:3``; None: the newest


def parse_reference(text: str) -> ParameterRef:
    """``NAME``, ``NAME:VERSION`` or ``arn:aws:ssm:REGION:ACCOUNT:parameter/NAME[:VERSION]``.

    ValueError for an ARN that is not a parameter's, or a selector that is not a version
    (labels are not kept, so ``NAME:label`` cannot be resolved).
    """
    region: str | None = None
    rest = text
    if text.startswith("arn:"):
        parts = text.split(":", 5)
        if len(parts) < 6 or parts[2] != "ssm" or not parts[5].startswith("parameter/"):
            raise ValueError(f"{text} is not the ARN of an SSM parameter (arn:aws:ssm:REGION:ACCOUNT:parameter/NAME)")
        region = parts[3]
        rest = parts[5][len("parameter"):]  # "/NAME" ...
        if rest.count("/") == 1:  # a name without a hierarchy has no slash of its own
            rest = rest[1:]
    name, colon, selector = rest.partition(":")
    version: int | None = None
    if colon:
        if not selector.isdigit():
            raise ValueError(f"{text}: the selector {selector!r} is not a version number (labels are not kept)")
        version = int(selector)
    return ParameterRef(region, name, version)


def in_path(name: str, path: str, recursive: bool) -> bool:
    """Whether ``name`` lies under ``path`` (directly, or at any depth when ``recursive``)."""
    prefix = path if path.endswith("/") else path + "/"
    if not name.startswith(prefix):
        return False
    return recursive or "/" not in name[len(prefix):]
