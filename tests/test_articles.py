"""Tests for digest.content.articles and digest.content.readers: both formats, errors, folders."""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from digest.content.articles import LoadResult, load_articles
from digest.errors import ArticleError
from digest.model import Article, Block, Tag, slugify
from tests.helpers import REPO, TESTS, articles_folder, tz

FIXTURES = TESTS / "fixtures" / "articles"
SAMPLE_ARTICLES = REPO / "articles"
# shared/ sits beside the repository (for /work/main that is /work/shared).
SEED = REPO.parent / "shared" / "seeds" / "000_8ee69e3a595b9b39.txt"


def P(text: str) -> Block:
    return Block("paragraph", text)


def H(text: str) -> Block:
    return Block("heading", text)


def make_root(tmp_path: Path, *names: str, authors: bool = False) -> Path:
    """A fresh articles folder holding copies of the named fixtures."""
    root = articles_folder(tmp_path, FIXTURES, *names)
    if authors:
        shutil.copyfile(FIXTURES / "authors-bios.yaml", root / "authors.yaml")
    return root


def load_one(tmp_path: Path, name: str, *, authors: bool = False) -> Article:
    result = load_articles(make_root(tmp_path, name, authors=authors))
    assert [str(p) for p in result.problems] == []
    (article,) = result.articles
    assert article.source == tmp_path / "articles" / name
    return article


def problem_of(tmp_path: Path, name: str) -> ArticleError:
    result = load_articles(make_root(tmp_path, name))
    assert result.articles == ()
    (problem,) = result.problems
    assert problem.path == tmp_path / "articles" / name
    return problem


def names(result: LoadResult) -> list[str]:
    return sorted(article.source.name for article in result.articles)


# --- Markdown -----------------------------------------------------------------


def test_markdown_full_front_matter(tmp_path: Path) -> None:
    article = load_one(tmp_path, "md-full-front-matter.md")
    assert article.title == "Night Ferry Timetable Extended Through the Winter"
    assert article.author == "Ilse Marchetti"
    assert article.date == datetime(2026, 12, 3, 21, 40, tzinfo=tz(-3))
    assert article.date.utcoffset() == timedelta(hours=-3)
    assert article.tags == (
        Tag("Transport", "transport"),
        Tag("Harbour Life", "harbour-life"),
    )
    assert article.summary == (
        "The last crossing now leaves at 23:50 on weekdays. Weekend service is unchanged."
    )
    assert article.url == "https://example.net/harbour/night-ferry"
    assert article.section == "City"
    assert article.author_bio == (
        "Ilse Marchetti covers ferries, ports and the people who work on the water."
    )
    assert article.language == "en-GB"
    assert article.body == (
        P(
            "The harbour ferry will keep its late weekday crossing running until March, "
            "the operator said on Thursday."
        ),
        P("Weekend sailings stay as they are."),
    )


def test_markdown_optional_fields_default_to_none(tmp_path: Path) -> None:
    article = load_one(tmp_path, "md-bare-date.md")
    assert article.tags == ()
    assert (article.summary, article.url, article.section) == (None, None, None)
    assert (article.author_bio, article.language) == (None, None)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            "md-tags-yaml-list.md",
            [("Parks", "parks"), ("Local Government", "local-government"), ("Food", "food")],
        ),
        (
            "md-tags-comma-string.md",
            [("Sport", "sport"), ("Energy", "energy"), ("Local Government", "local-government")],
        ),
        (
            "md-tags-semicolon-string.md",
            [("Food", "food"), ("Business", "business"), ("Community", "community")],
        ),
    ],
)
def test_markdown_tag_spellings(
    tmp_path: Path, name: str, expected: list[tuple[str, str]]
) -> None:
    article = load_one(tmp_path, name)
    assert [(tag.name, tag.slug) for tag in article.tags] == expected


def test_markdown_bare_date_is_midnight_utc(tmp_path: Path) -> None:
    article = load_one(tmp_path, "md-bare-date.md")
    assert article.date == datetime(2026, 10, 2, 0, 0, tzinfo=UTC)
    assert article.date.utcoffset() == timedelta(0)


def test_markdown_datetime_offset_kept(tmp_path: Path) -> None:
    article = load_one(tmp_path, "md-datetime-offset.md")
    assert article.date == datetime(2026, 6, 30, 6, 15, tzinfo=tz(5.5))
    assert (article.date.hour, article.date.utcoffset()) == (6, timedelta(hours=5, minutes=30))


def test_markdown_subheadings_are_their_own_blocks(tmp_path: Path) -> None:
    article = load_one(tmp_path, "md-subheadings.md")
    assert article.body == (
        P(
            "The council published its plan for a protected cycle lane on Thursday, "
            "and residents have six weeks to respond."
        ),
        H("Where the lane would run"),
        P("It would follow the old tram route from the station to the university."),
        H("What it would cost"),
        P("The estimate is just under two million, most of it from a regional grant."),
        P("Shop owners asked for loading bays to be kept."),
        H("Next steps"),
        P("A final decision is expected in the spring."),
    )
    assert article.paragraphs == [b.text for b in article.body if b.kind == "paragraph"]
    assert not any("#" in block.text for block in article.body)


def test_markdown_inline_markup_stripped(tmp_path: Path) -> None:
    article = load_one(tmp_path, "md-inline-markdown.md")
    assert article.body == (
        H("The late routes"),
        P(
            "The new alerts, run by the transit authority, are listed at the depot page "
            "and in the night_routes.csv file; see a route map for stops."
        ),
        P("Riders text NIGHT_BUS_PASS to 4040 for free updates, and the old hotline closes."),
    )


def test_markdown_byte_order_mark(tmp_path: Path) -> None:
    assert (FIXTURES / "md-bom.md").read_bytes().startswith(b"\xef\xbb\xbf---\n")
    article = load_one(tmp_path, "md-bom.md")
    assert article.title == "Ferry Terminal Gets Step-Free Access"
    assert article.date == datetime(2026, 11, 28, tzinfo=UTC)
    assert article.body == (P("A new lift and ramp opened at the ferry terminal on Friday."),)


# --- Markdown errors ----------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "line", "message"),
    [
        (
            "md-error-no-front-matter.md",
            1,
            "a Markdown article must start with a '---' line of YAML front matter",
        ),
        ("md-error-unclosed-front-matter.md", 1, "the front matter has no closing '---' line"),
        (
            "md-error-invalid-yaml.md",
            5,
            "front matter is not valid YAML: mapping values are not allowed here",
        ),
        ("md-error-missing-title.md", None, "missing 'title'; add a 'title:' field"),
        ("md-error-missing-date.md", None, "missing 'date'; add a 'date:' field"),
        (
            "md-error-naive-datetime.md",
            4,
            (
                "bad 'date': '2026-11-24 09:15:00' has no time-zone offset; "
                "add one, e.g. 2026-11-24T09:15:00+00:00"
            ),
        ),
        (
            "md-error-bad-url.md",
            6,
            "bad 'url': 'ftp://example.net/marina/fees' is not an http(s) URL",
        ),
        ("md-error-not-utf8.md", 9, "is not UTF-8 text; re-save it as UTF-8"),
        ("md-error-bom-not-utf8.md", 9, "is not UTF-8 text; re-save it as UTF-8"),
    ],
)
def test_markdown_errors(tmp_path: Path, name: str, line: int | None, message: str) -> None:
    problem = problem_of(tmp_path, name)
    path = tmp_path / "articles" / name
    where = f"{path}:{line}" if line else f"{path}"
    assert str(problem) == f"{where}: {message}"
    assert problem.line == line


# --- The news-page layout -----------------------------------------------------


def test_layout_full(tmp_path: Path) -> None:
    article = load_one(tmp_path, "layout-full.txt")
    assert article.title == "Seed Library Opens in Kisumu Market Hall"
    assert article.author == "Achieng Otieno"
    assert article.date == datetime(2026, 3, 4, 9, 45, tzinfo=tz(3))
    assert article.date.utcoffset() == timedelta(hours=3)
    assert article.section == "Agriculture"
    assert article.language == "en"
    assert [tag.name for tag in article.tags] == ["Kenya", "Agriculture", "Food"]
    assert article.author_bio == (
        "Achieng Otieno is a freelance reporter in Kisumu who writes about smallholder "
        "farming, food prices and rural cooperatives around Lake Victoria."
    )
    assert (article.summary, article.url) == (None, None)
    assert article.body == (
        P(
            "A seed library where farmers can borrow indigenous seed and return a share after "
            "harvest opened on Wednesday in the old market hall in Kisumu, with more than 60 "
            "varieties of sorghum, millet, cowpea and amaranth on its shelves."
        ),
        H("From Shoebox to Shelf"),
        P(
            "The collection began six years ago in a single shoebox kept by retired teacher "
            "Margaret Akinyi, who swapped seed with neighbours after a dry season left many "
            "families with nothing to plant. \u201cWe kept losing the old varieties because "
            "nobody wrote down who had them,\u201d she said."
        ),
        H("What Growers Borrow"),
        P(
            "Members may take up to two kilograms of seed per season and are asked to return "
            "twice that amount from their own crop. Volunteers test a sample of every returned "
            "batch for germination before it goes back on the shelf."
        ),
        P(
            "Can a library keep pace with demand when the rains fail two years in a row? County "
            "agricultural officers say they will count how many borrowers repay their loans."
        ),
        H("Keeping the Shelves Full"),
        P(
            "The organisers plan to open two smaller branches in Siaya and Homa Bay later this "
            "year and are training volunteers to record where each variety was grown."
        ),
    )


def test_layout_without_published_line_uses_header_date(tmp_path: Path) -> None:
    article = load_one(tmp_path, "layout-no-published.txt")
    assert article.date == datetime(2026, 2, 10, tzinfo=UTC)
    assert article.title == "Hailstorm Flattens Greenhouses on the Valley Road"
    # The repeated title right after the By: line is not part of the body.
    assert article.body[0].text.startswith("A short but violent hailstorm")
    assert len(article.body) == 2


def test_layout_error_first_line(tmp_path: Path) -> None:
    problem = problem_of(tmp_path, "layout-error-first-line.txt")
    path = tmp_path / "articles" / "layout-error-first-line.txt"
    assert str(problem) == f"{path}:1: expected a first line like ' date 2026-11-24 en English'"


def test_layout_error_missing_byline(tmp_path: Path) -> None:
    problem = problem_of(tmp_path, "layout-error-no-byline.txt")
    path = tmp_path / "articles" / "layout-error-no-byline.txt"
    assert str(problem) == (
        f"{path}:6: expected a 'By: NAME' line, found 'Written by Achieng Otieno'"
    )


def test_layout_error_unknown_zone_names_file_and_published_line(tmp_path: Path) -> None:
    problem = problem_of(tmp_path, "layout-error-unknown-zone.txt")
    path = tmp_path / "articles" / "layout-error-unknown-zone.txt"
    prefix = f"{path}:7: bad 'date': unknown time-zone abbreviation 'IDT'; use one of "
    assert str(problem).startswith(prefix)
    assert problem.line == 7
    assert "EAT" in str(problem).removeprefix(prefix).split(", ")


def test_layout_error_missing_tail(tmp_path: Path) -> None:
    problem = problem_of(tmp_path, "layout-error-no-tail.txt")
    path = tmp_path / "articles" / "layout-error-no-tail.txt"
    assert str(problem) == (
        f"{path}:12: expected a line of tags followed by a line with the author's name "
        "('Achieng Otieno') after the body"
    )


# --- The shared seed (a real published article) -------------------------------


def test_shared_seed(tmp_path: Path) -> None:
    if not SEED.is_file():
        pytest.skip(f"shared seed not present at {SEED}")
    root = tmp_path / "articles"
    root.mkdir()
    shutil.copyfile(SEED, root / SEED.name)
    result = load_articles(root)
    assert [str(p) for p in result.problems] == []
    (article,) = result.articles
    assert article.title == "U.N. Peacekeeping Mission in Mali Concludes: What\u2019s Next?"
    assert article.author == "Salman Akhtar"
    assert article.date == datetime(2023, 12, 31, 11, 27, tzinfo=tz(-5))
    assert article.date.utcoffset() == timedelta(hours=-5)
    assert article.section == "Mali"
    assert article.language == "en"
    assert [tag.name for tag in article.tags] == ["Mali", "Military", "Security"]
    assert article.author_bio is not None
    assert article.author_bio.startswith("Salman Akhtar is a talented multimedia journalist")
    assert article.author_bio.endswith("constructive transformation.")
    assert [block.kind[0] for block in article.body] == ["p", "h", "p", "h", "p", "h", "p", "p"]
    assert [block.text for block in article.body if block.kind == "heading"] == [
        "Decade-long Effort Comes to an End",
        "Concerns Over Security and Stability",
        "Continued U.N. Presence and Assistance",
    ]
    # Neither the title, the byline, the tags nor the blurb leak into the body.
    body_text = " ".join(block.text for block in article.body)
    assert "By:" not in body_text and "Published:" not in body_text
    assert "Salman Akhtar" not in body_text


def test_seedlike_layout_field_by_field(tmp_path: Path) -> None:
    """Our own text in the shared seed's layout, so the suite never depends on
    the seed: a header with a leading space, a one-word section, a title with
    "U.N.", a colon, a curly apostrophe and a closing question mark, repeated
    straight after a Published: stamp whose zone (EST) puts it in the next
    year in UTC, three sub-headings (one with "U.N." in it), two paragraphs in
    a row at the end, a tags line glued to the author line, and a blurb that
    names the author twice, followed by a trailing blank line."""
    article = load_one(tmp_path, "layout-seedlike.txt")
    title = "U.N. Water Panel Wraps Up Atacama Review: What\u2019s Next for the Basin?"
    assert article.title == title
    assert article.author == "Renata Okonkwo-Salas"
    assert article.date == datetime(2025, 12, 31, 23, 48, tzinfo=tz(-5))
    assert article.date.utcoffset() == timedelta(hours=-5)
    assert article.date.astimezone(UTC) == datetime(2026, 1, 1, 4, 48, tzinfo=UTC)
    assert article.section == "Chile"
    assert article.language == "en"
    assert article.tags == (Tag("Chile", "chile"), Tag("Water", "water"), Tag("Mining", "mining"))
    assert (article.summary, article.url) == (None, None)
    assert article.author_bio == (
        "Renata Okonkwo-Salas is a science reporter based in Antofagasta who follows water, "
        "mining and climate across the Andes. Before joining the desk she spent six years as a "
        "field hydrologist, and she still keeps a rain gauge on her balcony. Renata "
        "Okonkwo-Salas writes a monthly column on drought."
    )
    assert [block.kind[0] for block in article.body] == ["p", "h", "p", "h", "p", "h", "p", "p"]
    assert [block.text for block in article.body if block.kind == "heading"] == [
        "Three Years Under the Salt Flats",
        "Farmers and Mines at One Table",
        "What the U.N. Team Leaves Behind",
    ]
    assert article.body[0] == P(
        "On December 31, 2025, the U.N. panel on shared aquifers in the Atacama, known as "
        "PANAQ, hands in its final report. Asked by the regional water board in March to review "
        "how much the Loa basin can give, the panel held its last hearing in Calama today. Its "
        "work has run since 2022, and its findings land as copper mines and alfalfa growers draw "
        "on the same shrinking supply."
    )
    assert article.body[-1] == P(
        "While PANAQ\u2019s mandate ends tonight, the U.N.\u2019s data will outlast it. Basin "
        "councils downstream say they will read the report slowly and closely, hoping it gives "
        "them numbers everyone can agree to argue about."
    )
    # Neither the title, the byline, the stamp, the tags nor the blurb leak into the body.
    body_text = " ".join(block.text for block in article.body)
    for leak in (title, "By:", "Published:", "Chile Water Mining", "Okonkwo", "rain gauge"):
        assert leak not in body_text


# --- Folders ------------------------------------------------------------------


def test_folder_collects_problems_per_file_and_loads_good_files(tmp_path: Path) -> None:
    root = make_root(
        tmp_path,
        "md-bare-date.md",
        "md-error-invalid-yaml.md",
        "layout-full.txt",
        "layout-error-no-byline.txt",
        "md-error-not-utf8.md",
        "md-tags-yaml-list.md",
    )
    result = load_articles(root)
    assert names(result) == ["layout-full.txt", "md-bare-date.md", "md-tags-yaml-list.md"]
    assert sorted(str(p) for p in result.problems) == sorted(
        [
            (
                f"{root / 'layout-error-no-byline.txt'}:6: expected a 'By: NAME' line, "
                "found 'Written by Achieng Otieno'"
            ),
            (
                f"{root / 'md-error-invalid-yaml.md'}:5: front matter is not valid YAML: "
                "mapping values are not allowed here"
            ),
            f"{root / 'md-error-not-utf8.md'}:9: is not UTF-8 text; re-save it as UTF-8",
        ]
    )
    assert all(isinstance(p, ArticleError) for p in result.problems)


def test_authors_file_supplies_missing_bio(tmp_path: Path) -> None:
    article = load_one(tmp_path, "md-no-bio.md", authors=True)
    assert article.author_bio == (
        "Wren Halloway reports on parks, food and neighbourhood life from the east side "
        "of the city."
    )


def test_no_authors_file_leaves_bio_empty(tmp_path: Path) -> None:
    assert load_one(tmp_path, "md-no-bio.md").author_bio is None


@pytest.mark.parametrize(
    ("name", "own_bio"),
    [
        (
            "md-full-front-matter.md",
            "Ilse Marchetti covers ferries, ports and the people who work on the water.",
        ),
        (
            "layout-full.txt",
            (
                "Achieng Otieno is a freelance reporter in Kisumu who writes about smallholder "
                "farming, food prices and rural cooperatives around Lake Victoria."
            ),
        ),
    ],
)
def test_article_bio_beats_authors_file(tmp_path: Path, name: str, own_bio: str) -> None:
    article = load_one(tmp_path, name, authors=True)
    assert article.author_bio == own_bio


def test_hidden_files_and_folders_ignored(tmp_path: Path) -> None:
    root = make_root(tmp_path, "md-bare-date.md")
    shutil.copyfile(FIXTURES / "md-tags-yaml-list.md", root / ".draft.md")
    (root / ".drafts").mkdir()
    shutil.copyfile(FIXTURES / "layout-full.txt", root / ".drafts" / "layout-full.txt")
    shutil.copyfile(FIXTURES / "md-error-no-front-matter.md", root / ".broken.md")
    result = load_articles(root)
    assert names(result) == ["md-bare-date.md"]
    assert result.problems == ()


def test_unknown_extensions_ignored(tmp_path: Path) -> None:
    root = make_root(tmp_path, "md-bare-date.md")
    shutil.copyfile(FIXTURES / "md-tags-yaml-list.md", root / "notes.rst")
    shutil.copyfile(FIXTURES / "md-tags-yaml-list.md", root / "README")
    shutil.copyfile(FIXTURES / "md-error-no-front-matter.md", root / "broken.md.bak")
    result = load_articles(root)
    assert names(result) == ["md-bare-date.md"]
    assert result.problems == ()


def test_subfolders_are_read(tmp_path: Path) -> None:
    root = make_root(tmp_path, "md-bare-date.md")
    (root / "2026" / "march").mkdir(parents=True)
    shutil.copyfile(FIXTURES / "layout-full.txt", root / "2026" / "march" / "seeds.txt")
    result = load_articles(root)
    assert names(result) == ["md-bare-date.md", "seeds.txt"]


def test_symlink_leading_outside_is_skipped_with_problem(tmp_path: Path) -> None:
    root = make_root(tmp_path, "md-bare-date.md")
    outside = tmp_path / "private"
    outside.mkdir()
    secret = outside / "secret.md"
    shutil.copyfile(FIXTURES / "md-full-front-matter.md", secret)
    link = root / "leak.md"
    try:
        link.symlink_to(secret)
    except OSError:
        pytest.skip("symlinks are not available here")
    result = load_articles(root)
    assert names(result) == ["md-bare-date.md"]
    assert [str(p) for p in result.problems] == [
        f"{link}: is a symlink that leads outside the articles folder; skipped"
    ]
    loaded = " ".join(
        [a.title for a in result.articles] + [b.text for a in result.articles for b in a.body]
    )
    assert "Night Ferry" not in loaded and "harbour ferry" not in loaded


def test_symlink_within_folder_is_read(tmp_path: Path) -> None:
    root = make_root(tmp_path, "md-bare-date.md")
    link = root / "alias.md"
    try:
        link.symlink_to(root / "md-bare-date.md")
    except OSError:
        pytest.skip("symlinks are not available here")
    result = load_articles(root)
    assert names(result) == ["alias.md", "md-bare-date.md"]
    assert result.problems == ()


def test_symlinked_directory_not_descended(tmp_path: Path) -> None:
    root = make_root(tmp_path, "md-bare-date.md")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    shutil.copyfile(FIXTURES / "md-full-front-matter.md", outside / "ferry.md")
    shutil.copyfile(FIXTURES / "md-error-no-front-matter.md", outside / "broken.md")
    try:
        (root / "linked").symlink_to(outside, target_is_directory=True)
    except OSError:
        pytest.skip("symlinks are not available here")
    assert os.path.isdir(root / "linked")
    result = load_articles(root)
    assert names(result) == ["md-bare-date.md"]
    assert not any(root / "linked" in p.path.parents for p in result.problems)
    assert [str(p) for p in result.problems] == [
        f"{root / 'linked'}: is a symlinked folder; not followed"
    ]
    assert not any(a.title.startswith("Night Ferry") for a in result.articles)


def test_bad_authors_file_is_a_problem_not_a_stop(tmp_path: Path) -> None:
    root = make_root(tmp_path, "md-bare-date.md")
    (root / "authors.yaml").write_text("Wren: [unclosed\n", encoding="utf-8")
    result = load_articles(root)
    assert names(result) == ["md-bare-date.md"]
    assert [str(p) for p in result.problems] == [f"{root / 'authors.yaml'}:2: is not valid YAML"]


@pytest.mark.parametrize("kind", ["file", "missing"])
def test_root_that_is_not_a_folder(tmp_path: Path, kind: str) -> None:
    root = tmp_path / "articles.md"
    if kind == "file":
        shutil.copyfile(FIXTURES / "md-bare-date.md", root)
    with pytest.raises(ArticleError) as caught:
        load_articles(root)
    assert str(caught.value) == (
        f"{root}: not a folder; point --articles at your articles folder"
    )


# --- Tags ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("left", "right"),
    [
        ("Local Government", "local_government"),
        ("Local Government", "LOCAL-GOVERNMENT"),
        ("local_government", "LOCAL-GOVERNMENT"),
        ("  Local   Government ", "local-government"),
        ("Énergie", "energie"),
        ("ÉNERGIE", "Energie"),
    ],
)
def test_tag_slugs_compare_equal(left: str, right: str) -> None:
    assert Tag.of(left).slug == Tag.of(right).slug
    assert Tag.of(left).slug == slugify(right)


def test_tag_keeps_display_name() -> None:
    assert Tag.of("  Local Government ") == Tag("Local Government", "local-government")
    assert Tag.of("Énergie") == Tag("Énergie", "energie")


@pytest.mark.parametrize(("left", "right"), [("Energy", "Environment"), ("Local", "Government")])
def test_different_tags_have_different_slugs(left: str, right: str) -> None:
    assert Tag.of(left).slug != Tag.of(right).slug


def test_duplicate_tags_collapsed_first_spelling_wins(tmp_path: Path) -> None:
    article = load_one(tmp_path, "md-duplicate-tags.md")
    assert article.tags == (
        Tag("Local Government", "local-government"),
        Tag("Énergie", "energie"),
    )
    assert article.tag_slugs == frozenset({"local-government", "energie"})


# --- The sample content shipped in the repository ------------------------------


def test_sample_articles_load_cleanly() -> None:
    result = load_articles(SAMPLE_ARTICLES)
    assert [str(p) for p in result.problems] == []
    files = sorted(
        p.name for p in SAMPLE_ARTICLES.iterdir() if p.suffix in (".md", ".markdown", ".txt")
    )
    assert names(result) == files
    assert len(result.articles) >= 10
    assert len({slug for a in result.articles for slug in a.tag_slugs}) >= 5
    assert len({a.author for a in result.articles}) >= 4
    assert {a.source.suffix for a in result.articles} >= {".md", ".txt"}
    for article in result.articles:
        assert article.date.utcoffset() is not None, article.source
        assert article.body, article.source
        assert article.tags, article.source


# --- Unknown front-matter keys (issue 12) ----------------------------------------


def test_unknown_front_matter_key_warns_with_nearest_known_key(tmp_path: Path) -> None:
    result = load_articles(make_root(tmp_path, "md-warning-unknown-key.md"))
    assert result.problems == ()
    (article,) = result.articles
    assert article.summary is None
    assert [str(w) for w in result.warnings] == [
        f"{tmp_path}/articles/md-warning-unknown-key.md:5: unknown front-matter key 'sumary'; "
        "did you mean 'summary'?"
    ]


def test_unknown_front_matter_key_without_a_near_one_lists_the_known_keys(
        tmp_path: Path) -> None:
    result = load_articles(make_root(tmp_path, "md-warning-unknown-key-far.md"))
    (warning,) = result.warnings
    assert (warning.line, warning.message) == (
        5, "unknown front-matter key 'mood'; known keys: title, author, date, tags, summary, "
           "url, section, author_bio, language, featured, weight, image, image_alt")


def test_known_keys_draw_no_warning(tmp_path: Path) -> None:
    result = load_articles(make_root(tmp_path, "md-full-front-matter.md", "layout-full.txt"))
    assert result.warnings == ()
    assert len(result.articles) == 2


def test_cli_unknown_key_is_a_warning_and_strict_makes_it_an_error(workdir: Path) -> None:
    from tests.helpers import AS_OF, run

    shutil.copy(FIXTURES / "md-warning-unknown-key.md", workdir / "articles")
    code, _, err = run("articles", "--as-of", AS_OF, "--format", "json")
    assert code == 0
    assert err == ("warning: articles/md-warning-unknown-key.md:5: unknown front-matter key "
                   "'sumary'; did you mean 'summary'?\n")
    code, out, err = run("articles", "--as-of", AS_OF, "--strict")
    assert (code, out) == (1, "")
    assert err == ("Error: articles/md-warning-unknown-key.md:5: unknown front-matter key "
                   "'sumary'; did you mean 'summary'?\n")


# --- Markdown backslash escapes (issue 12) ---------------------------------------

ASCII_PUNCTUATION = r"""!"#$%&'()*+,-./:;<=>?@[\]^_`{|}~"""


def test_markdown_escapes_become_literal_characters(tmp_path: Path) -> None:
    article = load_one(tmp_path, "md-escapes.md")
    assert article.title == "Snake_case and *stars* in the #1 story"
    assert article.summary == "Rename NIGHT_BUS to `night_bus` (see [notes])."
    assert article.body == (
        P("Every escape: " + " ".join(ASCII_PUNCTUATION) + " end."),
        P("Escaped *stars* stay, bold goes, and __under__ stays; a [link](x) stays text."),
        P("Code keeps a\\_b as written, and \\C:\\Users stays."),
    )


@pytest.mark.parametrize("char", list(ASCII_PUNCTUATION))
def test_each_ascii_punctuation_escape_is_literal(tmp_path: Path, char: str) -> None:
    text = (FIXTURES / "md-no-bio.md").read_text(encoding="utf-8")
    head, _, _ = text.partition("\n---\n")
    root = tmp_path / "articles"
    root.mkdir()
    # Escaped on both sides, '*', '_' and '`' would pair up as markup if the escape failed.
    (root / "escape.md").write_text(f"{head}\n---\n\nA \\{char}x\\{char} b.\n",
                                    encoding="utf-8")
    (article,) = load_articles(root).articles
    assert article.body == (P(f"A {char}x{char} b."),)
