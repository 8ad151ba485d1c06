"""`digest check`, the preflight: each error in its own fixture under tests/fixtures/check/
(an articles folder, or a templates folder run over the clean `articles` folder), the exit
code and the exact output through CliRunner; the contrast module over small pages; and the
repository's own sample issue, which must pass."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import lxml.html
import pytest

from digest.desk.contrast import low_contrast
from tests.helpers import AS_OF, REPO, TEST_SECRET, TESTS, run

CASES = TESTS / "fixtures" / "check"
NO_SECRET = {"DIGEST_SECRET": ""}


@pytest.fixture
def checked(make_workdir: Callable[..., Path], tmp_path: Path,
            monkeypatch: pytest.MonkeyPatch) -> Callable[..., tuple[int, str]]:
    """``checked(articles, *args, templates=None, env=None)``: `digest check --as-of AS_OF`
    in a fresh working folder holding the case's articles as articles/ (and its templates
    folder as templates/, passed with --templates): (exit code, stdout). Nothing may go to
    stderr. The environment is `make_workdir`'s: the test link key and no other DIGEST_*."""
    make_workdir(articles=CASES / "articles")  # the environment, and a folder to start in
    runs = iter(range(1, 100))

    def check(articles: str, *args: str, templates: str | None = None,
              env: dict[str, str] | None = None) -> tuple[int, str]:
        workdir = tmp_path / f"run{next(runs)}"
        shutil.copytree(CASES / articles, workdir / "articles")
        flags = list(args)
        if templates is not None:
            shutil.copytree(CASES / templates, workdir / "templates")
            flags += ["--templates", "templates"]
        monkeypatch.chdir(workdir)
        code, out, err = run("check", "--as-of", AS_OF, *flags, env=env)
        assert err == ""
        return code, out

    return check


def test_clean_articles_pass(checked: Callable[..., tuple[int, str]]) -> None:
    assert checked("articles") == (0, "No problems found in 1 variant.\n")


def test_a_story_without_a_link_is_an_error(checked: Callable[..., tuple[int, str]]) -> None:
    assert checked("no-link") == (1, (
        "error: articles/ferry-timetable.md: the story 'Ferry Timetable Changes' has no link: "
        "add url: to its front matter, or set url-template\n"
        "error: articles/storm-siren-test.md: the story 'Storm Sirens Tested on Saturday' has "
        "no link: add url: to its front matter, or set url-template\n"
        "2 errors, 0 warnings\n"))


def test_url_template_links_what_it_can_and_names_what_it_lacks(
        checked: Callable[..., tuple[int, str]]) -> None:
    assert checked("no-link", "--url-template", "https://news.example.org/{section}/{slug}") == (
        1, "error: articles/storm-siren-test.md: the story 'Storm Sirens Tested on Saturday' "
        "has no link: url-template needs its section; add section: or url: to it\n"
        "1 error, 0 warnings\n")


def test_an_image_without_alt_text_is_an_error(checked: Callable[..., tuple[int, str]]) -> None:
    assert checked("missing-alt") == (1, (
        "error: articles/harbour-wall.md: image 'https://news.example.org/images/harbour-…' "
        "has no alt text; add image_alt: to the article\n"
        "1 error, 0 warnings\n"))


def test_a_front_matter_typo_warns_and_fails_under_strict(
        checked: Callable[..., tuple[int, str]]) -> None:
    line = ("articles/library-late-fees.md:6: unknown front-matter key 'sumary'; "
            "did you mean 'summary'?\n")
    assert checked("typo") == (0, f"warning: {line}0 errors, 1 warning\n")
    assert checked("typo", "--strict") == (1, f"error: {line}1 error, 0 warnings\n")


def test_a_file_that_does_not_parse_warns_and_fails_under_strict(
        checked: Callable[..., tuple[int, str]]) -> None:
    where = "articles/fish-market.md: "
    problem = "missing 'date'; add a 'date:' field\n"
    assert checked("broken") == (0, f"warning: {where}skipped: {problem}0 errors, 1 warning\n")
    assert checked("broken", "--strict") == (1, f"error: {where}{problem}1 error, 0 warnings\n")


def test_low_contrast_in_a_user_templates_dark_palette_is_an_error(
        checked: Callable[..., tuple[int, str]]) -> None:
    assert checked("articles", templates="low-contrast") == (1, (
        'error: templates/digest.html.j2: contrast 2.5:1 for "Local" (#a23b2a on #182027) in '
        "the dark palette; AA needs 4.5:1\n"
        "1 error, 0 warnings\n"))


def test_contrast_comes_from_the_styles_elements_get(
        checked: Callable[..., tuple[int, str]]) -> None:
    # The same #a23b2a on #182027, in a dark rule for a class no element has.
    assert "#a23b2a !important; background-color: #182027" in (
        CASES / "unused-class" / "digest.html.j2").read_text(encoding="utf-8")
    assert checked("articles", templates="unused-class") == (
        0, "No problems found in 1 variant.\n")


def test_an_html_part_over_gmails_clipping_point_is_an_error(
        checked: Callable[..., tuple[int, str]]) -> None:
    advice = ("Gmail clips a message over 102 KB and hides its unsubscribe link: select fewer "
              "stories (--limit) or shorten the summaries (--summary-words)")
    assert checked("articles", templates="oversized") == (1, (
        f"error: issue: the HTML part is 190.7 KB; {advice}\n1 error, 0 warnings\n"))
    assert checked("articles", "--limit", "1", templates="oversized") == (0, (
        "warning: issue: the HTML part is 95.0 KB, near the 102 KB at which Gmail clips it "
        "and hides the unsubscribe link\n0 errors, 1 warning\n"))


def test_every_variant_a_list_selects_is_checked(
        checked: Callable[..., tuple[int, str]]) -> None:
    # readers.csv: one reader gets everything, two get only Transport, one unsubscribed.
    code, out = checked("articles", "--list", str(CASES / "readers.csv"), "--postal-address",
                        "1 Quay Street", "--format", "json", templates="oversized")
    assert code == 1
    report = json.loads(out)
    assert report["variants"] == 2
    assert [(f["level"], f["check"], f["where"], f["message"].split(";")[0])
            for f in report["findings"]] == [
        ("error", "size", "issue", "the HTML part is 190.7 KB"),
        ("warning", "size", "issue for tags transport",
         "the HTML part is 96.1 KB, near the 102 KB at which Gmail clips it and hides the "
         "unsubscribe link"),
    ]


def test_a_bulk_send_needs_a_postal_address_and_a_link_key(
        checked: Callable[..., tuple[int, str]]) -> None:
    readers = str(CASES / "readers.csv")
    assert checked("articles", "--list", readers, env=NO_SECRET) == (1, (
        "error: --postal-address: a bulk send needs the sender's postal address in every "
        "footer (CAN-SPAM); set --postal-address, or postal-address in digest.toml\n"
        "error: DIGEST_SECRET: a bulk send needs a key to sign its unsubscribe links; make one "
        "with 'digest secret new' and set DIGEST_SECRET or secret-file\n"
        "2 errors, 0 warnings\n"))
    assert checked("articles", "--list", readers, "--postal-address", "1 Quay Street") == (
        0, "No problems found in 2 variants.\n")
    # Without a list there is no bulk send to prepare for.
    assert checked("articles", env=NO_SECRET) == (0, "No problems found in 1 variant.\n")


def test_json_output(checked: Callable[..., tuple[int, str]]) -> None:
    code, out = checked("typo", "--strict", "--format", "json")
    assert code == 1
    assert json.loads(out) == {"ok": False, "variants": 1, "findings": [{
        "level": "error", "check": "front-matter", "where": "articles/library-late-fees.md:6",
        "message": "unknown front-matter key 'sumary'; did you mean 'summary'?"}]}
    code, out = checked("articles", "--format", "json")
    assert (code, json.loads(out)) == (0, {"ok": True, "variants": 1, "findings": []})


def test_warnings_leave_the_exit_code_at_zero(checked: Callable[..., tuple[int, str]]) -> None:
    assert checked("warnings") == (0, (
        "warning: articles/ferry-timetable-again.md: same title as articles/ferry-timetable.md: "
        "'Ferry timetable changes'; retitle one of them, or leave one out\n"
        "warning: articles/harbour-wall-vote.md: link 'http://news.example.org/local/harbour-wa…'"
        " is not https; use an https link\n"
        "warning: issue: the subject is 95 characters; inboxes cut it after about 78: shorten "
        "it (--subject or subject.txt.j2)\n"
        "0 errors, 3 warnings\n"))


def test_a_preheader_that_repeats_the_subject_and_a_big_style_warn(
        checked: Callable[..., tuple[int, str]]) -> None:
    # The preheader is the stories after the lead: here the one other story.
    assert checked("articles", "--subject", "Ferry Timetable Changes") == (0, (
        "warning: issue: the preheader 'Ferry Timetable Changes' repeats the subject; let it "
        "add to it, such as with the other stories' titles\n0 errors, 1 warning\n"))
    assert checked("articles", templates="big-style") == (0, (
        "warning: templates/digest.html.j2: the <style> that stays after inlining is 18.5 KB; "
        "keep it under 8 KB: some clients drop a big one whole, and the mobile and dark rules "
        "with it\n0 errors, 1 warning\n"))


def test_the_sample_issue_passes(monkeypatch: pytest.MonkeyPatch) -> None:
    """The repository's own articles, templates and example config, from its root, for
    the full issue and for every variant of the sample list."""
    monkeypatch.chdir(REPO)
    for key in [k for k in os.environ if k.startswith("DIGEST_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("DIGEST_SECRET", TEST_SECRET)
    for extra in ([], ["--list", "subscribers.example.csv"]):
        code, out, err = run("--config", "digest.example.toml", "check", "--as-of", AS_OF,
                             *extra)
        assert err == ""
        assert [line for line in out.splitlines() if line.startswith("error:")] == []
        assert code == 0


# --- the contrast module, over small pages --------------------------------------------


def _low(html: str) -> list[str]:
    return [item.describe() for item in low_contrast(lxml.html.document_fromstring(html))]


def test_light_grey_text_on_white_fails() -> None:
    assert _low('<p style="color:#aaa">Grey words</p><p style="color:#595959">Dark</p>') == [
        'contrast 2.3:1 for "Grey words" (#aaaaaa on #ffffff) in the light palette; '
        "AA needs 4.5:1"]


def test_colours_come_from_ancestors_bgcolor_and_named_colours() -> None:
    page = ('<table bgcolor="#182027"><tr><td style="color: rgb(162, 59, 42)">'
            "<p>Inherited <b>label</b></p></td></tr></table>"
            '<div style="background: black url(x.png) no-repeat"><p style="color: navy">Navy</p>'
            "</div>")
    assert _low(page) == [
        'contrast 1.3:1 for "Navy" (#000080 on #000000) in the light palette; AA needs 4.5:1',
        'contrast 2.5:1 for "Inherited" (#a23b2a on #182027) in the light palette; '
        "AA needs 4.5:1"]


def test_the_dark_palette_follows_the_cascade_and_hidden_text_is_skipped() -> None:
    page = ("<html><head><style>@media (prefers-color-scheme: dark) {"
            " body { background-color: #111111 !important; }"
            " .soft { color: #222222; } .loud { color: #333333 !important; } }</style></head>"
            '<body style="background-color:#ffffff"><p class="soft" style="color:#eeeeee">'
            'Inline wins</p><p class="loud" style="color:#000000">Important wins</p>'
            '<div style="display:none;color:#ffffff">Hidden preheader</div></body></html>')
    # Light: #eeeeee on white fails; dark: the inline colour beats a normal rule, and an
    # !important rule beats the inline colour.
    assert _low(page) == [
        'contrast 1.1:1 for "Inline wins" (#eeeeee on #ffffff) in the light palette; '
        "AA needs 4.5:1",
        'contrast 1.4:1 for "Important wins" (#333333 on #111111) in the dark palette; '
        "AA needs 4.5:1"]
