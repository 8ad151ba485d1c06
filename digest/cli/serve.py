"""``digest serve``: the web endpoint behind the unsubscribe and preferences
links, sharing the state (and so the suppression list) with ``digest send``."""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from digest.cli.kit import option, render_options, reports_errors, state_option, warn
from digest.cli.secret import signing_keys
from digest.errors import ConfigError

if TYPE_CHECKING:
    from digest.email.message import Identity
    from digest.web.archive import ArchiveSite

DEFAULT_LISTEN = "127.0.0.1:8025"


class ListenParam(click.ParamType):  # type: ignore[type-arg]
    """``HOST:PORT`` (``[::1]:8025`` for IPv6), as a (host, port) pair."""

    name = "HOST:PORT"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, tuple):
            return value
        text = str(value)
        host, colon, port = text.rpartition(":")
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        elif ":" in host:
            host = ""  # IPv6 needs its brackets, or the port cannot be told apart
        if not colon or not host or not port.isdigit() or int(port) > 65535:
            self.fail(f"{text!r} is not HOST:PORT with a port from 0 to 65535; write it "
                      f"like {DEFAULT_LISTEN} or [::1]:8025", param, ctx)
        return host, int(port)


@click.command()
@option("--listen", type=ListenParam(), default=DEFAULT_LISTEN, show_default=True,
        help="Address and port to serve on (port 0: any free port). Put an https proxy "
             "in front of it, at --site-url.")
@state_option
@option("--articles", type=click.Path(path_type=Path), default=Path("articles"),
        show_default=True, help="Folder of articles: its tags are the topics readers choose.")
@option("--tag", "tags", multiple=True, metavar="TAG",
        help="Offer only these topics, as send selects only these tags (repeatable).")
@option("--exclude-tag", "exclude_tags", multiple=True, metavar="TAG",
        help="Never offer this topic, as send leaves it out (repeatable).")
@option("--archive", type=click.Path(path_type=Path, file_okay=False), default=None,
        metavar="DIR",
        help="Also serve this web archive folder (digest archive --out DIR): at the path "
             "of --archive-url when that is on --site-url's site (or there is no "
             "--site-url), else at /archive/. Cached 5 minutes; no listings.")
@render_options
@click.pass_obj
@reports_errors
def serve(obj: dict[str, Any] | None, /, listen: tuple[str, int], state: Path,
          articles: Path, archive: Path | None, **params: Any) -> None:
    """Serve the one-click unsubscribe and preferences pages the links point to.

    Links are checked with the keys send signs them with (DIGEST_SECRET or
    secret-file), for the newsletter that --name and --from identify, so run
    it with the same digest.toml as send.

    \b
    Examples:
      DIGEST_SECRET=... digest serve --state .digest --site-url https://news.example.org
      digest serve --listen 0.0.0.0:8025 --articles articles/
      digest serve --archive /var/www/archive --archive-url https://news.example.org/archive/
    """
    from digest.content.folder import Source
    from digest.email.links import make_signer
    from digest.email.message import Identity
    from digest.email.signing import HOW_TO
    from digest.web.app import WebConfig, make_app
    from digest.web.server import bind, server, url
    from digest.web.topics import Topics

    keys = signing_keys(obj)
    if keys is None:
        raise ConfigError(f"no key to check links with; {HOW_TO}")
    identity = Identity(params["name"], params["sender"], params["reply_to"],
                        params["site_url"], archive_url=params["archive_url"])
    identity.check()
    site = _archive_site(archive, identity)
    topics = Topics(Source(articles), params["tags"], params["exclude_tags"], warn=warn)
    host, port = listen
    with bind(host, port) as sock:
        app = make_app(WebConfig(make_signer(keys, identity), state, identity.name, topics,
                                 site))
        where = url(host, sock.getsockname()[1])
        click.echo(f"Serving {identity.name}'s unsubscribe and preferences pages on "
                   f"{where}/ (Ctrl-C stops)")
        if site is not None:
            click.echo(f"Serving the archive in {site.folder} on {where}{site.shown_path}")
        # uvicorn shuts down gracefully on SIGINT or SIGTERM, then raises the
        # signal again for its caller: a stop asked for is a clean exit here.
        before = {n: signal.signal(n, lambda *_: sys.exit(0))
                  for n in (signal.SIGINT, signal.SIGTERM)}
        try:
            server(app).run(sockets=[sock])
        finally:
            for number, handler in before.items():
                signal.signal(number, handler)


def _archive_site(folder: Path | None, identity: Identity) -> ArchiveSite | None:
    """Where ``--archive`` is served. A folder that does not exist yet is served
    all the same (as 404s), so the server can start before the first send."""
    from digest.web.archive import ArchiveSite, archive_path

    if folder is None:
        return None
    if not folder.is_dir():
        warn(f"--archive: {folder} does not exist yet; its pages are 404 until "
             "'digest archive' or 'digest send --archive' writes it")
    return ArchiveSite(folder, archive_path(identity.archive_url, identity.site_url))
