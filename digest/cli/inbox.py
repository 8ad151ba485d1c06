"""``digest inbox``: process bounces, complaints and mailto unsubscribes."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from digest.cli.kit import (
    FiniteFloat,
    format_option,
    option,
    render_options,
    reports_errors,
    state_option,
)
from digest.cli.secret import signing_keys

if TYPE_CHECKING:
    from digest.audience.inbox import Decoder, Decoders
    from digest.email.signing import Signer


@click.command()
@click.argument("source")
@state_option
@format_option
@option("--soft-score", type=FiniteFloat(min=0, min_open=True), default=0.5, show_default=True,
        help="What a soft bounce (4.x.x, 5.2.2) adds to an address's score, once a day.")
@option("--suppress-score", type=FiniteFloat(min=0, min_open=True), default=5.0,
        show_default=True, help="Suppress an address as bounced at this score.")
@option("--reset-days", type=click.IntRange(min=1), default=7, show_default=True,
        help="Forget a score after this many days without a bounce.")
@option("--ca-file", type=click.Path(path_type=Path, dir_okay=False), default=None,
        help="PEM CA bundle to verify an imaps:// SOURCE's certificate with (default: the "
             "system's CAs).")
@render_options
@click.pass_obj
@reports_errors
def inbox(obj: dict[str, Any] | None, /, source: str, state: Any, fmt: str,
          **params: Any) -> None:
    """Read returned mail once: suppress hard bounces, complaints and mailto
    unsubscribes, score soft bounces. SOURCE is a Maildir, an mbox file or an
    IMAP folder, imaps://user@host[:port]/Folder (the password from
    DIGEST_IMAP_PASSWORD or imap-password in the config file).

    Unsubscribe tokens and VERP addresses are checked with the keys send signs
    with (DIGEST_SECRET or secret-file), for the newsletter --name and --from
    identify: run it with the same digest.toml as send.

    \b
    Examples:
      digest inbox ~/Maildir/.bounces --state .digest
      digest inbox /var/mail/bounces --format json
      digest inbox imaps://bounces@mail.example.org/INBOX
    """
    from digest.audience.imap import is_imap, open_imap
    from digest.audience.inbox import Policy, read_inbox
    from digest.audience.mailboxes import open_source

    policy = Policy(params["soft_score"], params["suppress_score"], params["reset_days"])
    decoders = _decoders(obj, params)
    if is_imap(source):
        password = os.environ.get("DIGEST_IMAP_PASSWORD") or (obj or {}).get("imap_password")
        with open_imap(source, password, ca_file=params["ca_file"]) as box:
            result = read_inbox(box, state, policy, decoders, datetime.now(UTC))
    else:
        result = read_inbox(open_source(source), state, policy, decoders, datetime.now(UTC))
    if fmt == "json":
        click.echo(json.dumps(result.as_json(), indent=2, ensure_ascii=False))
        return
    click.echo(", ".join(f"{n.replace('_', ' ')} {c}" for n, c in result.counts.items()))
    for email, reason in result.suppressed:
        click.echo(f"  suppressed {email} ({reason})")
    for handle in result.unrecognised:
        click.echo(f"  unrecognised, left unread: {handle}")


def _decoders(obj: dict[str, Any] | None, params: dict[str, Any]) -> Decoders:
    """Token checkers from the link keys; without keys only addresses are matched."""
    from digest.audience.inbox import Decoders
    from digest.email.links import make_signer
    from digest.email.message import Identity

    keys = signing_keys(obj)
    if keys is None:
        return Decoders()
    identity = Identity(params["name"], params["sender"], params["reply_to"],
                        params["site_url"])
    identity.check()
    signer = make_signer(keys, identity)
    return Decoders(_verp(signer), lambda token: signer.verify(token, "unsubscribe"))


def _verp(signer: Signer) -> Decoder:
    from digest.email.verp import decode_verp

    return lambda address: decode_verp(address, signer)
