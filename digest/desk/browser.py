"""The system Chromium, driven through Playwright: find it, and photograph
HTML at a given width and colour scheme with the network shut off.

Only a Chromium already on the machine is used (``--chromium``, else the
first of CANDIDATES on PATH); Playwright's own browser builds are never
downloaded, so a preview works offline and on a locked-down host.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from digest.errors import DigestError

if TYPE_CHECKING:  # Playwright starts a driver process; import it only to render
    from playwright.sync_api import Page, Route

CANDIDATES = ("chromium", "chromium-browser", "google-chrome")
HOW_TO = "install it (apt-get install chromium) or pass --chromium PATH"
# Hinting off and one colour profile: the same page gives the same pixels on
# every machine with the same fonts, which a golden image relies on.
ARGS = ("--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync",
        "--disable-background-networking", "--disable-component-update",
        "--font-render-hinting=none", "--force-color-profile=srgb", "--hide-scrollbars")
WINDOW_HEIGHT = 800  # a full-page shot grows past it; a short page fills it

Scheme = Literal["light", "dark"]


class ChromiumError(DigestError):
    """No Chromium to be had, or the one given would not start or render."""

    def __init__(self, path: Path | None, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(reason)


@dataclass(frozen=True, slots=True)
class Shot:
    """One full-page screenshot: ``html`` in a window ``width`` CSS px wide."""

    html: str
    width: int
    scheme: Scheme = "light"


def find_chromium(given: Path | None) -> Path:
    """``given`` (a path, or a bare name looked up on PATH) when it is an executable
    file; without it, the first of CANDIDATES on PATH."""
    if given is not None:
        found = shutil.which(given)
        if found is not None:
            return Path(found)
        raise ChromiumError(given, f"no Chromium found at {given} (--chromium or "
                            f"DIGEST_CHROMIUM); {HOW_TO}")
    for name in CANDIDATES:
        found = shutil.which(name)
        if found is not None:
            return Path(found)
    raise ChromiumError(None, f"no Chromium found; {HOW_TO}")


def _local_only(route: Route) -> None:
    """Let file: and data: through and nothing else, so a remote image can
    neither slow a preview down nor tell anyone it was looked at."""
    if route.request.url.startswith(("file:", "data:")):
        route.continue_()
    else:
        route.abort()


def _first_line(exc: Exception) -> str:
    """Playwright's message without its method prefix and its browser log."""
    message = str(getattr(exc, "message", exc)).strip().splitlines()
    return (message[0] if message else type(exc).__name__).split(": ", 1)[-1]


def screenshots(chromium: Path, shots: Sequence[Shot]) -> list[bytes]:
    """A PNG per shot, at one device pixel per CSS pixel, scripts off as in
    a mail client, and every request but file: and data: aborted."""
    from playwright.sync_api import Error, sync_playwright

    with sync_playwright() as driver:
        try:
            browser = driver.chromium.launch(executable_path=chromium, args=list(ARGS))
        except Error as exc:
            raise ChromiumError(chromium, f"Chromium at {chromium} failed to start "
                                f"({_first_line(exc)}); pass --chromium PATH to a working "
                                "one") from exc
        try:
            context = browser.new_context(device_scale_factor=1, java_script_enabled=False,
                                          service_workers="block")
            context.route("**/*", _local_only)
            page = context.new_page()
            return [_shoot(page, shot) for shot in shots]
        except Error as exc:
            raise ChromiumError(chromium, f"Chromium at {chromium} failed while rendering "
                                f"({_first_line(exc)})") from exc
        finally:
            browser.close()


def _shoot(page: Page, shot: Shot) -> bytes:
    page.set_viewport_size({"width": shot.width, "height": WINDOW_HEIGHT})
    page.emulate_media(color_scheme=shot.scheme)
    page.set_content(shot.html, wait_until="load")
    return page.screenshot(full_page=True, animations="disabled", caret="hide")
