"""The pages ``digest serve`` answers with, and the headers every response
carries.

Pages are Jinja2 templates in ``templates/web/``, autoescaped all of them
(a reader's name and address, and a tag from an article, are text, never
markup), with their style inline and nothing loaded from anywhere else, so
the Content-Security-Policy can forbid everything but inline style.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jinja2
from starlette.datastructures import MutableHeaders
from starlette.responses import HTMLResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from digest.email.render import package_templates

SECURITY_HEADERS = {
    "Content-Security-Policy": ("default-src 'none'; style-src 'unsafe-inline'; "
                                "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    # A page shows a reader's address: no cache along the way keeps a copy.
    "Cache-Control": "no-store",
}


class Pages:
    """Renders the pages of one newsletter."""

    def __init__(self, newsletter: str) -> None:
        self.newsletter = newsletter
        self._env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(package_templates() / "web"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
        )

    def page(self, template: str, status: int = 200, *, title: str,
             headers: Mapping[str, str] | None = None, **context: Any) -> HTMLResponse:
        html = self._env.get_template(template).render(
            newsletter=self.newsletter, title=title, **context)
        return HTMLResponse(html, status, headers=dict(headers or {}))

    def message(self, status: int, title: str, text: str,
                headers: Mapping[str, str] | None = None) -> HTMLResponse:
        """A plain page: a heading and a sentence."""
        return self.page("message.html.j2", status, title=title, text=text, headers=headers)

    def not_found(self) -> HTMLResponse:
        # The same page for a forged token, another list's and an unknown
        # reader's, so the answer tells nothing about which it was.
        return self.message(404, "Link not found",
                            "This link is not valid. Use the link in your newest email, or "
                            "reply to any issue and ask to be unsubscribed.")

    def bad_request(self, why: str) -> HTMLResponse:
        return self.message(400, "Request not understood", why)


# The two a response may set for itself: only the archive's public files do.
_OWN_HEADERS = ("Cache-Control", "Content-Security-Policy")


class SecureHeaders:
    """Puts SECURITY_HEADERS on every response, error pages and 500s included.
    It wraps the whole application, outside Starlette's own error handling.
    A response that sets its own caching or policy keeps it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    if name not in _OWN_HEADERS or name not in headers:
                        headers[name] = value
            await send(message)

        await self.app(scope, receive, send_secured)
