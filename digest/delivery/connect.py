"""A transport from its URL-like spec: ``maildir:PATH``, ``smtp://`` or ``smtps://``.

The one module that knows every transport, so the transports need not know
each other; aiosmtplib is imported only when an SMTP transport is asked for.
"""

from __future__ import annotations

from pathlib import Path

from digest.delivery.maildir import MaildirTransport
from digest.delivery.transport import Transport, redact
from digest.errors import ConfigError


def make_transport(spec: str, **smtp_options: object) -> Transport:
    """A transport from its URL-like spec: ``maildir:PATH``, ``smtp://`` or ``smtps://``."""
    scheme, sep, rest = spec.partition(":")
    if scheme == "maildir" and sep and rest:
        return MaildirTransport(Path(rest))
    if scheme in ("smtp", "smtps") and sep:
        if not rest.startswith("//"):
            raise ConfigError(f"{redact(spec)!r} lacks the // after {scheme}:; use "
                              f"{scheme}://[user@]host[:port]", source="--transport")
        from digest.delivery.smtp import SmtpTransport  # aiosmtplib only now
        from digest.delivery.smtp_config import parse_smtp_url

        return SmtpTransport(parse_smtp_url(spec, **smtp_options))
    raise ConfigError(
        f"unknown transport {redact(spec)!r}; use maildir:PATH, smtp://[user@]host[:port] "
        "or smtps://[user@]host[:port]",
        source="--transport",
    )
