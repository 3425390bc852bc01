"""CloudWatch Logs filter patterns over unstructured events (FilterLogEvents' ``filterPattern``).

What is implemented, as CloudWatch matches it (case-sensitive substrings):

- ``ERROR Exception``: every term must appear;
- ``"connection reset"``: a quoted phrase must appear as written (``\\"`` inside for a quote);
- ``-DEBUG`` (or ``-"a phrase"``): the term must not appear;
- ``?ERROR ?WARN``: at least one of the ``?`` terms must appear (beside the other rules);
- an empty pattern (or only blanks) matches every event.

What is refused by name (``UnsupportedPattern``): JSON patterns (``{ $.level = ... }``),
space-delimited patterns (``[ip, user, ...]``), regular expressions (``%...%``) and a bare
``-`` or ``?`` with nothing after it.
"""

from __future__ import annotations

from dataclasses import dataclass


class UnsupportedPattern(ValueError):
    """The pattern uses syntax portside does not implement, or is malformed; the message says which."""


@dataclass(frozen=True)
class Pattern:
    required: tuple[str, ...] = ()
    excluded: tuple[str, ...] = ()
    any_of: tuple[str, ...] = ()

    def matches(self, message: str) -> bool:
        if any(term not in message for term in self.required):
            return False
        if any(term in message for term in self.excluded):
            return False
        return not self.any_of or any(term in message for term in self.any_of)


def parse(text: str) -> Pattern:
    """The pattern ``text`` (see the module's docstring); UnsupportedPattern names what is not implemented."""
    stripped = text.strip()
    if stripped.startswith("{"):
        raise UnsupportedPattern("JSON filter patterns ({ $.field ... }) are not implemented")
    if stripped.startswith("["):
        raise UnsupportedPattern("space-delimited filter patterns ([field, ...]) are not implemented")
    if stripped.startswith("%"):
        raise UnsupportedPattern("regular-expression filter patterns (%...%) are not implemented")
    required: list[str] = []
    excluded: list[str] = []
    any_of: list[str] = []
    for sign, term in _terms(stripped):
        {"": required, "-": excluded, "?": any_of}[sign].append(term)
    return Pattern(tuple(required), tuple(excluded), tuple(any_of))


def _terms(text: str) -> list[tuple[str, str]]:
    out = []
    i = 0
    while i < len(text):
        if text[i].isspace():
            i += 1
            continue
        sign = ""
        if text[i] in "-?":
            sign = text[i]
            i += 1
        if i >= len(text) or text[i].isspace():
            raise UnsupportedPattern(f"'{sign}' must be followed by a term")
        if text[i] == '"':
            term, i = _quoted(text, i + 1)
        else:
            start = i
            while i < len(text) and not text[i].isspace():
                if text[i] == '"':
                    raise UnsupportedPattern("a quote may only begin a term")
                i += 1
            term = text[start:i]
        out.append((sign, term))
    return out


def _quoted(text: str, i: int) -> tuple[str, int]:
    chars = []
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text):
            chars.append(text[i + 1])
            i += 2
            continue
        if text[i] == '"':
            if not chars:
                raise UnsupportedPattern("an empty quoted phrase matches nothing")
            return "".join(chars), i + 1
        chars.append(text[i])
        i += 1
    raise UnsupportedPattern("a quoted phrase is not closed")
