"""The web archive in a real browser: system Chromium (through Playwright, as
tests/test_serve_browser.py launches it) draws an issue page and an article page
that a real `digest send --archive` wrote and a real `digest serve --archive`
serves, on a phone (375 px) and a desktop (1200 px). Nothing scrolls sideways,
and the screenshots are as wide as the window. The page gets no network but
the test server: anything else it asks for is refused."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from tests.helpers import png_size, require_chromium
from tests.test_archive_web import published, serve_archive
from tests.test_serve import Site, site, stopping

require_chromium()
__all__ = ["site", "stopping"]  # the fixtures this module uses
PAGES = {"issue": ("/archive/issues/2026-w48-readers-all.html",
                   "Council Passes Budget With Late Boost for Bus Services"),
         "article": ("/archive/articles/lagos-solar-microgrids.html",
                     "Solar Microgrids Bring Round-the-Clock Power to Lagos Markets")}




def offline_page(browser: object, base: str, width: int) -> tuple[object, list[str]]:
    """A page of WIDTH CSS px that reaches nothing but BASE, and the URLs it was refused."""
    page = browser.new_page(viewport={"width": width, "height": 800})  # type: ignore[attr-defined]
    refused: list[str] = []

    def only_the_test_server(route: object) -> None:
        url = route.request.url  # type: ignore[attr-defined]
        if url.startswith(base + "/"):
            route.continue_()  # type: ignore[attr-defined]
        else:
            refused.append(url)
            route.abort()  # type: ignore[attr-defined]

    page.route("**/*", only_the_test_server)
    return page, refused


def test_issue_and_article_pages_fit_a_phone_and_a_desktop(browser: object, site: Site) -> None:
    with ThreadPoolExecutor(1) as pool:  # send runs its own event loop; Playwright's is here
        pool.submit(published, site).result()
    serve_archive(site, site.workdir / "public", f"{site.base}/archive/")
    for kind, (path, title) in PAGES.items():
        for width in (375, 1200):
            page, refused = offline_page(browser, site.base, width)
            response = page.goto(site.base + path)  # type: ignore[attr-defined]
            assert response.status == 200, (kind, width)
            assert title in page.inner_text("body"), (kind, width)  # type: ignore[attr-defined]
            scroll = page.evaluate("document.documentElement.scrollWidth")  # type: ignore[attr-defined]
            assert scroll <= width, (kind, width, scroll)
            shot = png_size(page.screenshot(full_page=True))  # type: ignore[attr-defined]
            assert shot[0] == width and shot[1] >= 800, (kind, width, shot)
            if kind == "issue":  # its lead image, which the page's policy lets it ask for
                assert refused == ["https://example.org/images/council-budget-vote.jpg"]
            page.close()  # type: ignore[attr-defined]
