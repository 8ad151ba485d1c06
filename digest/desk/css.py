"""The styles a rendered, inlined email actually applies, per palette.

After premailer, the light palette is the inline ``style`` attributes. The
dark palette is those plus the rules inside ``@media (prefers-color-scheme:
dark)`` blocks that stay in ``<style>``, applied with the CSS cascade:
``!important`` first, then inline over a stylesheet, then specificity, then
source order. Only the properties the checks read are kept.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import cssselect

Element = Any  # an lxml element; lxml ships no type information
Styles = dict[Element, dict[str, str]]
Priority = tuple[bool, bool, tuple[int, int, int], int]

_COMMENT = re.compile(r"/\*.*?\*/", re.DOTALL)
_DARK = re.compile(r"prefers-color-scheme\s*:\s*dark", re.IGNORECASE)
_IMPORTANT = re.compile(r"\s*!\s*important\s*$", re.IGNORECASE)
# What the checks read: colours, and what hides an element.
WANTED = frozenset({"color", "background-color", "display", "visibility", "opacity",
                    "font-size", "max-height", "height", "overflow", "mso-hide"})


@dataclass(frozen=True, slots=True)
class Rule:
    """One selector of a dark-palette rule, with its place in the cascade."""

    selector: str
    specificity: tuple[int, int, int]
    order: int
    declarations: tuple[tuple[str, str, bool], ...]  # (property, value, important)


def split(text: str, separator: str) -> list[str]:
    """``text`` cut at ``separator``, but not inside quotes or parentheses
    (``font-family: "A;B"``, ``url(data:...;base64,...)``)."""
    parts: list[str] = []
    current: list[str] = []
    depth, quote = 0, ""
    for char in text:
        if quote:
            quote = "" if char == quote else quote
        elif char in "\"'":
            quote = char
        elif char == "(":
            depth += 1
        elif char == ")":
            depth = max(depth - 1, 0)
        elif char == separator and depth == 0:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    return parts


def declarations(text: str) -> list[tuple[str, str, bool]]:
    """``(property, value, important)`` for each declaration in a style text;
    the ``background`` shorthand counts as the background colour it names."""
    found = []
    for part in split(_COMMENT.sub("", text), ";"):
        name, colon, value = part.partition(":")
        name = name.strip().lower()
        if not colon or not name:
            continue
        important = bool(_IMPORTANT.search(value))
        value = _IMPORTANT.sub("", value).strip()
        if name == "background":
            name, value = "background-color", _shorthand_colour(value)
        if name in WANTED and value:
            found.append((name, value, important))
    return found


def _shorthand_colour(value: str) -> str:
    """The colour in a ``background`` shorthand, if it names one: a ``#``,
    ``rgb()``, ``hsl()`` or a word that is neither a keyword nor a position."""
    not_colours = {"none", "repeat", "no-repeat", "repeat-x", "repeat-y", "scroll", "fixed",
                   "local", "top", "bottom", "left", "right", "center", "cover", "contain",
                   "inherit", "initial", "unset", "auto", "border-box", "padding-box",
                   "content-box", "space", "round"}
    for word in split(" ".join(value.split()), " "):
        word = word.strip()
        lowered = word.lower()
        if (word.startswith("#") or lowered.startswith(("rgb", "hsl"))
                or (word.isalpha() and lowered not in not_colours)):
            return word
    return ""


def _blocks(css: str) -> Iterator[tuple[str, str]]:
    """``(prelude, body)`` of each top-level block in ``css``."""
    depth, start, prelude_start = 0, 0, 0
    for index, char in enumerate(css):
        if char == "{":
            if depth == 0:
                start = index
            depth += 1
        elif char == "}" and depth:
            depth -= 1
            if depth == 0:
                yield css[prelude_start:start].strip(), css[start + 1:index]
                prelude_start = index + 1
        elif char == ";" and depth == 0:
            prelude_start = index + 1  # the end of an @import or @charset


def dark_rules(css: str) -> list[Rule]:
    """The rules of every ``@media`` block about the dark colour scheme, one
    per selector, in source order. A selector that cssselect cannot read, or
    one with a pseudo-element, is left out: it styles no element's own text."""
    rules: list[Rule] = []
    for prelude, body in _blocks(_COMMENT.sub("", css)):
        if not (prelude.lower().startswith("@media") and _DARK.search(prelude)):
            continue
        for selectors, block in _blocks(body):
            found = tuple(declarations(block))
            if selectors.startswith("@") or not found:
                continue
            try:
                parsed = cssselect.parse(selectors)
            except cssselect.SelectorError:
                continue
            for selector in parsed:
                if selector.pseudo_element is None:
                    rules.append(Rule(cssselect.HTMLTranslator().selector_to_xpath(selector),
                                      selector.specificity(), len(rules), found))
    return rules


def _inline(element: Element) -> list[tuple[str, str, bool]]:
    return declarations(element.get("style") or "")


def light_styles(root: Element) -> Styles:
    """Each element's declared properties in the light palette: its inline style."""
    return {element: {name: value for name, value, _ in _inline(element)}
            for element in root.iter() if isinstance(element.tag, str)}


def dark_styles(root: Element, rules: list[Rule]) -> Styles:
    """Each element's declared properties in the dark palette: the inline
    style and the dark rules, resolved by the cascade."""
    chosen: dict[Element, dict[str, tuple[Priority, str]]] = {}
    for element in root.iter():
        if isinstance(element.tag, str):
            own = chosen.setdefault(element, {})
            for name, value, important in _inline(element):
                _offer(own, name, value, (important, True, (0, 0, 0), 0))
    for rule in rules:
        try:
            matched = root.xpath(rule.selector)
        except Exception:  # an XPath lxml cannot run: the selector styles nothing we can see
            continue
        for element in matched:
            own = chosen.setdefault(element, {})
            for name, value, important in rule.declarations:
                _offer(own, name, value, (important, False, rule.specificity, rule.order))
    return {element: {name: value for name, (_, value) in props.items()}
            for element, props in chosen.items()}


def _offer(props: dict[str, tuple[Priority, str]], name: str, value: str,
           priority: Priority) -> None:
    current = props.get(name)
    if current is None or priority >= current[0]:
        props[name] = (priority, value)
