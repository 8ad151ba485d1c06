"""The built HTML in a real browser (system Chromium through Playwright):
600 px on a desktop (with or without its <style>), no sideways scrolling on a phone,
a dark-mode palette, and a preheader nobody sees."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from digest.cli.main import cli
from tests.helpers import REPO, png_size, require_chromium

require_chromium()


@pytest.fixture(scope="module")
def digest_html(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("build")
    result = CliRunner().invoke(cli, [
        "build", "--articles", str(REPO / "articles"), "--as-of", "2026-11-28", "--out", str(out),
    ])
    assert result.exit_code == 0, result.output
    return out / "digest.html"



def open_page(browser: object, width: int) -> Any:
    """A page of WIDTH that never reaches the network: the sample's lead image lives on
    https://example.org, and a test must not depend on fetching it."""
    page = browser.new_page(viewport={"width": width, "height": 900})  # type: ignore[attr-defined]
    page.route(re.compile(r"^https?://"), lambda route: route.abort())
    return page


def measure(browser: object, html: Path, width: int, scheme: str = "light") -> dict[str, object]:
    page = open_page(browser, width)
    page.emulate_media(color_scheme=scheme)
    page.goto(html.as_uri())
    values: dict[str, object] = page.evaluate("""() => {
        const box = document.querySelector('table.container');
        const pre = document.body.firstElementChild;
        return {
            scrollWidth: document.documentElement.scrollWidth,
            container: box.getBoundingClientRect().width,
            background: getComputedStyle(box).backgroundColor,
            preheaderHeight: pre.getBoundingClientRect().height,
            preheaderText: pre.textContent,
        };
    }""")
    page.close()
    return values


def test_desktop_is_a_600px_column(browser: object, digest_html: Path) -> None:
    seen = measure(browser, digest_html, 1024)
    assert seen["container"] == 600
    assert seen["scrollWidth"] == 1024


def test_phone_never_scrolls_sideways(browser: object, digest_html: Path) -> None:
    seen = measure(browser, digest_html, 375)
    assert seen["scrollWidth"] <= 375
    assert seen["container"] <= 375


def test_dark_mode_changes_the_palette(browser: object, digest_html: Path) -> None:
    light = measure(browser, digest_html, 1024, "light")
    dark = measure(browser, digest_html, 1024, "dark")
    assert light["background"] == "rgb(255, 255, 255)"
    assert dark["background"] != light["background"]


def test_preheader_is_hidden_but_present(browser: object, digest_html: Path) -> None:
    seen = measure(browser, digest_html, 1024)
    assert seen["preheaderHeight"] == 0
    # The stories after the lead (the subject already names the lead).
    assert str(seen["preheaderText"]).startswith("City Libraries Scrap Late Fees")



def test_without_style_the_desktop_is_still_a_600px_column(
        browser: object, digest_html: Path, tmp_path: Path) -> None:
    """A client that drops <style> sees only the inline styles: the column, and the lead
    story's image inside it, keep their widths."""
    html = digest_html.read_text(encoding="utf-8")
    stripped = tmp_path / "stripped.html"
    stripped.write_text(re.sub(r"<style\b.*?</style>", "", html, flags=re.S), encoding="utf-8")
    assert "<style" not in stripped.read_text(encoding="utf-8")
    page = open_page(browser, 1024)
    page.goto(stripped.as_uri())
    assert png_size(page.locator("table.container").screenshot(timeout=5000))[0] == 600
    assert png_size(page.locator("td.lead img").screenshot(timeout=5000))[0] == 536
    assert page.evaluate("document.documentElement.scrollWidth") == 1024
    page.close()


def test_without_style_a_phone_still_never_scrolls_sideways(
        browser: object, digest_html: Path, tmp_path: Path) -> None:
    """Gmail's app drops <style> for non-Google accounts, and with it the @media rule
    that narrows the column: the inline styles alone must fit a 375 px phone."""
    html = digest_html.read_text(encoding="utf-8")
    stripped = tmp_path / "stripped.html"
    stripped.write_text(re.sub(r"<style\b.*?</style>", "", html, flags=re.S), encoding="utf-8")
    seen = measure(browser, stripped, 375)
    assert seen["scrollWidth"] <= 375
    assert seen["container"] <= 375
