"""The web endpoint's application: one-click unsubscribe (RFC 8058), its
confirmation page with Undo, and the preferences page, all keyed by the
signed tokens that ``digest.email.links`` puts in every message.

GET and HEAD never change anything: mail scanners follow every link in a
message. Only a POST does, and only with a genuine token, so a forged, cut or
other list's link is a 404 that changes nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import TypeVar

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp

from digest.audience.selfservice import Reader, SelfService
from digest.email.signing import Purpose, Signer
from digest.model import StateLocation
from digest.web.archive import ArchiveSite, archive_mount
from digest.web.forms import FORM_LIMIT, ONE_CLICK_LIMIT, bounded, is_one_click, parse_form
from digest.web.pages import Pages, SecureHeaders
from digest.web.topics import Topic, Topics

T = TypeVar("T")
_NOT_ONE_CLICK = ("This address takes only the one-click unsubscribe form "
                  "(List-Unsubscribe=One-Click, at most 1 KB). Open the link in a browser "
                  "to unsubscribe.")


@dataclass(frozen=True, slots=True)
class WebConfig:
    """What one newsletter's endpoint needs: the signer of its links (its
    keys and List-Id), the state its sends share, its topics, and the web
    archive to serve beside the pages, if any."""

    signer: Signer
    state: StateLocation
    newsletter: str
    topics: Topics
    archive: ArchiveSite | None = None


class Readers:
    """The state's self-service API, used from one thread of its own: a SQLite
    connection belongs to the thread that opened it, and SQLite takes one
    writer at a time anyway. Opening it here, before the server listens, makes
    a bad ``--state`` an error at start rather than on the first click."""

    def __init__(self, state: StateLocation) -> None:
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="digest-state")
        try:
            self._service = self._pool.submit(SelfService.open, state).result()
            # The state opens lazily: one look-up opens the journal now.
            self._pool.submit(self._service.reader, "").result()
        except BaseException:
            self._pool.shutdown()
            raise

    async def call(self, use: Callable[[SelfService], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, use, self._service)

    def close(self) -> None:
        self._pool.submit(self._service.close).result()
        self._pool.shutdown()


class Site:
    """The request handlers. Form actions and links are relative, so the pages
    work under any prefix a proxy serves them at."""

    def __init__(self, config: WebConfig, readers: Readers) -> None:
        self.signer = config.signer
        self.topics = config.topics
        self.readers = readers
        self.pages = Pages(config.newsletter)

    async def _reader(self, token: str, purpose: Purpose) -> Reader | None:
        rid = self.signer.verify(token, purpose)
        if rid is None:
            return None
        return await self.readers.call(lambda service: service.reader(rid))

    def _links(self, reader: Reader, depth: int, own: str = "") -> dict[str, str]:
        """Relative links from a page ``depth`` folders below the site's root;
        ``own`` is the page's token, which its own forms post back to."""
        unsubscribe, preferences = self.signer.tokens(reader.rid)
        up = "../" * depth
        return {"unsubscribe": f"{up}unsubscribe/{own or unsubscribe}",
                "undo": f"{up}unsubscribe/{own or unsubscribe}/undo",
                "preferences": f"{up}preferences/{preferences}"}

    async def unsubscribe(self, request: Request) -> Response:
        """GET: the confirmation page (or, once unsubscribed, the Undo). POST:
        RFC 8058 one-click, idempotent."""
        token = request.path_params["token"]
        body = None
        if request.method == "POST":
            body = await bounded(request.headers.get("content-length"), request.stream(),
                                 ONE_CLICK_LIMIT)
            if body is None or not is_one_click(request.headers.get("content-type", ""), body):
                return self.pages.bad_request(_NOT_ONE_CLICK)
        reader = await self._reader(token, "unsubscribe")
        if reader is None:
            return self.pages.not_found()
        if body is not None:
            await self.readers.call(lambda service: service.unsubscribe(reader))
            done = True
        else:
            done = await self.readers.call(lambda service: service.unsubscribed(reader))
        return self.pages.page("unsubscribe.html.j2", state="done" if done else "confirm",
                               title="Unsubscribed" if done else "Unsubscribe",
                               email=reader.email, links=self._links(reader, 1, token))

    async def undo(self, request: Request) -> Response:
        """Take back this link's unsubscribe, and only that."""
        body = await bounded(request.headers.get("content-length"), request.stream(),
                             ONE_CLICK_LIMIT)
        if body is None:
            return self.pages.bad_request("The form was too large.")
        reader = await self._reader(request.path_params["token"], "unsubscribe")
        if reader is None:
            return self.pages.not_found()

        def undo(service: SelfService) -> bool:
            return service.undo(reader) or not service.unsubscribed(reader)

        undone = await self.readers.call(undo)
        links = self._links(reader, 2)
        links["unsubscribe"] = f"../{request.path_params['token']}"
        return self.pages.page("unsubscribe.html.j2", state="undone" if undone else "blocked",
                               title="Subscribed again" if undone else "Not mailed",
                               email=reader.email, links=links)

    async def preferences(self, request: Request) -> Response:
        """GET: the topics as checkboxes. POST: store the choice."""
        token = request.path_params["token"]
        chosen: list[str] | None = None
        if request.method == "POST":
            body = await bounded(request.headers.get("content-length"), request.stream(),
                                 FORM_LIMIT)
            fields = parse_form(request.headers.get("content-type", ""), body or b"")
            if body is None or fields is None:
                return self.pages.bad_request("The form was not understood; reload the page "
                                              "and try again.")
            chosen = [value for name, value in fields if name == "tag"]
        reader = await self._reader(token, "preferences")
        if reader is None:
            return self.pages.not_found()
        current = await self.readers.call(lambda service: service.preferences(reader))
        choices = await run_in_threadpool(self.topics.choices, current)
        if chosen is None:
            return self._preferences_page(reader, token, choices)
        picked = [c for c in choices if c.slug in set(chosen)]
        if not picked:
            choices = tuple(replace(c, checked=False) for c in choices)
            return self._preferences_page(reader, token, choices, status=400, problem=(
                "Choose at least one topic, or unsubscribe instead."))
        # Every topic checked means everything, tags added later included.
        tags = () if len(picked) == len(choices) else tuple(c.slug for c in picked)
        await self.readers.call(lambda service: service.set_preferences(reader, tags))
        saved = [c.name for c in picked] if tags else []
        choices = await run_in_threadpool(self.topics.choices, tags)
        return self._preferences_page(reader, token, choices, saved=saved)

    def _preferences_page(self, reader: Reader, token: str, choices: tuple[Topic, ...], *,
                          status: int = 200, problem: str = "",
                          saved: list[str] | None = None) -> Response:
        return self.pages.page("preferences.html.j2", status, title="Your topics",
                               email=reader.email, topics=choices, problem=problem,
                               saved=saved, links=self._links(reader, 1, token) | {
                                   "preferences": token})


async def healthz(request: Request) -> Response:
    return PlainTextResponse("ok")


def make_app(config: WebConfig) -> ASGIApp:
    """The endpoint of one newsletter, its state opened now (a DigestError if
    it cannot be) and closed when the server shuts down."""
    readers = Readers(config.state)
    site = Site(config, readers)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            readers.close()

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code == 404:
            return site.pages.message(404, "Page not found", "There is no page here.")
        return site.pages.message(exc.status_code, "Not allowed" if exc.status_code == 405
                                  else "Request not understood", exc.detail, exc.headers)

    async def server_error(request: Request, exc: Exception) -> Response:
        return site.pages.message(500, "Something went wrong",
                                  "The page could not be shown. Please try again in a minute.")

    routes: list[BaseRoute] = [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/unsubscribe/{token}", site.unsubscribe, methods=["GET", "POST"]),
        Route("/unsubscribe/{token}/undo", site.undo, methods=["POST"]),
        Route("/preferences/{token}", site.preferences, methods=["GET", "POST"]),
    ]
    if config.archive is not None:  # last: even at the root, it shadows no route above
        routes.append(archive_mount(config.archive))
    app = Starlette(routes=routes, lifespan=lifespan,
                    exception_handlers={HTTPException: http_error, Exception: server_error})
    return SecureHeaders(app)
