"""Request and response shapes, driven by botocore's own service models.

portside does not restate AWS's API: the input and output shapes of every ECS, ELBv2 and
Application Auto Scaling operation come from the models botocore ships
(``botocore/data/<service>/<version>/service-2.json.gz``), loaded once per process and cached.

This module is the boundary between wire values and Python values:

- :func:`validate_input` checks a decoded JSON 1.1 request body against the operation's input
  shape, the way AWS's front end does before the service sees the request;
- :func:`parse_query_params` turns an AWS *query protocol* form body
  (``Targets.member.1.Port=80``) into the nested, typed dict botocore started from;
- :func:`render_query_response` and :func:`render_query_error` produce the XML that botocore's
  query parser reads back.

Errors
------
Two layers, in AWS's order (deserialisation first, validation second):

- :class:`~portside.errors.SerializationError` (``SerializationException``): a value has the
  wrong JSON type (``"512"`` for an integer, a string where a list belongs). Raised at the
  first offender. The message is AWS's deserialiser wording (``STRING_VALUE can not be
  converted to an Integer``, ``Start of list found where not expected``) followed by the member
  path in botocore's notation, ``(at 'containerDefinitions[0].memory')``, which AWS itself
  does not include.
- :class:`~portside.errors.InvalidParameterException`: the types are right but a constraint of
  the model fails: a required member is missing or null, a string is not in the enum, a
  number, string length or list length is outside the model's ``min``/``max``. All failures
  are collected and reported in AWS's validation wording::

      2 validation errors detected: Value null at 'family' failed to satisfy constraint:
      Member must not be null; Value 'bogus' at 'networkMode' failed to satisfy constraint:
      Member must satisfy enum value set: [bridge, host, awsvpc, none]

  Paths here use AWS's notation (``containerDefinitions.1.member.image``, lower camel case).
  The exception's ``code`` is the one the service uses for these messages:
  ``InvalidParameterException`` for ECS, ``ValidationException`` for Application Auto Scaling,
  ``ValidationError`` for query-protocol services (ELBv2).

Deliberate leniencies (as AWS's JSON services): unknown members are accepted and ignored, and
``null`` for an optional member counts as absent. Regular-expression ``pattern`` constraints
are not checked (the models use Java regex syntax such as ``\\p{L}``), and ``document`` shapes
are accepted as they are.
"""

from __future__ import annotations

import base64
import binascii
import enum
import functools
import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, cast
from xml.sax.saxutils import escape

import botocore.loaders
from botocore.model import ListShape, MapShape, OperationModel, ServiceModel, Shape, StructureShape

from portside.errors import InvalidParameterException, SerializationError

__all__ = [
    "ELBV2_NAMESPACE",
    "operation_model",
    "parse_query_params",
    "render_query_error",
    "render_query_response",
    "service_model",
    "validate_input",
]

ELBV2_NAMESPACE = "http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/"

_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)
_INT_RE = re.compile(r"^[+-]?\d+$")
# The noun AWS's deserialiser uses in "... can not be converted to <noun>".
_TYPE_NOUNS = {
    "string": "a String",
    "integer": "an Integer",
    "long": "a Long",
    "boolean": "a Boolean",
    "float": "a Float",
    "double": "a Double",
    "timestamp": "a Timestamp",
    "blob": "a Blob",
}
# A request with thousands of bad list items should not produce a megabyte of message.
_MAX_LISTED_ERRORS = 10
# Which code a JSON service uses for "N validation errors detected: ..." messages.
_JSON_VALIDATION_CODES = {
    "ecs": "InvalidParameterException",
    "application-autoscaling": "ValidationException",
    "ssm": "ValidationException",
    "secretsmanager": "ValidationException",
    "monitoring": "ValidationError",  # CloudWatch answers every protocol with its query-era codes
}


# --------------------------------------------------------------------------- models


@functools.cache
def _loader() -> botocore.loaders.Loader:
    return botocore.loaders.Loader()


@functools.cache
def service_model(service: str) -> ServiceModel:
    """The botocore model of ``service`` (``"ecs"``, ``"elbv2"``, ``"application-autoscaling"``).

    Loaded from botocore's data files on first use and cached for the life of the process.

    Raises:
        botocore.exceptions.UnknownServiceError: botocore has no such service.
    """
    return ServiceModel(_loader().load_service_model(service, "service-2"), service_name=service)


def operation_model(service: str, action: str) -> OperationModel | None:
    """The model of ``action`` (e.g. ``"RegisterTaskDefinition"``), or None if ``service`` has none.

    The same object is returned on every call, so its cached shapes are built once.

    Raises:
        botocore.exceptions.UnknownServiceError: botocore has no such service.
    """
    if action not in _operation_names(service):
        return None  # checked first so that client-chosen names never grow the cache
    return _cached_operation_model(service, action)


@functools.cache
def _operation_names(service: str) -> frozenset[str]:
    return frozenset(service_model(service).operation_names)


@functools.cache
def _cached_operation_model(service: str, action: str) -> OperationModel:
    # botocore builds a fresh OperationModel (and re-resolves its shapes) on every call.
    return service_model(service).operation_model(action)


# --------------------------------------------------------------------------- paths

# A path is a tuple of member names (str) and list indexes (int); map keys are ("key", k).
_Path = tuple[Any, ...]


def _wire_path(path: _Path) -> str:
    """botocore's notation: ``containerDefinitions[0].memory``, ``dockerLabels.mykey``."""
    out = ""
    for seg in path:
        if isinstance(seg, int):
            out += f"[{seg}]"
        elif isinstance(seg, tuple):
            out += f".{seg[1]}"
        else:
            out += f".{seg}" if out else seg
    return out


def _aws_path(path: _Path) -> str:
    """AWS's validation notation: ``containerDefinitions.1.member.memory`` (lower camel case)."""
    parts: list[str] = []
    for seg in path:
        if isinstance(seg, int):
            parts.append(f"{seg + 1}.member")
        elif isinstance(seg, tuple):
            parts.append(str(seg[1]))
        else:
            parts.append(seg[:1].lower() + seg[1:])
    return ".".join(parts)


# --------------------------------------------------------------------------- JSON validation


def _type_error(value: Any, expected: str, path: _Path) -> SerializationError:
    """AWS's deserialiser message for ``value`` found where ``expected`` (a shape type) belongs."""
    noun = _TYPE_NOUNS.get(expected, expected)
    if isinstance(value, list):
        text = "Start of list found where not expected"
    elif isinstance(value, dict):
        text = "Start of structure or map found where not expected"
    elif expected == "list":
        text = "Expected list or null"
    elif expected in ("structure", "map"):
        text = "Expected map or null"
    elif isinstance(value, bool):
        text = f"{'TRUE' if value else 'FALSE'}_VALUE can not be converted to {noun}"
    elif isinstance(value, (int, float)):
        text = f"NUMBER_VALUE can not be converted to {noun}"
    elif isinstance(value, str):
        # AWS really says "an Boolean" for this one combination.
        text = f"STRING_VALUE can not be converted to {'an Boolean' if expected == 'boolean' else noun}"
    else:
        text = f"{type(value).__name__} can not be converted to {noun}"
    where = _wire_path(path)
    return SerializationError(f"{text} (at '{where}')" if where else text)


def _render_value(value: Any) -> str:
    """Java-ish rendering AWS uses inside ``Value '...'``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(_render_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}={_render_value(v)}" for k, v in value.items()) + "}"
    return str(value)


def _violation(shape: Shape, value: Any, path: _Path, constraint: str) -> str:
    if value is None:
        shown = "Value null"
    elif shape.metadata.get("sensitive"):
        shown = "Value"
    else:
        shown = f"Value '{_render_value(value)}'"
    return f"{shown} at '{_aws_path(path)}' failed to satisfy constraint: {constraint}"


def _check_range(shape: Shape, value: Any, size: float, path: _Path, noun: str, errors: list[str]) -> None:
    lo, hi = shape.metadata.get("min"), shape.metadata.get("max")
    if lo is not None and size < lo:
        errors.append(
            _violation(shape, value, path, f"Member must have {noun} greater than or equal to {lo}")
        )
    if hi is not None and size > hi:
        errors.append(_violation(shape, value, path, f"Member must have {noun} less than or equal to {hi}"))


def _validation_code(op: OperationModel) -> str:
    if op.metadata.get("protocol") == "query":
        return "ValidationError"
    return _JSON_VALIDATION_CODES.get(op.metadata.get("endpointPrefix", ""), "InvalidParameterException")


def validate_input(op: OperationModel, params: dict[str, Any]) -> None:
    """Check request ``params`` (a decoded JSON body) against ``op``'s input shape.

    Values are checked, never converted. Timestamps may be epoch numbers, ISO 8601 strings or
    ``datetime``; blobs base64 strings or ``bytes`` (so the output of
    :func:`parse_query_params` validates too).

    Raises:
        SerializationError: a value has the wrong JSON type (first one found).
        InvalidParameterException: model constraints fail (all of them, in one message);
            ``code`` is set to the code the service uses (see the module docstring).
    """
    if not isinstance(params, dict):
        raise _type_error(params, "structure", ())
    shape = op.input_shape
    if shape is None:
        return
    errors: list[str] = []
    _validate_structure(shape, params, (), errors)
    if errors:
        count = len(errors)
        listed = "; ".join(errors[:_MAX_LISTED_ERRORS])
        if count > _MAX_LISTED_ERRORS:
            listed += f"; and {count - _MAX_LISTED_ERRORS} more"
        exc = InvalidParameterException(
            f"{count} validation error{'s' if count > 1 else ''} detected: {listed}"
        )
        exc.code = _validation_code(op)
        raise exc


def _validate(shape: Shape, value: Any, path: _Path, errors: list[str]) -> None:
    kind = shape.type_name
    if shape.metadata.get("document"):
        return
    if kind == "structure":
        if not isinstance(value, dict):
            raise _type_error(value, kind, path)
        _validate_structure(shape, value, path, errors)
    elif kind == "list":
        if not isinstance(value, list):
            raise _type_error(value, kind, path)
        member = cast(ListShape, shape).member
        for i, item in enumerate(value):
            if item is None:
                errors.append(_violation(member, None, (*path, i), "Member must not be null"))
            else:
                _validate(member, item, (*path, i), errors)
        _check_range(shape, value, len(value), path, "length", errors)
    elif kind == "map":
        if not isinstance(value, dict):
            raise _type_error(value, kind, path)
        key_shape, value_shape = cast(MapShape, shape).key, cast(MapShape, shape).value
        for k, v in value.items():
            _validate(key_shape, k, (*path, ("key", k)), errors)
            if v is None:
                errors.append(_violation(value_shape, None, (*path, ("key", k)), "Member must not be null"))
            else:
                _validate(value_shape, v, (*path, ("key", k)), errors)
        _check_range(shape, value, len(value), path, "length", errors)
    elif kind == "string":
        if isinstance(value, enum.Enum):
            value = value.value
        if not isinstance(value, str):
            raise _type_error(value, kind, path)
        allowed = shape.metadata.get("enum")
        if allowed and value not in allowed:
            errors.append(
                _violation(shape, value, path, f"Member must satisfy enum value set: [{', '.join(allowed)}]")
            )
        _check_range(shape, value, len(value), path, "length", errors)
    elif kind in ("integer", "long"):
        if isinstance(value, bool) or not isinstance(value, int):
            raise _type_error(value, kind, path)
        lo, hi = _INT32 if kind == "integer" else _INT64
        if not lo <= value <= hi:
            raise _type_error(value, kind, path)
        _check_range(shape, value, value, path, "value", errors)
    elif kind in ("float", "double"):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise _type_error(value, kind, path)
        _check_range(shape, value, value, path, "value", errors)
    elif kind == "boolean":
        if not isinstance(value, bool):
            raise _type_error(value, kind, path)
    elif kind == "timestamp":
        if isinstance(value, datetime):
            return
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return
        if isinstance(value, str) and _parse_iso8601(value) is not None:
            return
        raise _type_error(value, kind, path)
    elif kind == "blob":
        if isinstance(value, (bytes, bytearray)):
            data = bytes(value)
        elif isinstance(value, str):
            try:
                data = base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                raise SerializationError(
                    f"Base64 encoded value is invalid (at '{_wire_path(path)}')"
                ) from None
        else:
            raise _type_error(value, kind, path)
        _check_range(shape, value, len(data), path, "length", errors)


def _validate_structure(shape: Shape, value: dict[str, Any], path: _Path, errors: list[str]) -> None:
    # Walk in model order, so the report does not depend on the client's key order. Members
    # the model does not know are ignored; null counts as absent.
    structure = cast(StructureShape, shape)
    required = structure.required_members
    for name, member in structure.members.items():
        item = value.get(name)
        if item is not None:
            _validate(member, item, (*path, name), errors)
        elif name in required:
            errors.append(_violation(member, None, (*path, name), "Member must not be null"))


def _parse_iso8601(text: str) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


# --------------------------------------------------------------------------- query protocol input


class _Node:
    """One dotted segment of query parameter names: ``Targets`` -> ``member`` -> ``1`` -> ``Port``."""

    __slots__ = ("children", "name", "value")

    def __init__(self, name: str) -> None:
        self.name = name
        self.value: str | None = None
        self.children: dict[str, _Node] = {}


def parse_query_params(op: OperationModel, form: Mapping[str, str]) -> dict[str, Any]:
    """Turn a query-protocol form (``Action=..&Names.member.1=..``) into typed, nested params.

    ``form`` is the decoded form body (or query string) as a mapping of name to value; ``Action``
    and ``Version`` are skipped. Lists come from ``Name.member.N`` (1-based, ordered by N;
    ``Name=`` is an empty list), maps from ``Name.entry.N.key`` / ``.value``, structures from
    dotted names, honouring the model's ``locationName`` and ``flattened`` settings as botocore's
    ``QuerySerializer`` does. Scalars become ``int``, ``bool``, ``float``, ``datetime`` (UTC) or
    ``bytes`` per the model. Parameters the model does not know are ignored.

    The result has exactly the shape botocore serialised from, so it can be handed to
    :func:`validate_input` for required/enum/range checks.

    Raises:
        SerializationError: a value or a parameter name does not fit the model; the message
            names the parameter.
    """
    shape = op.input_shape
    if shape is None:
        return {}
    root = _Node("")
    for key, value in form.items():
        if key in ("Action", "Version"):
            continue
        node = root
        for part in key.split("."):
            child = node.children.get(part)
            if child is None:
                child = node.children[part] = _Node(f"{node.name}.{part}" if node.name else part)
            node = child
        node.value = value
    return _q_structure(shape, root)


def _q_error(node: _Node, detail: str) -> SerializationError:
    return SerializationError(f"Invalid value for parameter {node.name}: {detail}")


def _q_parse(shape: Shape, node: _Node) -> Any:
    kind = shape.type_name
    if kind == "structure":
        return _q_structure(shape, node)
    if kind == "list":
        return _q_list(shape, node)
    if kind == "map":
        return _q_map(shape, node)
    if node.children:
        raise _q_error(node, f"expected a single {kind} value, got nested parameters")
    return _q_scalar(shape, node)


def _q_structure(shape: Shape, node: _Node) -> dict[str, Any]:
    # "Matcher=" with nothing under it is botocore's empty structure; any other value is not.
    if node.value is not None and node.name and (node.children or node.value != ""):
        raise _q_error(node, "expected nested parameters, got a value")
    result: dict[str, Any] = {}
    for name, member in cast(StructureShape, shape).members.items():
        child = node.children.get(_q_name(member, name))
        if child is not None:
            result[name] = _q_parse(member, child)
    return result


def _q_name(shape: Shape, default: str) -> str:
    name = shape.serialization.get("name")
    return name if name else default


def _q_indexed(node: _Node) -> list[_Node]:
    items = []
    for token, child in node.children.items():
        if not token.isdigit() or token.startswith("0"):
            raise SerializationError(f"{token} is not a valid index (parameter {child.name})")
        items.append((int(token), child))
    return [child for _, child in sorted(items, key=lambda pair: pair[0])]


def _q_container(shape: Shape, node: _Node, element: str) -> list[_Node] | None:
    """The indexed children of a list or map node, or None when it is the empty form ``Name=``."""
    if not node.children:
        if node.value == "":
            return None
        raise _q_error(node, f"expected {shape.type_name} members as {node.name}.{element}.N")
    if node.value is not None:
        raise _q_error(node, "given both as a value and with members")
    if shape.serialization.get("flattened"):
        return _q_indexed(node)
    if set(node.children) != {element}:
        bad = next(name for name in node.children if name != element)
        raise SerializationError(
            f"Unexpected parameter {node.children[bad].name}: members of {node.name} are named "
            f"{node.name}.{element}.N"
        )
    return _q_indexed(node.children[element])


def _q_list(shape: Shape, node: _Node) -> list[Any]:
    member = cast(ListShape, shape).member
    items = _q_container(shape, node, _q_name(member, "member"))
    return [] if items is None else [_q_parse(member, item) for item in items]


def _q_map(shape: Shape, node: _Node) -> dict[Any, Any]:
    key_shape, value_shape = cast(MapShape, shape).key, cast(MapShape, shape).value
    entries = _q_container(shape, node, "entry")
    result: dict[Any, Any] = {}
    key_name, value_name = _q_name(key_shape, "key"), _q_name(value_shape, "value")
    for entry in entries or []:
        key_node = entry.children.get(key_name)
        if key_node is None:
            raise SerializationError(f"Missing parameter {entry.name}.{key_name}")
        value_node = entry.children.get(value_name)
        result[_q_parse(key_shape, key_node)] = (
            None if value_node is None else _q_parse(value_shape, value_node)
        )
    return result


def _q_scalar(shape: Shape, node: _Node) -> Any:
    text = node.value if node.value is not None else ""
    kind = shape.type_name
    if kind == "string":
        return text
    if kind in ("integer", "long"):
        lo, hi = _INT32 if kind == "integer" else _INT64
        if not _INT_RE.match(text) or not lo <= int(text) <= hi:
            raise _q_error(node, f"'{text}' is not a valid {kind}")
        return int(text)
    if kind == "boolean":
        lowered = text.lower()
        if lowered not in ("true", "false"):
            raise _q_error(node, f"'{text}' is not a valid boolean (true or false)")
        return lowered == "true"
    if kind in ("float", "double"):
        try:
            number = float(text)
        except ValueError:
            number = math.nan
        if not math.isfinite(number):
            raise _q_error(node, f"'{text}' is not a valid number")
        return number
    if kind == "timestamp":
        if _INT_RE.match(text):
            return datetime.fromtimestamp(int(text), tz=UTC)
        parsed = _parse_iso8601(text)
        if parsed is None:
            raise _q_error(node, f"'{text}' is not an ISO 8601 timestamp")
        return parsed.astimezone(UTC)
    if kind == "blob":
        try:
            return base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise _q_error(node, "not valid base64") from None
    raise _q_error(node, f"unsupported shape type {kind}")


# --------------------------------------------------------------------------- query protocol output


def render_query_response(op: OperationModel, result: Mapping[str, Any], request_id: str) -> bytes:
    """Serialise ``result`` (a dict in the output shape) as the query-protocol XML response.

    ``<{Op}Response xmlns=..><{Op}Result>..</{Op}Result><ResponseMetadata><RequestId>..``,
    lists as ``<member>`` elements, maps as ``<entry><key/><value/></entry>``, timestamps as
    ISO 8601 UTC with milliseconds, booleans ``true``/``false``, text XML-escaped. ``None``
    values are left out. ``enum.Enum`` members are written as their value. An operation with
    no output shape gets only the metadata.

    Raises:
        ValueError: ``result`` has a member the output shape does not, or an unparsable
            timestamp string (a bug in the caller).
        TypeError: a value has the wrong Python type for its shape (a bug in the caller).
    """
    namespace = op.metadata.get("xmlNamespace", "")
    out: list[str] = [f'<{op.name}Response xmlns="{escape(namespace, {chr(34): "&quot;"})}">']
    shape = op.output_shape
    if shape is not None:
        wrapper = shape.serialization.get("resultWrapper", f"{op.name}Result")
        body: list[str] = []
        _x_structure(shape, result, body, shape.name)
        out.append(f"<{wrapper}>{''.join(body)}</{wrapper}>" if body else f"<{wrapper}/>")
    out.append(f"<ResponseMetadata><RequestId>{_x_text(request_id)}</RequestId></ResponseMetadata>")
    out.append(f"</{op.name}Response>")
    return "".join(out).encode("utf-8")


def render_query_error(
    code: str,
    message: str,
    request_id: str,
    sender: bool = True,
    *,
    namespace: str = ELBV2_NAMESPACE,
) -> bytes:
    """The query-protocol error document botocore parses into ``Error.Code`` / ``Error.Message``.

    ``sender`` selects ``<Type>Sender</Type>`` (the client's fault, HTTP 4xx) or ``Receiver``
    (the server's, 5xx).
    """
    kind = "Sender" if sender else "Receiver"
    return (
        f'<ErrorResponse xmlns="{escape(namespace, {chr(34): "&quot;"})}">'
        f"<Error><Type>{kind}</Type><Code>{_x_text(code)}</Code><Message>{_x_text(message)}</Message></Error>"
        f"<RequestId>{_x_text(request_id)}</RequestId></ErrorResponse>"
    ).encode()


def _x_text(value: str) -> str:
    # \r would be normalised away by any XML parser; a character reference keeps it.
    return escape(value).replace("\r", "&#13;")


def _x_structure(shape: Shape, value: Mapping[str, Any], out: list[str], where: str) -> None:
    if not isinstance(value, Mapping):
        raise TypeError(f"{where}: expected a dict for structure {shape.name}, got {type(value).__name__}")
    members = cast(StructureShape, shape).members
    for key in value:
        if key not in members:
            raise ValueError(f"{where}: {shape.name} has no member {key!r}")
    for name, member in members.items():
        item = value.get(name)
        if item is None:
            continue
        _x_member(member, _q_name(member, name), item, out, f"{where}.{name}")


def _x_member(shape: Shape, tag: str, value: Any, out: list[str], where: str) -> None:
    kind = shape.type_name
    flattened = shape.serialization.get("flattened", False)
    if kind == "list":
        if not isinstance(value, (list, tuple)):
            raise TypeError(f"{where}: expected a list, got {type(value).__name__}")
        member = cast(ListShape, shape).member
        if flattened:
            item_tag = _q_name(member, tag)
            for i, item in enumerate(value):
                _x_member(member, item_tag, item, out, f"{where}[{i}]")
            return
        item_tag = _q_name(member, "member")
        out.append(f"<{tag}>")
        for i, item in enumerate(value):
            _x_member(member, item_tag, item, out, f"{where}[{i}]")
        out.append(f"</{tag}>")
    elif kind == "map":
        if not isinstance(value, Mapping):
            raise TypeError(f"{where}: expected a dict, got {type(value).__name__}")
        key_shape, value_shape = cast(MapShape, shape).key, cast(MapShape, shape).value
        key_tag, value_tag = _q_name(key_shape, "key"), _q_name(value_shape, "value")
        if not flattened:
            out.append(f"<{tag}>")
        for k, v in value.items():
            out.append(f"<{tag}>" if flattened else "<entry>")
            _x_member(key_shape, key_tag, k, out, f"{where}.{k}")
            if v is not None:
                _x_member(value_shape, value_tag, v, out, f"{where}.{k}")
            out.append(f"</{tag}>" if flattened else "</entry>")
        if not flattened:
            out.append(f"</{tag}>")
    elif kind == "structure":
        inner: list[str] = []
        _x_structure(shape, value, inner, where)
        out.append(f"<{tag}>{''.join(inner)}</{tag}>")
    else:
        out.append(f"<{tag}>{_x_text(_x_scalar(shape, value, where))}</{tag}>")


def _x_scalar(shape: Shape, value: Any, where: str) -> str:
    kind = shape.type_name
    if isinstance(value, enum.Enum):
        value = value.value
    if kind == "string":
        if not isinstance(value, str):
            raise TypeError(f"{where}: expected str, got {type(value).__name__}")
        return value
    if kind == "boolean":
        if not isinstance(value, bool):
            raise TypeError(f"{where}: expected bool, got {type(value).__name__}")
        return "true" if value else "false"
    if kind in ("integer", "long"):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{where}: expected int, got {type(value).__name__}")
        return str(value)
    if kind in ("float", "double"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"{where}: expected a number, got {type(value).__name__}")
        return repr(float(value))
    if kind == "timestamp":
        return _x_timestamp(shape, value, where)
    if kind == "blob":
        if isinstance(value, str):
            value = value.encode("utf-8")
        if not isinstance(value, (bytes, bytearray)):
            raise TypeError(f"{where}: expected bytes, got {type(value).__name__}")
        return base64.b64encode(bytes(value)).decode("ascii")
    raise ValueError(f"{where}: unsupported shape type {kind}")


def _x_timestamp(shape: Shape, value: Any, where: str) -> str:
    if isinstance(value, bool):
        raise TypeError(f"{where}: expected a datetime, got bool")
    if isinstance(value, (int, float)):
        value = datetime.fromtimestamp(value, tz=UTC)
    elif isinstance(value, str):
        parsed = _parse_iso8601(value)
        if parsed is None:
            raise ValueError(f"{where}: {value!r} is not an ISO 8601 timestamp")
        value = parsed
    if not isinstance(value, datetime):
        raise TypeError(f"{where}: expected a datetime, got {type(value).__name__}")
    stamp: datetime = (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)
    fmt = shape.serialization.get("timestampFormat", "iso8601")
    if fmt == "unixTimestamp":
        return repr(stamp.timestamp())
    if fmt == "rfc822":
        return stamp.strftime("%a, %d %b %Y %H:%M:%S GMT")
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"
