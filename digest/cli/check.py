"""``digest check``: the preflight's options and its output; the checks
themselves are in digest.desk.check."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from digest.cli.kit import (
    format_option,
    list_options,
    render_options,
    reports_errors,
    selection_options,
    settings_from,
)


@click.command()
@selection_options
@render_options
@list_options("Subscriber CSV file a send would go to (repeatable): check each variant "
              "its readers get, and what a bulk send needs.")
@format_option
@click.pass_obj
@reports_errors
def check(obj: dict[str, Any] | None, /, fmt: str, lists: tuple[Path, ...],
          list_format: str | None, **params: Any) -> None:
    """Check the issue before it goes out: exit 0 when there are only warnings
    or nothing, 1 when there is an error.

    Every variant is rendered as a reader gets it. Errors: an HTML part over
    Gmail's 102 KB clipping point (a warning from 90 KB), an image without alt
    text, a story without a link, text contrast below WCAG AA (4.5:1) in the
    light or dark palette, and with --list a missing postal address or link
    key. Warnings: unknown front-matter keys (errors with --strict), a subject
    over 78 characters, a preheader that repeats the subject, a <style> over
    8 KB, a non-https link, two stories with the same title.

    \b
    Examples:
      digest check --as-of 2026-11-28
      digest check --list subscribers.csv && digest send --list subscribers.csv
      digest check --templates my-templates/ --format json
    """
    from digest.cli.secret import signing_keys
    from digest.desk.check import CheckRequest
    from digest.desk.check import check as run_check

    settings = settings_from(params, datetime.now(UTC))
    keys = signing_keys(obj)
    request = CheckRequest(settings.source(), settings.issue(), settings.render(keys),
                           tuple(lists), list_format, has_keys=keys is not None)
    report = run_check(request)
    if fmt == "json":
        click.echo(json.dumps(report.as_json(), indent=2, ensure_ascii=False))
    else:
        for finding in report.findings:
            click.echo(finding.line())
        click.echo(report.summary())
    sys.exit(0 if report.ok else 1)
