"""The SMTP transport's settings: the ``smtp://`` or ``smtps://`` URL read into an
SmtpConfig, whose TLS context always verifies certificates (the system's CAs or
``--ca-file``). A password never comes from the URL, and an error shows the URL
only through redact()."""

from __future__ import annotations

import ipaddress
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

from digest.delivery.transport import redact
from digest.errors import ConfigError


@dataclass(frozen=True, slots=True)
class SmtpConfig:
    host: str
    port: int
    implicit_tls: bool
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    tls_policy: str = "auto"
    ca_file: Path | None = None
    timeout: float = 30.0

    @property
    def loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    def tls_context(self) -> ssl.SSLContext:
        try:
            return ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"cannot load {self.ca_file}: {exc}", source="--ca-file") from exc


def parse_smtp_url(spec: str, **options: object) -> SmtpConfig:
    """``smtp://user@host:587`` -> SmtpConfig. A password in the URL is refused, and
    an error shows the spec only through redact(), so it never repeats one."""
    scheme = "smtps" if spec.startswith("smtps:") else "smtp"
    form, shown = f"{scheme}://[user@]host[:port]", redact(spec)

    def refuse(message: str) -> ConfigError:
        return ConfigError(message, source="--transport")

    try:
        parts = urlsplit(spec)
    except ValueError as exc:
        raise refuse(f"cannot read {shown!r} as a URL; use {form}, with an IPv6 address "
                     f"in brackets: {scheme}://[::1]:587") from exc
    if parts.password is not None:
        raise refuse("a password does not belong in the transport URL (it would show in the "
                     "process list); set DIGEST_SMTP_PASSWORD or smtp-password in the config file")
    for what, present in (("a path", parts.path), ("a query", parts.query or "?" in spec),
                          ("a fragment", parts.fragment or "#" in spec)):
        if present:
            raise refuse(f"{shown!r} has {what}; use {form}, with nothing after the port")
    try:
        port = parts.port
    except ValueError:
        port = -1
    if port is not None and not 1 <= port <= 65535:
        raise refuse(f"the port in {shown!r} must be a number from 1 to 65535; use {form}")
    if not parts.hostname:
        raise refuse(f"no host in {shown!r}; use {form}, e.g. {scheme}://mail.example.org")
    return SmtpConfig(
        host=parts.hostname,
        port=port or (465 if scheme == "smtps" else 587),
        implicit_tls=scheme == "smtps",
        user=unquote(parts.username) if parts.username else None,
        **options,  # type: ignore[arg-type]
    )
