"""What ``digest check`` found: one Finding per problem, and the Report of a
whole run. A finding's ``check`` is a stable name that scripts may match on;
its ``where`` names the file (and line), the flag, or the issue variant."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

Level = Literal["error", "warning"]

# The stable check names, in the order the README's table lists them.
CHECKS = ("size", "images", "dead-end", "postal-address", "unsubscribe-secret", "contrast",
          "front-matter", "article", "subject", "preheader", "style", "http-link",
          "duplicate-title", "no-articles", "no-readers")


@dataclass(frozen=True, slots=True)
class Finding:
    level: Level
    check: str
    where: str
    message: str

    def __post_init__(self) -> None:
        if self.check not in CHECKS:
            raise ValueError(f"unknown check name {self.check!r}")

    def line(self) -> str:
        return f"{self.level}: {self.where}: {self.message}"

    def as_json(self) -> dict[str, str]:
        return {"level": self.level, "check": self.check, "where": self.where,
                "message": self.message}


def error(check: str, where: str, message: str) -> Finding:
    return Finding("error", check, where, message)


def warning(check: str, where: str, message: str) -> Finding:
    return Finding("warning", check, where, message)


@dataclass(frozen=True, slots=True)
class Report:
    """Every finding once, errors first; ``variants`` counts the distinct
    messages (article sets) that were rendered and checked."""

    variants: int
    findings: tuple[Finding, ...]

    @classmethod
    def of(cls, variants: int, findings: Iterable[Finding]) -> Report:
        unique = tuple(dict.fromkeys(findings))
        ordered = sorted(unique, key=lambda f: f.level != "error")  # stable: in check order
        return cls(variants, tuple(ordered))

    @property
    def errors(self) -> int:
        return sum(f.level == "error" for f in self.findings)

    @property
    def warnings(self) -> int:
        return sum(f.level == "warning" for f in self.findings)

    @property
    def ok(self) -> bool:
        """No errors: a send may go ahead (warnings do not stop it)."""
        return self.errors == 0

    def summary(self) -> str:
        if not self.findings:
            plural = "" if self.variants == 1 else "s"
            return f"No problems found in {self.variants} variant{plural}."
        return f"{_count(self.errors, 'error')}, {_count(self.warnings, 'warning')}"

    def as_json(self) -> dict[str, object]:
        return {"ok": self.ok, "variants": self.variants,
                "findings": [f.as_json() for f in self.findings]}


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"
