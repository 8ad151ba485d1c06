"""The built HTML in a real browser (system Chromium through Playwright):
600 px on a desktop, no sideways scrolling on a phone, a dark-mode palette,
and a preheader nobody sees."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from digest.cli.main import cli
from tests.helpers import CHROMIUM, CHROMIUM_ARGS, REPO, require_chromium

require_chromium()
ARGS = CHROMIUM_ARGS
playwright = pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def digest_html(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("build")
    result = CliRunner().invoke(cli, [
        "build", "--articles", str(REPO / "articles"), "--as-of", "2026-11-28", "--out", str(out),
    ])
    assert result.exit_code == 0, result.output
    return out / "digest.html"


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with playwright.sync_playwright() as p:
        instance = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield instance
        instance.close()


def measure(browser: object, html: Path, width: int, scheme: str = "light") -> dict[str, object]:
    page = browser.new_page(viewport={"width": width, "height": 900})  # type: ignore[attr-defined]
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
    assert "Council Passes Budget" in str(seen["preheaderText"])
