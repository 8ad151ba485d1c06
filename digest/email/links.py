"""Every link a message carries, made in one place.

Each recipient gets an unsubscribe link and, when the newsletter has a site,
a preferences link, both under ``--site-url`` and signed (see
``digest.email.signing``), plus a mailto that carries the same unsubscribe
token for mail clients and the inbox. ``digest serve`` checks the same
tokens with the same Signer, so a link and its check cannot drift apart.

Without a key (a build, or a Maildir preview) the links carry a clearly
marked placeholder that no server accepts.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from typing import Protocol
from urllib.parse import quote, urlsplit, urlunsplit

from digest.email.headers import ascii_domain
from digest.email.signing import Key, Signer
from digest.errors import ConfigError, HeaderError

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# A URL made only of characters that may appear raw in one (RFC 3986).
_URL_PLAIN = re.compile(r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]+")
PLACEHOLDER = "PLACEHOLDER-no-secret-set"


class Listed(Protocol):
    """A newsletter, as far as its links care: ``message.Identity`` is one."""

    @property
    def list_key(self) -> str: ...


def make_signer(keys: Sequence[Key], newsletter: Listed) -> Signer:
    """The signer of one newsletter's links: a token for one list fails on another."""
    return Signer(keys, newsletter.list_key)


class Links:
    """The links of one newsletter: pages under ``site_url`` when it has one,
    and always a mailto to ``sender``."""

    def __init__(self, site_url: str | None, sender: str, signer: Signer | None = None) -> None:
        self.site = site_base(site_url).rstrip("/") if site_url else None
        self.signer = signer
        self._mailto = f"mailto:{quote(sender, safe='@!$*+-._~=')}?subject=unsubscribe%20"

    @property
    def one_click(self) -> bool:
        """Whether messages can offer RFC 8058 one-click unsubscribe (an https
        URL, or http on loopback for trials)."""
        return self.site is not None

    @property
    def unsubscribe_base(self) -> str:
        """What every unsubscribe link starts with; the recipient's token follows."""
        return f"{self.site}/unsubscribe/" if self.site else self._mailto

    @property
    def preferences_base(self) -> str:
        return f"{self.site}/preferences/" if self.site else ""

    def tokens(self, rid: str) -> tuple[str, str]:
        """A recipient's (unsubscribe, preferences) tokens: signed, or placeholders."""
        return self.signer.tokens(rid) if self.signer is not None else (PLACEHOLDER, PLACEHOLDER)

    def header(self, unsubscribe: str) -> str:
        """List-Unsubscribe (RFC 2369), with RFC 8058 one-click when there is a web
        page to POST to, for a recipient's unsubscribe token."""
        mailto = self._mailto + unsubscribe
        if self.site is None:
            return f"List-Unsubscribe: <{mailto}>\r\n"
        return (f"List-Unsubscribe: <{self.site}/unsubscribe/{unsubscribe}>,\r\n <{mailto}>\r\n"
                "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n")

    def for_recipient(self, rid: str) -> tuple[str, str, str]:
        """(unsubscribe URL, preferences URL, unsubscribe mailto); without a site
        the unsubscribe link is the mailto and there is no preferences page."""
        unsubscribe, preferences = self.tokens(rid)
        preferences_url = self.preferences_base + preferences if self.site else ""
        return self.unsubscribe_base + unsubscribe, preferences_url, self._mailto + unsubscribe


def site_base(url: str, flag: str = "--site-url") -> str:
    """An http(s) ``--site-url`` (or ``flag``) as it can go in a header: the
    host in IDNA and anything else outside URL characters percent-encoded."""
    example = "set it like 'https://news.example.org'"
    if _CONTROL.search(url):
        raise ConfigError(f"{url!r} contains a line break or control character; {example}",
                          source=flag)
    not_http = ConfigError(f"{url!r} is not an http or https URL with a host; {example}",
                           source=flag)
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError as exc:  # such as an unclosed "[" in the host
        raise not_http from exc
    if parts.scheme.lower() not in ("http", "https") or not host:
        raise not_http
    if parts.scheme.lower() == "http" and not _loopback(host):
        # One-click unsubscribe (RFC 8058) needs https; plain http only for trials.
        raise ConfigError(f"{url!r} is plain http; use https (http is allowed only for "
                          "localhost and 127.0.0.1, for trials)", source=flag)
    if parts.query or parts.fragment:
        raise ConfigError(f"{url!r} has a query or fragment; give the site's base URL, "
                          f"{example}", source=flag)
    if _URL_PLAIN.fullmatch(url):
        return url
    userinfo, at, hostport = parts.netloc.rpartition("@")
    name, colon, port = hostport.rpartition(":") if hostport.count(":") == 1 else (hostport, "", "")
    try:
        netloc = f"{userinfo}{at}{ascii_domain(name)}{colon}{port}"
    except HeaderError as exc:
        raise ConfigError(f"{url!r}: {exc}", source=flag) from exc
    safe = "/%:@!$&'()*+,;=~-._"
    return urlunsplit((parts.scheme, netloc, quote(parts.path, safe=safe),
                       quote(parts.query, safe=safe + "?"), quote(parts.fragment, safe=safe + "?")))




def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
