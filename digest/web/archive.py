"""The web archive's folder (``digest archive --out DIR``), served as static
files next to the unsubscribe and preferences pages, so one small process
can do both.

Where it is served: at the path of ``--archive-url`` when that URL is on
``--site-url``'s site (same scheme, host and port), or when there is no
``--site-url``, so a link in a message resolves here as it is written;
otherwise at ``/archive/``, where a proxy for the archive's own host can
send it. The archive holds nothing personal, so unlike the pages it may be
cached; everything else about serving it is as strict as the pages.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlsplit

from starlette.datastructures import Headers
from starlette.responses import FileResponse, Response
from starlette.routing import Mount
from starlette.staticfiles import NotModifiedResponse, StaticFiles
from starlette.types import Scope

from digest.errors import ConfigError

DEFAULT_PATH = "/archive"
# The endpoint's own routes, which the archive must never shadow.
RESERVED = ("unsubscribe", "preferences", "healthz")
# Public, small and rebuilt at most once per send: five minutes in any cache
# is fresh enough, and ETag / Last-Modified make the revalidation cheap.
CACHE_CONTROL = "public, max-age=300"
# As the pages' policy, but an issue's lead story may show an https image.
CONTENT_SECURITY_POLICY = ("default-src 'none'; style-src 'unsafe-inline'; img-src https:; "
                           "form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
_TYPES = {".html": "text/html; charset=utf-8", ".xml": "application/xml"}
_FEED = "feed.xml"


@dataclass(frozen=True, slots=True)
class ArchiveSite:
    """The archive folder and the URL path it is served at ("" is the root)."""

    folder: Path
    path: str = DEFAULT_PATH

    @property
    def shown_path(self) -> str:
        return self.path + "/"


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), parts.port or {"http": 80,
                                                                  "https": 443}.get(scheme)


def archive_path(archive_url: str | None, site_url: str | None) -> str:
    """The URL path to serve the archive at (see the module's docstring);
    an ``--archive-url`` whose path is one of the endpoint's own is refused."""
    if not archive_url or (site_url and _origin(archive_url) != _origin(site_url)):
        return DEFAULT_PATH
    path = unquote(urlsplit(archive_url).path).rstrip("/")
    first = path.strip("/").split("/", 1)[0]
    if first in RESERVED:
        raise ConfigError(f"{archive_url!r} would put the archive at /{first}/, which "
                          "digest serve answers itself; publish it at another path, like "
                          "/archive/", source="--archive-url")
    return path


def media_type(name: str) -> str | None:
    """The Content-Type of an archive file; None leaves it to its extension."""
    if name == _FEED:
        return "application/atom+xml"
    return _TYPES.get(PurePosixPath(name).suffix.lower())


class ArchiveFiles(StaticFiles):
    """Starlette's static files, which refuse a path out of the folder and
    never list one, with the archive's types and caching, no hidden files
    (the temporary files of an atomic write start with a dot), and a folder
    that does not exist yet answering 404 until the first build writes it."""

    def __init__(self, folder: Path) -> None:
        super().__init__(directory=folder, html=True, check_dir=False)

    async def check_config(self) -> None:
        return None

    def lookup_path(self, path: str) -> tuple[str, os.stat_result | None]:
        if any(part.startswith(".") for part in PurePosixPath(path.replace(os.sep, "/")).parts):
            return "", None
        return super().lookup_path(path)

    def file_response(self, full_path: str | os.PathLike[str], stat_result: os.stat_result,
                      scope: Scope, status_code: int = 200) -> Response:
        headers = {"Cache-Control": CACHE_CONTROL,
                   "Content-Security-Policy": CONTENT_SECURITY_POLICY}
        response = FileResponse(full_path, status_code, headers,
                                media_type(Path(full_path).name), stat_result=stat_result)
        if self.is_not_modified(response.headers, Headers(scope=scope)):
            return NotModifiedResponse(response.headers)
        return response


def archive_mount(site: ArchiveSite) -> Mount:
    return Mount(site.path, app=ArchiveFiles(site.folder), name="archive")
