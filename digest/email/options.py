"""How a digest looks and who it comes from, as one typed option set."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from digest.email.message import Identity
from digest.email.signing import Signer
from digest.errors import ConfigError


@dataclass(frozen=True, slots=True)
class RenderOptions:
    """How a digest looks and who it comes from: the sender's identity and
    the folder of templates that override the built-in ones, and the subject
    as a Jinja template (None: the folder's subject.txt.j2)."""

    identity: Identity
    templates: Path | None = None
    signer: Signer | None = None  # signs every link; None gives marked placeholders
    subject: str | None = None
    subject_prefix: str = ""  # "[Test] " on a test send

    def check(self) -> None:
        if self.templates is not None and not self.templates.is_dir():
            raise ConfigError(
                f"{self.templates} is not a folder; point it at a folder of templates",
                source="--templates",
            )
