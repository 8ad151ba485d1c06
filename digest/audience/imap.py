"""The IMAP source of `digest inbox`: ``imaps://user@host[:port]/Folder``.

Only implicit TLS (IMAPS, port 993 by default), with the certificate verified
against the system's CAs or ``--ca-file``. The password never comes from the
URL (it would show in the process list and in cron mail) but from
DIGEST_IMAP_PASSWORD or ``imap-password`` in the config file, and no message
repeats it.

Mail is never deleted or expunged: the source yields the folder's unseen
messages, fetched with BODY.PEEK so that reading alone changes nothing, and
``mark_seen`` flags one ``\\Seen`` once the caller has recorded it. A second
run therefore skips what the first one finished, and unrecognised mail, never
marked, stays unread for a person to look at. It is a
digest.audience.mailboxes.Source, like the Maildir and mbox ones.
"""

from __future__ import annotations

import imaplib
import re
import ssl
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from urllib.parse import unquote, urlsplit

from digest.errors import ConfigError, TransportError

FORM = "imaps://user@host[:port]/Folder"
HOW_TO_PASSWORD = "set DIGEST_IMAP_PASSWORD or imap-password in the config file"
_UID = re.compile(rb"\bUID (\d+)\b")
_TIMING = re.compile(r"\s*\(\d[\d.+ ]*secs\)")  # Dovecot's "(0.004 + 0.000 secs)"


@dataclass(frozen=True, slots=True)
class ImapConfig:
    """Where the folder is and how to log in to it."""

    host: str
    user: str
    folder: str = "INBOX"
    port: int = 993
    ca_file: Path | None = None
    timeout: float = 30.0

    @property
    def description(self) -> str:
        return f"imaps://{self.user}@{self.host}:{self.port}/{self.folder}"

    def tls_context(self) -> ssl.SSLContext:
        try:
            return ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"cannot load {self.ca_file}: {exc}", source="--ca-file") from exc


def is_imap(spec: str) -> bool:
    return spec.lower().startswith(("imaps:", "imap:"))


def parse_imap_url(spec: str, *, ca_file: Path | None = None,
                   timeout: float = 30.0) -> ImapConfig:
    """``imaps://bounces@mail.example.org/INBOX`` -> ImapConfig. A password in the URL
    is refused, and no error shows the part of the URL that held it."""

    def refuse(message: str) -> ConfigError:
        return ConfigError(message, source="SOURCE")

    if not spec.lower().startswith("imaps://"):
        raise refuse("only IMAP over TLS is supported, so that the password never crosses "
                     f"the network in the clear; use {FORM}")
    try:
        parts = urlsplit(spec)
        port = parts.port
    except ValueError as exc:
        raise refuse(f"cannot read the IMAP URL; use {FORM}, with a port from 1 to "
                     "65535") from exc
    if parts.password is not None:
        raise refuse(f"a password does not belong in the IMAP URL (it would show in the "
                     f"process list); {HOW_TO_PASSWORD}")
    if not parts.hostname or not parts.username:
        raise refuse(f"the IMAP URL needs a user and a host; use {FORM}, e.g. "
                     "imaps://bounces@mail.example.org/INBOX")
    if parts.query or parts.fragment or "?" in spec or "#" in spec:
        raise refuse(f"the IMAP URL has a query or a fragment; use {FORM}")
    return ImapConfig(host=parts.hostname, user=unquote(parts.username),
                      folder=unquote(parts.path.strip("/")) or "INBOX", port=port or 993,
                      ca_file=ca_file, timeout=timeout)


def _quoted(name: str) -> str:
    """An IMAP quoted string, so a folder name with spaces is one argument."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _said(data: list[object] | object) -> str:
    """The server's words in a reply, on one line."""
    items = data if isinstance(data, list) else [data]
    text = " ".join(x.decode("utf-8", "replace") if isinstance(x, bytes) else x
                    for x in items if isinstance(x, bytes | str))
    return " ".join(_TIMING.sub("", text).split()) or "no reason given"


class ImapMailbox:
    """One open IMAPS session on one folder; use it as a context manager."""

    def __init__(self, config: ImapConfig, password: str) -> None:
        self.config = config
        self._password = password
        self._imap: imaplib.IMAP4_SSL | None = None

    def __enter__(self) -> ImapMailbox:
        self._imap = self._login(self._connect())
        self._select(self._imap)
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 trace: TracebackType | None) -> None:
        imap, self._imap = self._imap, None
        if imap is None:
            return
        # LOGOUT, not CLOSE: CLOSE would expunge anything flagged \Deleted.
        with suppress(imaplib.IMAP4.error, OSError):
            imap.logout()

    def _connect(self) -> imaplib.IMAP4_SSL:
        c = self.config
        try:
            return imaplib.IMAP4_SSL(c.host, c.port, ssl_context=c.tls_context(),
                                     timeout=c.timeout)
        except ssl.SSLCertVerificationError as exc:
            raise TransportError(
                f"the certificate of {c.host} failed verification "
                f"({exc.verify_message or exc.reason}); nothing was read. Use --ca-file for "
                "a private CA") from exc
        except (OSError, imaplib.IMAP4.error) as exc:
            why = " ".join(str(exc).split()) or type(exc).__name__
            raise TransportError(f"cannot connect to {c.host}:{c.port} over IMAPS ({why}); "
                                 "check the host and port in the IMAP URL") from exc

    def _login(self, imap: imaplib.IMAP4_SSL) -> imaplib.IMAP4_SSL:
        try:
            imap.login(self.config.user, self._password)
        except imaplib.IMAP4.error as exc:
            _close(imap)
            raise TransportError(
                f"{self.config.host} refused the login of {self.config.user} "
                f"({_said(exc.args[0] if exc.args else b'')}); check the user in the IMAP URL "
                f"and the password ({HOW_TO_PASSWORD})") from exc
        except OSError as exc:
            _close(imap)
            raise TransportError(f"{self.config.host} dropped the connection at login "
                                 f"({exc}); try again later") from exc
        return imap

    def _select(self, imap: imaplib.IMAP4_SSL) -> None:
        kind, data = imap.select(_quoted(self.config.folder))
        if kind != "OK":
            _close(imap)
            self._imap = None
            raise ConfigError(f"cannot open the folder {self.config.folder!r} on "
                              f"{self.config.host} ({_said(data)}); name an existing folder "
                              f"in the IMAP URL: {FORM}", source="SOURCE")

    def _session(self) -> imaplib.IMAP4_SSL:
        if self._imap is None:
            raise RuntimeError("use ImapMailbox as a context manager")
        return self._imap

    def messages(self) -> Iterator[tuple[str, bytes]]:
        """The unseen messages of the folder, as ("UID n", bytes), oldest first."""
        data = self._uid("search", "UNSEEN")
        uids = b" ".join(x for x in data if isinstance(x, bytes)).split()
        for uid in uids:
            raw = self._fetch(uid.decode())
            if raw is not None:  # expunged by another client since the search
                yield f"UID {uid.decode()}", raw

    def _uid(self, command: str, *args: str) -> list[object]:
        """A UID command's data; a refusal or a dropped connection is one line, and the
        next run picks up whatever this one did not mark seen."""
        where = f"{self.config.host} ({self.config.folder})"
        try:
            kind, data = self._session().uid(command.upper(), *args)
        except (imaplib.IMAP4.error, OSError) as exc:
            raise TransportError(f"{where}: the connection failed during {command} ({exc}); "
                                 "run again later") from exc
        if kind != "OK":
            raise TransportError(f"{where} refused to {command} ({_said(data)}); run again "
                                 "later")
        return list(data)

    def _fetch(self, uid: str) -> bytes | None:
        # BODY.PEEK: reading must not set \Seen; only mark_seen does, once recorded.
        for item in self._uid("fetch", uid, "(BODY.PEEK[])"):
            if isinstance(item, tuple) and _UID.search(item[0]) is not None:
                body: bytes = item[1]
                return body
        return None

    def mark_seen(self, handle: str) -> None:
        """Flag the message \\Seen; it is never deleted."""
        self._uid("store", handle.removeprefix("UID "), "+FLAGS.SILENT", "(\\Seen)")


def _close(imap: imaplib.IMAP4_SSL) -> None:
    with suppress(OSError):
        imap.shutdown()


def open_imap(spec: str, password: str | None, *, ca_file: Path | None = None,
              timeout: float = 30.0) -> ImapMailbox:
    """The source for ``spec``, to be entered with ``with``; needs the password."""
    config = parse_imap_url(spec, ca_file=ca_file, timeout=timeout)
    if not password:
        raise ConfigError(f"reading {config.description} needs the IMAP password; "
                          f"{HOW_TO_PASSWORD}", source="SOURCE")
    return ImapMailbox(config, password)
