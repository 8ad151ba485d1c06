"""The unsubscribe pages in a real browser (system Chromium through
Playwright, launched as tests/test_visual.py does), served by a real
`digest serve` app: the button works under the page's own
Content-Security-Policy, the result and its Undo show, and nothing scrolls
sideways on a phone or a desktop."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from email.message import EmailMessage

import pytest

from tests.helpers import require_chromium
from tests.test_serve import Site, path_of, site, stopping

require_chromium()
__all__ = ["site", "stopping"]  # the fixtures this module uses



def send(site: Site) -> dict[str, EmailMessage]:
    """`digest send` from a thread of its own: Playwright's sync API keeps an
    event loop running in this one, and send starts its own."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(site.send).result()


def scroll_width(page: object) -> int:
    return int(page.evaluate("document.documentElement.scrollWidth"))  # type: ignore[attr-defined]


@pytest.mark.parametrize("width", [375, 1280])
def test_unsubscribe_then_undo_in_a_browser(browser: object, site: Site, width: int) -> None:
    sent = send(site)
    site.start()
    page = browser.new_page(viewport={"width": width, "height": 800})  # type: ignore[attr-defined]
    page.goto(site.base + path_of(sent["ann+news@example.org"], "unsubscribe"))
    heading = page.get_by_role("heading", level=1)
    assert heading.inner_text() == "Unsubscribe from The Weekly Digest?"
    assert scroll_width(page) <= width
    assert site.suppressed() == {}  # opening the page changed nothing

    page.get_by_role("button", name="Unsubscribe").click()
    page.wait_for_load_state()
    assert heading.inner_text() == "You are unsubscribed"
    assert "ann+news@example.org will get no more issues" in page.get_by_role("status").inner_text()
    assert set(site.suppressed()) == {"ann+news@example.org"}
    undo = page.get_by_role("button", name="Undo: keep me subscribed")
    assert undo.is_visible()
    assert scroll_width(page) <= width

    undo.click()
    page.wait_for_load_state()
    assert heading.inner_text() == "You are subscribed again"
    assert scroll_width(page) <= width
    assert site.suppressed() == {}
    page.close()


def test_the_pages_follow_the_dark_palette(browser: object, site: Site) -> None:
    sent = send(site)
    site.start()
    colours = {}
    for scheme in ("light", "dark"):
        page = browser.new_page()  # type: ignore[attr-defined]
        page.emulate_media(color_scheme=scheme)
        page.goto(site.base + path_of(sent["bo@example.org"], "preferences"))
        colours[scheme] = page.evaluate("getComputedStyle(document.body).backgroundColor")
        page.close()
    assert colours == {"light": "rgb(255, 255, 255)", "dark": "rgb(13, 17, 23)"}
