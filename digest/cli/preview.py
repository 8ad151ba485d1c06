"""``digest preview``: options in, the written paths out, one per line."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from digest.cli.kit import (
    list_options,
    option,
    render_options,
    reports_errors,
    selection_options,
    settings_from,
    state_option,
    warn,
)


@click.command()
@selection_options
@render_options
@option("--subscriber", default=None, metavar="EMAIL",
        help="Preview this subscriber's variant: the articles their tags select, with "
        "their name and address. Needs --list.")
@list_options("Subscriber CSV file that has --subscriber (repeatable).")
@state_option
@option("--out", type=click.Path(path_type=Path), default=Path("preview"), show_default=True,
        help="Folder for the PNGs, digest.html and sample.eml.")
@option("--chromium", type=click.Path(path_type=Path), default=None,
        help="The Chromium to render with. Default: the first of chromium, chromium-browser "
        "and google-chrome on PATH. None is ever downloaded.")
@reports_errors
def preview(**params: Any) -> None:
    """Render the issue in Chromium and save what readers will see.

    Writes into --out: desktop.png (the 600 px column in a 1200 px window),
    mobile.png (375 px), desktop-dark.png and mobile-dark.png (dark mode),
    nostyle.png (375 px, every <style> block removed, as Gmail's app shows it
    for accounts that are not Google's), digest.html and sample.eml. Screenshots
    are full-page at one pixel per CSS pixel. Remote images are not fetched:
    the page gets no network at all. With --subscriber, --state (when it
    exists) supplies the topics they chose on the preferences page.

    \b
    Examples:
      digest preview --as-of 2026-11-28
      digest preview --subscriber amina.traore@example.org --list subscribers.example.csv
      digest preview --templates my-templates/ --out /tmp/preview --chromium /opt/chrome/chrome
    """
    from digest.desk.preview import PreviewRequest, PreviewSubscriber
    from digest.desk.preview import preview as render_preview

    subscriber, lists = params.pop("subscriber"), tuple(params.pop("lists"))
    list_format, state = params.pop("list_format"), params.pop("state")
    if subscriber is not None and not lists:
        raise click.UsageError("--subscriber needs --list FILE, the list that has them")
    who = None
    if subscriber is not None:
        who = PreviewSubscriber(subscriber, lists, list_format, state)
    now = datetime.now(UTC)
    settings = settings_from(params, now)
    request = PreviewRequest(settings.source(), settings.issue(), settings.render(),
                             params["out"], params["chromium"], who)
    paths = render_preview(request, now=now, warn=warn)
    if not paths:
        click.echo("No articles selected; nothing to preview.")
    for path in paths:
        click.echo(str(path))
