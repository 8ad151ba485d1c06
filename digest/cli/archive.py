"""``digest archive``: every sent issue as a static web site."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from digest.cli.kit import option, render_options, reports_errors, settings_from, state_option, warn


@click.command()
@option("--out", type=click.Path(path_type=Path), required=True,
        help="Folder to write the archive into; a rebuild writes only what changed.")
@option("--articles", type=click.Path(path_type=Path), default=Path("articles"),
        show_default=True, help="Folder of articles the issues pinned.")
@option("--url-template", default=None, metavar="TEMPLATE",
        help="The link the sends gave articles without a url; those it cannot fill get "
        "an archive page.")
@option("--strict", is_flag=True, default=False,
        help="Stop at the first article that cannot be parsed, instead of warning.")
@render_options
@state_option
@reports_errors
def archive(out: Path, state: Path, **params: Any) -> None:
    """Write the web archive: a page per sent issue and per story without a link
    of its own, an index, an Atom feed and a sitemap, into --out.

    It reads the issues the state records as sent, with the articles each one
    pinned. --archive-url is where the folder is published. Run it again after
    every send: it writes only the files that changed, each atomically, and
    removes only pages it wrote itself.

    \b
    Examples:
      digest archive --out public/archive --archive-url https://news.example.org/archive
      digest archive --out /srv/www/archive   # archive-url set in digest.toml
    """
    from digest.archive.build import ArchiveRequest, build_archive

    settings = settings_from(params, datetime.now(UTC))
    request = ArchiveRequest(state, settings.source(), settings.render(), out)
    result = build_archive(request, warn=warn)
    click.echo(result.summary())
