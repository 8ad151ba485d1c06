"""``digest campaign``: look after campaigns as a whole."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click

from digest.cli.kit import option, reports_errors, state_option


@click.group()
def campaign() -> None:
    """Campaigns: one issue of one set of lists and tags.

    \b
    Examples:
      digest campaign close 2026-W48-subscribers-all
      digest campaign close 2026-W48-subscribers-all --reason "superseded by a correction"
    """


@campaign.command("close")
@click.argument("campaign_id", metavar="CAMPAIGN")
@option("--reason", default="closed by the operator", show_default=True,
        help="Why, for the journal and `digest status`.")
@state_option
@reports_errors
def close(campaign_id: str, reason: str, state: Path) -> None:
    """Set an unfinished campaign aside: no send resumes it, and the next send
    of its lists and tags may start a new issue. Whoever it still owed the
    issue does not get it.

    \b
    Examples:
      digest campaign close 2026-W48-subscribers-all
    """
    from digest.delivery.campaign import close_campaign

    owed = close_campaign(state, campaign_id, " ".join(reason.split()),
                          now=datetime.now(UTC))
    click.echo(f"Closed campaign {campaign_id}; {owed} recipients it still owed will not "
               "get this issue.")
