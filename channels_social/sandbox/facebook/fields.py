"""Graph's ``fields=`` language: ``id,from{id,name},comments.limit(5).order(x){message}``.

Each item names a field or an edge; ``.name(value)`` modifiers pass edge parameters (limit,
order, filter, summary, since, until) and ``{...}`` selects the fields of the nested node.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from channels_social.sandbox.facebook.errors import GraphError

NAME_RE = re.compile(r"[A-Za-z0-9_]+")


@dataclass(frozen=True)
class FieldSpec:
    name: str
    modifiers: dict[str, str] = field(default_factory=dict)
    children: tuple[FieldSpec, ...] | None = None

    def __str__(self) -> str:
        text = self.name + "".join(f".{key}({value})" for key, value in self.modifiers.items())
        if self.children is not None:
            text += "{" + unparse(self.children) + "}"
        return text


def unparse(specs: tuple[FieldSpec, ...]) -> str:
    return ",".join(str(spec) for spec in specs)


def parse_fields(text: str) -> tuple[FieldSpec, ...]:
    """Parse a ``fields`` value; a syntax error is Graph's code 100."""
    parser = _Parser(text.replace(" ", ""))
    specs = parser.items()
    if parser.pos != len(parser.text):
        parser.fail("end of string")
    return specs


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def fail(self, expected: str) -> None:
        found = self.text[self.pos] if self.pos < len(self.text) else "end of string"
        raise GraphError(
            f'Syntax error "Expected {expected} instead of "{found}"." at character '
            f"{self.pos}: {self.text}",
            code=2500,
        )

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def name(self) -> str:
        match = NAME_RE.match(self.text, self.pos)
        if match is None:
            self.fail("a field name")
            raise AssertionError  # fail() always raises
        self.pos = match.end()
        return match.group(0)

    def items(self) -> tuple[FieldSpec, ...]:
        specs = [self.item()]
        while self.peek() == ",":
            self.pos += 1
            if self.peek() in ("", "}"):
                break  # Graph tolerates a trailing comma
            specs.append(self.item())
        return tuple(specs)

    def item(self) -> FieldSpec:
        name = self.name()
        modifiers: dict[str, str] = {}
        children: tuple[FieldSpec, ...] | None = None
        while self.peek() in (".", "{"):
            if self.peek() == ".":
                self.pos += 1
                key = self.name()
                if self.peek() != "(":
                    self.fail('"("')
                close = self.text.find(")", self.pos)
                if close < 0:
                    self.pos = len(self.text)
                    self.fail('")"')
                modifiers[key] = self.text[self.pos + 1 : close]
                self.pos = close + 1
            else:
                if children is not None:
                    self.fail('"," or "}"')
                self.pos += 1
                children = self.items()
                if self.peek() != "}":
                    self.fail('"}"')
                self.pos += 1
        return FieldSpec(name=name, modifiers=modifiers, children=children)
