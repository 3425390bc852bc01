"""The ECS cluster query language (``memberOf`` expressions), compiled to predicates.

Theory of operation
-------------------
:func:`compile_expression` parses an expression once and returns a :class:`Predicate`, a
callable over an :class:`InstanceView` (any object with the container instance's fields:
:class:`portside.core.placement.Instance`, or the placement engine's mutable copy of it).
Parsing is a scannerless recursive descent over the text, so every error names the
0-based position where it was found and raises
:class:`~portside.errors.InvalidParameterException`. Compiling is pure and cached.

Grammar (ECS ``cluster-query-language.md``; keywords and word operators are case-insensitive)::

    expression := and-expr ( ("||" | "or") and-expr )*
    and-expr   := unary ( ("&&" | "and") unary )*
    unary      := ("!" | "not") unary | "(" expression ")" | comparison
    comparison := subject operator [argument]
    subject    := agentConnected | agentVersion | attribute:<name> | ec2InstanceId
                | registeredAt | runningTasksCount | task:group
    operator   := "==" equals | "!=" not_equals | ">" greater_than | ">=" greater_than_equal
                | "<" less_than | "<=" less_than_equal | exists | "!exists" not_exists
                | in | "!in" not_in | "=~" matches | "!~" not_matches
    argument   := value | "[" value ("," value)* "]"        (lists for in / !in)
    value      := bare word (no blanks, no "()[],", no "&&" or "||") | 'quoted' | "quoted"

Semantics:

* Each subject accepts the operators ECS documents for it (``attribute:`` takes all of
  them, ``task:group`` takes the equality, list, pattern and exists operators); any other
  operator is refused at compile time.
* Every negative operator is exactly ``not`` of its positive twin (``!=`` of ``==``,
  ``!in`` of ``in``, ``!~`` of ``=~``, ``!exists`` of ``exists``). So a missing attribute
  makes ``==``, ``in``, ``=~``, ``>``… false and ``!=``, ``!in``, ``!~`` true.
* ``task:group`` is multi-valued: the groups of the tasks the instance runs (count > 0).
  A positive operator is true when *some* group satisfies it: ``task:group == x`` means
  "runs a task of group x"; ``task:group != x`` means "runs no task of group x".
* ``*`` in a value of ``==``, ``!=``, ``in``, ``!in`` on a string subject matches any run
  of characters (``attribute:ecs.instance-type == t2.*``); every other character is literal.
* ``>``, ``>=``, ``<``, ``<=``: ``runningTasksCount`` compares integers, ``registeredAt``
  compares instants (arguments ``2018-06-18T22:28:28+00:00``, ``…Z``, ``…28`` (UTC),
  ``2018-06-18`` (UTC midnight) or epoch seconds), ``agentVersion`` compares dotted
  versions part by part (``1.9.0 < 1.14.5``), and an attribute compares as numbers when
  both sides are numbers, else as strings. ``agentConnected`` compares with ``true``/``false``.
* ``=~`` / ``!~`` use Python's :mod:`re` with :func:`re.fullmatch` (Java's
  ``String.matches``: the whole value must match) and :data:`re.ASCII` (so ``\\w``, ``\\d``,
  ``\\s``, ``\\b`` are ASCII-only, as in Java by default). Differences from
  ``java.util.regex``: no ``\\p{…}`` classes, no ``\\Q…\\E`` quoting, no class
  intersection ``[a-z&&[^e]]``, no ``\\h``/``\\R``/``\\X``/``\\z``; named groups are written
  ``(?P<name>…)``. Possessive quantifiers and atomic groups work (Python ≥ 3.11).
* ECS forbids parentheses inside a single comparison, so a bare regex cannot hold ``(``,
  ``)``, ``[`` or ``,``; quote it (a portside extension): ``=~ '(m5|c5)\\..*'``.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Protocol

from portside.errors import InvalidParameterException

__all__ = ["DYNAMIC_SUBJECTS", "MAX_EXPRESSION_LENGTH", "InstanceView", "Predicate", "compile_expression"]

MAX_EXPRESSION_LENGTH = 2000
# Subjects whose value changes as tasks are placed; the placement engine re-evaluates them
DYNAMIC_SUBJECTS = frozenset({"runningTasksCount", "task:group"})


class InstanceView(Protocol):
    """The container-instance fields an expression can read."""

    @property
    def agent_connected(self) -> bool: ...
    @property
    def agent_version(self) -> str: ...
    @property
    def attributes(self) -> Mapping[str, str]: ...
    @property
    def ec2_instance_id(self) -> str: ...
    @property
    def registered_at(self) -> float: ...
    @property
    def running_tasks_count(self) -> int: ...
    @property
    def task_groups(self) -> Mapping[str, int]: ...


Test = Callable[[InstanceView], bool]


@dataclass(frozen=True, slots=True)
class Predicate:
    """A compiled expression. ``subjects`` lists the subjects it reads (``attribute:x`` as is)."""

    text: str
    subjects: frozenset[str]
    test: Test

    def __call__(self, view: InstanceView) -> bool:
        return self.test(view)

    @property
    def dynamic(self) -> bool:
        """True when the result can change as tasks are placed (runningTasksCount, task:group)."""
        return not self.subjects.isdisjoint(DYNAMIC_SUBJECTS)


_EQ, _LIST, _MATCH, _EXISTS = ("==", "!="), ("in", "!in"), ("=~", "!~"), ("exists", "!exists")
_ORDER = (">", ">=", "<", "<=")
VALID_OPERATORS: dict[str, tuple[str, ...]] = {
    "agentConnected": _EQ + _LIST + _MATCH,
    "agentVersion": _EQ + _ORDER,
    "attribute": _EQ + _ORDER + _EXISTS + _LIST + _MATCH,
    "ec2InstanceId": _EQ + _LIST + _MATCH,
    "registeredAt": _EQ + _ORDER,
    "runningTasksCount": _EQ + _ORDER,
    "task:group": _EQ + _LIST + _MATCH + _EXISTS,
}
_WORD_OPERATORS = {
    "equals": "==", "not_equals": "!=", "greater_than": ">", "greater_than_equal": ">=",
    "less_than": "<", "less_than_equal": "<=", "exists": "exists", "not_exists": "!exists",
    "in": "in", "not_in": "!in", "matches": "=~", "not_matches": "!~",
}  # fmt: skip
_SYMBOL_OPERATORS = ("!exists", "!in", "==", "!=", ">=", "<=", "=~", "!~", ">", "<")
_NEGATIVE = {"!=": "==", "!in": "in", "!~": "=~", "!exists": "exists"}
_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq,
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}
_SUBJECT_RE = re.compile(r"[A-Za-z][A-Za-z0-9_]*(?::[A-Za-z0-9_.\-/\\]{1,128})?")
_WORD_RE = re.compile(r"[A-Za-z_]+")
_BARE_STOP = frozenset(" \t\r\n()[],")


def _is_word(text: str, pos: int, word: str) -> bool:
    end = pos + len(word)
    return text[pos:end].lower() == word and (
        end == len(text) or not (text[end].isalnum() or text[end] == "_")
    )


def _version_key(text: str) -> tuple[tuple[int, int | str], ...]:
    parts = text.strip().lstrip("vV").split(".")
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in parts)


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.subjects: set[str] = set()

    def fail(self, message: str, pos: int | None = None) -> InvalidParameterException:
        at = self.pos if pos is None else pos
        near = self.text[at : at + 20] or "end of expression"
        return InvalidParameterException(f"Invalid expression at position {at} (near '{near}'): {message}")

    def skip(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def keyword(self, symbol: str, word: str) -> bool:
        self.skip()
        if self.text.startswith(symbol, self.pos):
            self.pos += len(symbol)
            return True
        if _is_word(self.text, self.pos, word):
            self.pos += len(word)
            return True
        return False

    def parse(self) -> Test:
        self.skip()
        if self.pos == len(self.text):
            raise self.fail("the expression is empty")
        test = self.parse_or()
        self.skip()
        if self.pos != len(self.text):
            raise self.fail("expected '&&', '||' or the end of the expression")
        return test

    def parse_or(self) -> Test:
        terms = [self.parse_and()]
        while self.keyword("||", "or"):
            terms.append(self.parse_and())
        if len(terms) == 1:
            return terms[0]
        return lambda v: any(t(v) for t in terms)

    def parse_and(self) -> Test:
        terms = [self.parse_unary()]
        while self.keyword("&&", "and"):
            terms.append(self.parse_unary())
        if len(terms) == 1:
            return terms[0]
        return lambda v: all(t(v) for t in terms)

    def parse_unary(self) -> Test:
        self.skip()
        if self.text.startswith("!", self.pos) or _is_word(self.text, self.pos, "not"):
            self.pos += 1 if self.text[self.pos] == "!" else 3
            inner = self.parse_unary()
            return lambda v: not inner(v)
        if self.text.startswith("(", self.pos):
            opened = self.pos
            self.pos += 1
            inner = self.parse_or()
            self.skip()
            if not self.text.startswith(")", self.pos):
                raise self.fail(f"expected ')' to close the '(' at position {opened}")
            self.pos += 1
            return inner
        return self.parse_comparison()

    def parse_comparison(self) -> Test:
        start = self.pos
        m = _SUBJECT_RE.match(self.text, self.pos)
        subject = m.group(0) if m else ""
        kind = "attribute" if subject.startswith("attribute:") else subject
        if subject == "attribute":
            raise self.fail("expected an attribute name after 'attribute:'", self.pos + len(subject))
        if kind not in VALID_OPERATORS:
            raise self.fail(
                "expected a subject (agentConnected, agentVersion, attribute:<name>, ec2InstanceId, "
                "registeredAt, runningTasksCount, task:group)"
            )
        self.pos = m.end() if m else self.pos
        self.subjects.add(subject)
        self.skip()
        op_pos = self.pos
        op = self.parse_operator()
        if op not in VALID_OPERATORS[kind]:
            valid = ", ".join(VALID_OPERATORS[kind])
            raise self.fail(f"operator '{op}' is not valid for subject '{subject}' (valid: {valid})", op_pos)
        self.skip()
        arg_pos = self.pos
        args: list[str] = []
        if op in _LIST:
            args = self.parse_list()
        elif op not in _EXISTS:
            args = [self.parse_value()]
        return _comparison(self, subject, kind, op, args, arg_pos if args else start)

    def parse_operator(self) -> str:
        for symbol in _SYMBOL_OPERATORS:
            if self.text.startswith(symbol, self.pos):
                if symbol[-1].isalpha() and not _is_word(self.text, self.pos + 1, symbol[1:]):
                    continue
                self.pos += len(symbol)
                return symbol
        m = _WORD_RE.match(self.text, self.pos)
        if m and m.group(0).lower() in _WORD_OPERATORS:
            self.pos = m.end()
            return _WORD_OPERATORS[m.group(0).lower()]
        raise self.fail("expected an operator (==, !=, >, >=, <, <=, exists, !exists, in, !in, =~, !~)")

    def parse_list(self) -> list[str]:
        if not self.text.startswith("[", self.pos):
            return [self.parse_value()]
        self.pos += 1
        values = [self.parse_value()]
        self.skip()
        while self.text.startswith(",", self.pos):
            self.pos += 1
            values.append(self.parse_value())
            self.skip()
        if not self.text.startswith("]", self.pos):
            raise self.fail("expected ',' or ']' in the argument list")
        self.pos += 1
        return values

    def parse_value(self) -> str:
        self.skip()
        text, start = self.text, self.pos
        if start < len(text) and text[start] in "'\"":
            end = text.find(text[start], start + 1)
            if end < 0:
                raise self.fail(f"unterminated quoted value (missing {text[start]})", start)
            self.pos = end + 1
            return text[start + 1 : end]
        end = start
        while end < len(text) and text[end] not in _BARE_STOP and text[end : end + 2] not in ("&&", "||"):
            end += 1
        if end == start:
            raise self.fail("expected a value")
        self.pos = end
        return text[start:end]


def _string_matcher(value: str) -> Callable[[str], bool]:
    if "*" not in value:
        return value.__eq__
    rx = re.compile(".*".join(re.escape(part) for part in value.split("*")), re.DOTALL)
    return lambda x: rx.fullmatch(x) is not None


def _value_test(
    p: _Parser, subject: str, kind: str, op: str, args: list[str], pos: int
) -> Callable[[Any], bool]:
    """A test of one subject value (never None) for a positive operator."""
    if op == "=~":
        try:
            rx = re.compile(args[0], re.ASCII)
        except re.error as exc:
            raise p.fail(f"invalid regular expression '{args[0]}': {exc}", pos) from None
        return lambda x: rx.fullmatch(str(x)) is not None
    if kind == "runningTasksCount":
        try:
            nums = [int(a) for a in args]
        except ValueError:
            raise p.fail(f"runningTasksCount compares with an integer (got '{args[0]}')", pos) from None
        return lambda x: _COMPARE[op](x, nums[0])
    if kind == "registeredAt":
        at = _instant(p, args[0], pos)
        return lambda x: _COMPARE[op](x, at)
    if kind == "agentConnected":
        wanted = {a.lower() for a in args}
        if not wanted <= {"true", "false"}:
            raise p.fail(f"agentConnected compares with true or false (got '{args[0]}')", pos)
        return lambda x: str(x) in wanted
    if op in ("==", "in"):
        matchers = [_string_matcher(a) for a in args]
        return lambda x: any(m(str(x)) for m in matchers)
    compare, arg = _COMPARE[op], args[0]
    if kind == "agentVersion":
        key = _version_key(arg)
        return lambda x: compare(_version_key(str(x)), key)
    num = _number(arg)

    def ordered(x: object) -> bool:
        xn = _number(str(x)) if num is not None else None
        return compare(xn, num) if xn is not None else compare(str(x), arg)

    return ordered


def _instant(p: _Parser, arg: str, pos: int) -> float:
    num = _number(arg)
    if num is not None:
        return num
    try:
        at = datetime.fromisoformat(arg)
    except ValueError:
        raise p.fail(
            f"registeredAt compares with a date such as 2018-06-18T22:28:28Z (got '{arg}')", pos
        ) from None
    return (at if at.tzinfo else at.replace(tzinfo=UTC)).timestamp()


def _comparison(p: _Parser, subject: str, kind: str, op: str, args: list[str], pos: int) -> Test:
    positive = _NEGATIVE.get(op, op)
    test = _value_test(p, subject, kind, positive, args, pos) if positive != "exists" else None
    fn: Test
    if kind == "task:group":
        if test is None:
            fn = lambda v: any(c > 0 for c in v.task_groups.values())
        else:
            fn = lambda v: any(c > 0 and test(g) for g, c in v.task_groups.items())
    elif kind == "attribute":
        name = subject[len("attribute:") :]
        if test is None:
            fn = lambda v: name in v.attributes
        else:
            fn = lambda v: (x := v.attributes.get(name)) is not None and test(x)
    else:
        assert test is not None
        get = _GETTERS[kind]
        fn = lambda v: test(get(v))
    if op in _NEGATIVE:
        return lambda v: not fn(v)
    return fn


_GETTERS: dict[str, Callable[[InstanceView], object]] = {
    "agentConnected": lambda v: "true" if v.agent_connected else "false",
    "agentVersion": lambda v: v.agent_version,
    "ec2InstanceId": lambda v: v.ec2_instance_id,
    "registeredAt": lambda v: v.registered_at,
    "runningTasksCount": lambda v: v.running_tasks_count,
}


@lru_cache(maxsize=512)
def compile_expression(text: str) -> Predicate:
    """Compile a cluster query language expression.

    *Returns* a :class:`Predicate`. *Raises* :class:`InvalidParameterException` when the
    text is longer than 2,000 characters, or does not parse (the message names the
    position), or uses an operator its subject does not take, or has an argument of the
    wrong type (a non-integer for runningTasksCount, a bad date, a bad regex).
    """
    if not isinstance(text, str):
        raise InvalidParameterException(f"Invalid expression: expected a string, got {type(text).__name__}")
    if len(text) > MAX_EXPRESSION_LENGTH:
        raise InvalidParameterException(
            f"Invalid expression: at most {MAX_EXPRESSION_LENGTH} characters are allowed (got {len(text)})"
        )
    parser = _Parser(text)
    test = parser.parse()
    return Predicate(text, frozenset(parser.subjects), test)
