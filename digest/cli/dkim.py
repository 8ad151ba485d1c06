"""``digest dkim keygen``: a DKIM signing key, and the DNS record to publish."""

from __future__ import annotations

import os
from pathlib import Path

import click

from digest.cli.kit import reports_errors
from digest.errors import ConfigError


@click.group()
def dkim() -> None:
    """DKIM keys that sign every message a send delivers.

    \b
    Examples:
      digest dkim keygen --selector news2026 --domain example.org
      digest dkim keygen --selector ed2026 --domain example.org --type ed25519
    """


@dkim.command("keygen")
@click.option("--selector", required=True, help="The selector: the DNS label the key sits under.")
@click.option("--domain", required=True, help="The signing domain, usually the From domain.")
@click.option("--type", "kind", type=click.Choice(["rsa", "ed25519"]), default="rsa",
              show_default=True, help="RSA-2048 (every verifier) or Ed25519 (RFC 8463).")
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Where to write the private key. Default: SELECTOR.DOMAIN.pem here.")
@reports_errors
def keygen(selector: str, domain: str, kind: str, out: Path | None) -> None:
    """Write a new private key (mode 0600, never overwriting a file) and print
    the TXT record to publish for it. Then send with --dkim-key FILE
    --dkim-selector SELECTOR."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

    from digest.email.dkim import MIN_RSA_BITS, SigningKey, check_name, txt_record

    check_name(selector, "--selector")
    check_name(domain, "--domain")
    out = out or Path(f"{selector}.{domain}.pem")
    key: SigningKey = (rsa.generate_private_key(public_exponent=65537, key_size=MIN_RSA_BITS)
                       if kind == "rsa" else ed25519.Ed25519PrivateKey.generate())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    try:
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as exc:
        raise ConfigError(f"{out} exists; keygen never overwrites a key, choose another file",
                          source="--out") from exc
    except OSError as exc:
        raise ConfigError(f"cannot create {out}: {exc.strerror}", source="--out") from exc
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    click.echo(f"Wrote the private key to {out}. Publish this TXT record:", err=True)
    click.echo(txt_record(key, selector, domain))
