"""`digest preview` end to end: the real CLI renders the sample issue in the system
Chromium, and the PNGs it writes are read back. mobile.png is held against a golden
image with a tolerance that forgives font rasterisation and nothing a layout change does;
DIGEST_UPDATE_GOLDEN=1 rewrites the golden from this run."""

from __future__ import annotations

import email
import email.policy
import json
import os
import re
import shutil
from collections.abc import Iterable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from lxml import html as lxml_html

from digest.cli.main import cli
from digest.email.render import package_templates
from digest.state.store import open_store
from tests.helpers import AS_OF, REPO, png_size, require_chromium

require_chromium()
Image = pytest.importorskip("PIL.Image")
ImageChops = pytest.importorskip("PIL.ImageChops")

GOLDEN = Path(__file__).parent / "golden" / "preview" / "mobile.png"
UPDATE_GOLDEN = os.environ.get("DIGEST_UPDATE_GOLDEN") == "1"
PNGS = ("desktop.png", "mobile.png", "desktop-dark.png", "mobile-dark.png", "nostyle.png")
# The tolerance. Font rasterisation moves a glyph by a fraction of a pixel: at full size
# that changes ~4% of the pixels of a page of text (measured with Chromium's subpixel
# positioning off), but averaged over 4x4 cells it changes none by more than 64 shades.
# A layout change moves lines, boxes and colours, which no averaging hides: hiding the
# author blurbs changes ~0.8% of the cells, centring the text ~5%.
HEIGHT_SLACK = 4  # px
CELL = 4  # px: images are compared as the averages of CELL x CELL squares
SHADE_THRESHOLD = 64  # of 255, in the channel that changed most
MAX_CHANGED = 0.005  # share of the cells
MIN_HEIGHT = 1000  # px: a page of several stories, not an empty frame
# Three articles: Harbour, Harbour and Arts, Arts.
TAGGED = Path(__file__).parent / "fixtures" / "preview" / "articles"
WALL, FERRY = "Harbour Wall Approved", "Ferry Timetable Doubles for Winter Festival"
GALLERY = "Old Customs House Gallery Reopens"
TITLES = (WALL, FERRY, GALLERY)
HOW_TO = "install it (apt-get install chromium) or pass --chromium PATH"


def preview(out: Path, *args: str, articles: Path = REPO / "articles",
            env: dict[str, str | None] | None = None) -> Result:
    """`digest preview` of ARTICLES (the sample ones) as of AS_OF into OUT, then ARGS."""
    base = ["preview", "--articles", str(articles), "--as-of", AS_OF, "--out", str(out)]
    clean: dict[str, str | None] = {k: None for k in os.environ if k.startswith("DIGEST_")}
    return CliRunner().invoke(cli, [*base, *args], env={**clean, **(env or {})},
                              catch_exceptions=False)



def layout_difference(actual: Path, golden: Path) -> str | None:
    """Why ACTUAL does not look like GOLDEN, or None when they differ only as much as
    font rendering could make them."""
    seen, want = Image.open(actual).convert("RGB"), Image.open(golden).convert("RGB")
    if seen.width != want.width:
        return f"width {seen.width} px, golden {want.width} px"
    if abs(seen.height - want.height) > HEIGHT_SLACK:
        return f"height {seen.height} px, golden {want.height} px"
    box = (0, 0, seen.width, min(seen.height, want.height))
    cells = [image.crop(box).reduce(CELL) for image in (seen, want)]
    red, green, blue = ImageChops.difference(*cells).split()
    worst = ImageChops.lighter(ImageChops.lighter(red, green), blue)
    changed = sum(worst.histogram()[SHADE_THRESHOLD + 1:]) / (worst.width * worst.height)
    if changed > MAX_CHANGED:
        return (f"{changed:.1%} of its {CELL}x{CELL} px squares changed by more than "
                f"{SHADE_THRESHOLD} shades")
    return None


def selected() -> list[dict[str, object]]:
    """The articles the sample issue selects, as `digest articles` lists them."""
    result = CliRunner().invoke(cli, ["articles", "--articles", str(REPO / "articles"),
                                      "--as-of", AS_OF, "--format", "json"])
    assert result.exit_code == 0, result.output
    items: list[dict[str, object]] = json.loads(result.stdout)
    return items


def titles_in(page: Path, titles: Iterable[str]) -> set[str]:
    """Which of TITLES the page at PAGE shows."""
    text = lxml_html.fromstring(page.read_bytes()).text_content()
    return {title for title in titles if title in text}


def recipient(eml: Path) -> str:
    message = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
    return str(message["To"])


def write_list(path: Path, email_address: str, tag: str) -> Path:
    path.write_text(f"email,name,tags\n{email_address},Ada Reader,{tag}\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> tuple[Result, Path]:
    out = tmp_path_factory.mktemp("preview") / "out"
    return preview(out), out


def test_preview_writes_every_file_and_prints_its_path(sample: tuple[Result, Path]) -> None:
    result, out = sample
    names = (*PNGS, "digest.html", "sample.eml")
    assert (result.exit_code, result.stderr) == (0, "")
    assert result.stdout == "".join(f"{out / name}\n" for name in names)
    assert all((out / name).is_file() for name in names)


def test_pngs_have_the_window_widths(sample: tuple[Result, Path]) -> None:
    _, out = sample
    sizes = {name: png_size((out / name).read_bytes()) for name in PNGS}
    assert sizes["desktop.png"][0] == sizes["desktop-dark.png"][0] == 1200
    assert sizes["mobile.png"][0] == sizes["mobile-dark.png"][0] == 375
    assert sizes["nostyle.png"][0] >= 375  # no <style>, no mobile rule: it may overflow
    assert all(height >= MIN_HEIGHT for _, height in sizes.values()), sizes
    # A phone's column is narrower, so the same stories run longer.
    assert sizes["mobile.png"][1] > sizes["desktop.png"][1]


def test_html_and_message_are_the_sample_readers_full_issue(
        sample: tuple[Result, Path]) -> None:
    _, out = sample
    titles = {str(article["title"]) for article in selected()}
    assert titles_in(out / "digest.html", titles) == titles
    assert "Sample Reader" in (out / "digest.html").read_text(encoding="utf-8")
    assert recipient(out / "sample.eml") == "Sample Reader <reader@example.org>"


def test_mobile_matches_the_golden_image(sample: tuple[Result, Path]) -> None:
    _, out = sample
    if UPDATE_GOLDEN:
        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(out / "mobile.png", GOLDEN)
    assert GOLDEN.is_file(), f"{GOLDEN} is missing; run with DIGEST_UPDATE_GOLDEN=1"
    problem = layout_difference(out / "mobile.png", GOLDEN)
    assert problem is None, f"mobile.png: {problem}; if intended, DIGEST_UPDATE_GOLDEN=1"
    # The comparison looks at pixels, not only at sizes: the same page in dark mode
    # has the golden's size and fails it.
    dark_size = png_size((out / "mobile-dark.png").read_bytes())
    assert dark_size == png_size((out / "mobile.png").read_bytes())
    dark = layout_difference(out / "mobile-dark.png", GOLDEN)
    assert dark is not None and "squares changed" in dark


def test_a_layout_breaking_template_fails_the_golden(tmp_path: Path) -> None:
    page = (package_templates() / "digest.html.j2").read_text(encoding="utf-8")
    assert "</head>" in page
    broken = ("<style>.container { width: 900px !important; max-width: 900px !important; }"
              "</style></head>")
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "digest.html.j2").write_text(page.replace("</head>", broken, 1),
                                              encoding="utf-8")
    result = preview(tmp_path / "out", "--templates", str(templates))
    assert result.exit_code == 0, result.output
    assert layout_difference(tmp_path / "out" / "mobile.png", GOLDEN) is not None


def test_a_subscriber_gets_the_stories_of_their_tags(tmp_path: Path) -> None:
    listed = write_list(tmp_path / "list.csv", "ada@example.org", "Harbour")
    result = preview(tmp_path / "out", "--subscriber", "ADA@example.org", "--list", str(listed),
                     "--state", str(tmp_path / "no-state"), articles=TAGGED)
    assert result.exit_code == 0, result.output
    assert titles_in(tmp_path / "out" / "digest.html", TITLES) == {WALL, FERRY}
    assert recipient(tmp_path / "out" / "sample.eml") == "Ada Reader <ada@example.org>"
    assert not (tmp_path / "no-state").exists()


@pytest.mark.parametrize("backend", ["folder", "postgresql"])
def test_their_choice_in_the_state_wins_over_the_lists_tags(
        tmp_path: Path, backend: str, request: pytest.FixtureRequest) -> None:
    state = (str(tmp_path / "state") if backend == "folder"
             else str(request.getfixturevalue("postgres_url")))
    store = open_store(Path(state) if backend == "folder" else state)
    try:
        store.preferences.set("ada@example.org", ("arts",), "web:test", "2026-11-28T00:00:00Z")
    finally:
        store.close()
    listed = write_list(tmp_path / "list.csv", "ada@example.org", "Harbour")
    result = preview(tmp_path / "out", "--subscriber", "ada@example.org", "--list", str(listed),
                     "--state", state, articles=TAGGED)
    assert result.exit_code == 0, result.output
    assert titles_in(tmp_path / "out" / "digest.html", TITLES) == {FERRY, GALLERY}


def test_a_chromium_path_that_is_not_there(tmp_path: Path) -> None:
    result = preview(tmp_path / "out", "--chromium", "/nonexistent")
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == ("Error: no Chromium found at /nonexistent (--chromium or "
                             f"DIGEST_CHROMIUM); {HOW_TO}\n")
    assert not (tmp_path / "out").exists()


def test_no_chromium_on_the_path(tmp_path: Path) -> None:
    result = preview(tmp_path / "out", env={"PATH": str(tmp_path)})
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == f"Error: no Chromium found; {HOW_TO}\n"


def test_a_chromium_that_does_not_start(tmp_path: Path) -> None:
    fake = shutil.which("true")
    assert fake is not None
    result = preview(tmp_path / "out", "--chromium", fake)
    assert (result.exit_code, result.stdout) == (1, "")
    assert re.fullmatch(rf"Error: Chromium at {re.escape(fake)} failed to start \([^\n]+\); "
                        r"pass --chromium PATH to a working one\n", result.stderr), result.stderr
    assert not (tmp_path / "out").exists()


def test_a_subscriber_not_in_the_list(tmp_path: Path) -> None:
    listed = write_list(tmp_path / "list.csv", "ada@example.org", "")
    result = preview(tmp_path / "out", "--subscriber", "nobody@example.org", "--list",
                     str(listed))
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == (f"Error: --subscriber: nobody@example.org is not a subscriber in "
                             f"{listed}; check the address and --list\n")
    assert not (tmp_path / "out").exists()


def test_a_subscriber_whose_tags_match_nothing(tmp_path: Path) -> None:
    listed = write_list(tmp_path / "list.csv", "ada@example.org", "no-such-topic")
    result = preview(tmp_path / "out", "--subscriber", "ada@example.org", "--list",
                     str(listed), "--state", str(tmp_path / "state"), articles=TAGGED)
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == ("Error: --subscriber: ada@example.org wants no-such-topic, which "
                             "none of the 3 selected articles has; a send would skip them\n")


def test_a_subscriber_needs_a_list(tmp_path: Path) -> None:
    result = preview(tmp_path / "out", "--subscriber", "ada@example.org")
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1] == (
        "Error: --subscriber needs --list FILE, the list that has them")


def test_no_articles_is_nothing_to_preview(tmp_path: Path) -> None:
    result = preview(tmp_path / "out", "--since", "2000-01-01", "--as-of", "2000-01-08")
    assert (result.exit_code, result.stderr) == (0, "")
    assert result.stdout == "No articles selected; nothing to preview.\n"
    assert not (tmp_path / "out").exists()
