"""Subscriber lists: formats, encodings, delimiters, line numbers, validation,
duplicates and suppressions, with exact messages. Fixtures are written byte
for byte by tests/fixtures/lists/_generate.py."""

from __future__ import annotations

import itertools
import os
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

from digest.audience.csvfile import sniff_delimiter
from digest.audience.subscribers import (
    FORMATS,
    ListRow,
    detect_format,
    iter_subscribers,
    read_rows,
    read_subscribers,
)
from digest.errors import SubscriberError
from digest.model import Subscriber

LISTS = Path(__file__).parent / "fixtures" / "lists"
KNOWN = frozenset({"climate", "energy", "culture", "health", "local-government"})


def rows(name: str, **kwargs: Any) -> list[ListRow]:
    return list(read_rows(LISTS / name, **kwargs))


def summary(row: ListRow) -> tuple[object, ...]:
    """What a test usually cares about, compactly: line, address, name, tags,
    suppression and problem text."""
    if row.subscriber is None:
        return (row.line, str(row.problem))
    s = row.subscriber
    return (row.line, s.email, s.name, s.tags, row.suppress)


def error_of(name: str, **kwargs: Any) -> str:
    with pytest.raises(SubscriberError) as caught:
        rows(name, **kwargs)
    return str(caught.value)


# Encodings and CSV dialects


def test_bom_is_dropped_before_the_header() -> None:
    assert [summary(r) for r in rows("bom.csv")] == [(2, "ann@example.org", "Ann Lee", (), None)]


def test_crlf_line_endings() -> None:
    assert (LISTS / "crlf.csv").read_bytes().count(b"\r\n") == 3  # .gitattributes keeps them
    assert [summary(r) for r in rows("crlf.csv")] == [
        (2, "ann@example.org", "Ann Lee", ("climate",), None),
        (3, "bob@example.org", "Bob Ray", (), None),
    ]


def test_semicolon_delimiter_with_a_quoted_semicolon_list() -> None:
    assert [summary(r) for r in rows("semicolon.csv")] == [
        (2, "ann@example.org", "Lee; Ann", ("climate", "energy"), None),
        (3, "bob@example.org", "Bob Ray", ("culture",), None),
    ]


def test_tab_delimiter() -> None:
    assert [summary(r) for r in rows("tab.csv")] == [
        (2, "ann@example.org", "Ann, Lee", ("health",), None),
    ]


@pytest.mark.parametrize(("header", "delimiter"), [
    ("email,name,tags,status\n", ","),
    ("email;name;tags\r\n", ";"),
    ("email\tname\n", "\t"),
    ('"Email Address";"First Name";"Last Name"\r\n', ";"),
    ('"Email Address","First Name","TAGS"\r\n', ","),
    ("email\n", ","),  # one column: nothing to sniff, comma it is
    ("E-Mail;Name, Vorname;Tags\n", ";"),  # csv.Sniffer alone says ","
    ('"Name, Jr, III";email\n', ";"),  # commas inside quotes do not count
    ('"a;b",c;d\n', ","),  # a tie outside quotes: csv.Sniffer decides
])
def test_sniff_delimiter(header: str, delimiter: str) -> None:
    assert sniff_delimiter(header) == delimiter


def test_quoted_newlines_keep_the_line_where_each_record_starts() -> None:
    # Lines: 1 header, 2-3 Ann, 4 Bob, 5-7 Cy (CRLF, a blank line, CRLF), 8 blank, 9 Dee.
    assert [summary(r) for r in rows("quoted-newline.csv")] == [
        (2, "ann@example.org", "Ann Lee", (), None),
        (4, "bob@example.org", "Bob", (), None),
        (5, "cy@example.org", "Cy Dee", (), None),
        (9, "dee@example.org", "Dee", (), None),
    ]


def test_blank_lines_are_skipped_but_counted() -> None:
    assert [summary(r) for r in rows("leading-blank-lines.csv")] == [
        (5, "ann@example.org", "Ann", (), None),
        (7, "bob@example.org", "Bob", (), None),
    ]


def test_cr_only_line_endings_of_old_mac_exports() -> None:
    assert [summary(r) for r in rows("cr-only.csv")] == [
        (2, "ann@example.org", "Ann Lee", (), None),
        (4, "bob@example.org", "Bob", (), None),
    ]


def test_a_header_alone_is_an_empty_list() -> None:
    assert rows("header-only.csv") == []


def test_stray_quote_skips_only_its_row() -> None:
    assert [summary(r) for r in rows("stray-quote.csv")] == [
        (2, "ann@example.org", "Ann", (), None),
        (3, f"{LISTS / 'stray-quote.csv'}:3: bad CSV: ',' expected after '\"'; a double "
            'quote inside a field must be doubled ("") and the whole field quoted'),
    ]


def test_stray_quote_mid_address_is_one_bad_row_and_the_rows_after_it_are_read() -> None:
    assert [summary(r) for r in rows("stray-quote-mid.csv")] == [
        (2, "ann@example.org", "Ann", (), None),
        (3, f"{LISTS / 'stray-quote-mid.csv'}:3: bad CSV: ',' expected after '\"'; a double "
            'quote inside a field must be doubled ("") and the whole field quoted'),
        (4, "bob@example.org", "Bob", (), None),
        (5, "cy@example.org", 'Cy "Dee"', (), None),
    ]
    # A quote that runs over lines and then breaks is another matter: the quote
    # opened on line 3 swallowed line 4, so nothing after it can be trusted.
    assert error_of("quote-runs-on.csv") == (
        f"{LISTS / 'quote-runs-on.csv'}:3: bad CSV in the record that starts here: "
        "',' expected after '\"'; look for an unclosed or stray double quote"
    )


def test_a_file_without_line_breaks_is_not_read_whole(tmp_path: Path) -> None:
    (tmp_path / "blob.csv").write_bytes(b"email," * 200_000)
    with pytest.raises(SubscriberError) as caught:
        list(read_rows(tmp_path / "blob.csv"))
    assert str(caught.value) == (
        f"{tmp_path / 'blob.csv'}:1: line longer than 1048576 characters; is this a CSV list?"
    )


def test_latin1_file_is_one_clear_error_at_the_first_bad_byte() -> None:
    assert error_of("latin1.csv") == (
        f"{LISTS / 'latin1.csv'}:4: not UTF-8 text (byte 0xe9); save the file as UTF-8 CSV"
    )


def test_bad_byte_line_counts_a_crlf_split_across_read_chunks(tmp_path: Path) -> None:
    # The CRLF after line 2 straddles the 64 KiB chunk boundary of the second pass.
    start = b"email,name\r\na@example.org,"
    data = start + b"x" * (65535 - len(start)) + b"\r\nb@example.org,Ren\xe9\r\n"
    assert data[65535:65537] == b"\r\n"
    (tmp_path / "list.csv").write_bytes(data)
    with pytest.raises(SubscriberError) as caught:
        list(read_rows(tmp_path / "list.csv"))
    assert str(caught.value).startswith(f"{tmp_path / 'list.csv'}:3: not UTF-8 text (byte 0xe9)")


def test_utf8_cut_off_at_the_end_of_the_file(tmp_path: Path) -> None:
    (tmp_path / "list.csv").write_bytes(b"email,name\nann@example.org,Zo\xc3")
    with pytest.raises(SubscriberError) as caught:
        list(read_rows(tmp_path / "list.csv"))
    assert str(caught.value) == (
        f"{tmp_path / 'list.csv'}:2: not UTF-8 text (byte 0xc3); save the file as UTF-8 CSV"
    )


def test_utf16_file_says_utf16() -> None:
    assert error_of("utf16.csv") == (
        f"{LISTS / 'utf16.csv'}: not UTF-8 text (it is UTF-16); save the file as UTF-8 CSV"
    )


def test_utf16_without_a_bom_says_utf16_too() -> None:
    assert error_of("utf16-nobom.csv") == (
        f"{LISTS / 'utf16-nobom.csv'}:1: not UTF-8 text (NUL bytes; it looks like UTF-16); "
        "save the file as UTF-8 CSV"
    )


def test_unclosed_quote_stops_the_file_instead_of_swallowing_rows() -> None:
    assert error_of("unclosed-quote.csv") == (
        f"{LISTS / 'unclosed-quote.csv'}:3: bad CSV in the record that starts here: "
        "unexpected end of data; look for an unclosed or stray double quote"
    )


# Whole-file problems


def test_unknown_header_lists_what_each_format_needs() -> None:
    assert error_of("unknown-header.csv") == (
        f"{LISTS / 'unknown-header.csv'}:1: unknown list format: no email column in "
        "'id,address,who'; expected email,name,tags,status (digest), "
        '"Email Address","First Name","Last Name",…,"TAGS" (Mailchimp export) '
        "or email,name,attributes (listmonk); --list-format forces one"
    )


@pytest.mark.parametrize("name", ["empty.csv", "blank-lines.csv"])
def test_empty_file(name: str) -> None:
    assert error_of(name) == (
        f"{LISTS / name}: is empty; the first row must name the columns, "
        "e.g. email,name,tags,status"
    )


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SubscriberError) as caught:
        list(read_rows(tmp_path / "nope.csv"))
    assert str(caught.value) == (
        f"{tmp_path / 'nope.csv'}: cannot be read: No such file or directory"
    )


def test_forced_format_needs_its_email_column() -> None:
    assert error_of("crlf.csv", list_format="mailchimp") == (
        f"{LISTS / 'crlf.csv'}:1: has no 'email address' column, which a mailchimp list "
        "needs; the header is 'email,name,tags'"
    )


def test_unknown_forced_format_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="unknown list format 'csv'; use one of digest, "):
        rows("crlf.csv", list_format="csv")


# Format detection


@pytest.mark.parametrize(("header", "expected"), [
    (["email", "name", "tags", "status"], "digest"),
    ([" EMAIL "], "digest"),
    (["Email Address", "First Name", "Last Name", "TAGS"], "mailchimp"),
    (["email", "name", "attributes"], "listmonk"),
    (["uuid", "email", "name", "attributes", "status", "created_at", "updated_at"], "listmonk"),
    (["email", "name", "blocklisted"], "listmonk"),
])
def test_detect_format(header: list[str], expected: str) -> None:
    assert detect_format(header) == expected
    assert expected in FORMATS


def test_detect_format_explains_what_it_expected() -> None:
    with pytest.raises(ValueError) as caught:
        detect_format(["id", "who"])
    assert str(caught.value) == (
        "no email column in 'id,who'; expected email,name,tags,status (digest), "
        '"Email Address","First Name","Last Name",…,"TAGS" (Mailchimp export) '
        "or email,name,attributes (listmonk)"
    )


def test_list_format_forces_a_format() -> None:
    # email,name,status: ours by its header, where "blocklisted" is no status...
    assert [summary(r) for r in rows("forced.csv")] == [
        (2, f"{LISTS / 'forced.csv'}:2: bad status 'blocklisted'; use subscribed, "
            "unsubscribed or leave it empty"),
    ]
    # ...but listmonk's, when the user says so.
    forced = rows("forced.csv", list_format="listmonk")
    assert [summary(r) for r in forced] == [(2, "ann@example.org", "Ann", (), "unsubscribed")]
    assert forced[0].format == "listmonk"


# Our format, row by row


def test_only_the_email_column_is_needed() -> None:
    assert [summary(r) for r in rows("only-email.csv")] == [(2, "ann@example.org", "", (), None)]


def test_missing_email() -> None:
    path = LISTS / "missing-email.csv"
    result = rows("missing-email.csv")
    assert [summary(r) for r in result] == [
        (2, f"{path}:2: missing email address"),
        (3, f"{path}:3: missing email address"),
        (4, "ann@example.org", "Ann", (), None),
    ]
    assert result[0].problem is not None and result[0].problem.line == 2
    assert result[0].problem.path == path


def test_bad_addresses_and_trimmed_good_one() -> None:
    path = LISTS / "bad-address.csv"
    assert [summary(r) for r in rows("bad-address.csv")] == [
        (2, f"{path}:2: bad address 'ann.example.org': An email address must have an @-sign."),
        (3, f"{path}:3: bad address 'bob@@example.org': The part after the @-sign contains "
            "invalid characters: '@'."),
        (4, f"{path}:4: bad address 'Cy Dee <cy@example.org>': A display name and angle "
            "brackets around the email address are not permitted here."),
        (5, "dee@example.org", "Dee", (), None),
    ]


def test_internationalised_addresses_are_accepted_and_domains_normalised() -> None:
    result = rows("international.csv")
    assert [summary(r) for r in result] == [
        (2, "zoë@exämple.org", "Zoë", (), None),
        (3, "Ann.Lee@example.org", "Ann", (), None),  # the local part keeps its case
        (4, "björk@éxample.is", "Björk", (), None),
    ]
    assert result[1].subscriber is not None and result[1].subscriber.key == "ann.lee@example.org"


def test_cr_lf_and_control_characters_leave_names() -> None:
    assert [summary(r) for r in rows("name-crlf.csv")] == [
        (2, "eve@example.org", "Eve Bcc: evil@example.com", (), None),
        (4, "fay@example.org", "Fay Lee", (), None),
    ]


def test_html_in_a_name_stays_text() -> None:
    assert [summary(r) for r in rows("name-html.csv")] == [
        (2, "bo@example.org", "<b>Bo</b> & co", (), None),
    ]


def test_names_are_capped_at_100_characters() -> None:
    (row,) = rows("name-long.csv")
    assert row.subscriber is not None and row.subscriber.name == "x" * 99


def test_tags_are_slugs_deduplicated_in_order() -> None:
    assert [summary(r) for r in rows("tags.csv")] == [
        (2, "ann@example.org", "", ("local-government", "climate"), None),
        (3, "bob@example.org", "", (), None),
        (4, "cy@example.org", "", ("energy", "culture"), None),
    ]


def test_status() -> None:
    path = LISTS / "status.csv"
    assert [summary(r) for r in rows("status.csv")] == [
        (2, "ann@example.org", "Ann", (), "unsubscribed"),
        (3, "bob@example.org", "Bob", (), "unsubscribed"),
        (4, "cy@example.org", "Cy", (), None),
        (5, "dee@example.org", "Dee", (), None),
        (6, f"{path}:6: bad status 'paused'; use subscribed, unsubscribed or leave it empty"),
    ]


def test_unknown_tag_preference_is_dropped_with_a_warning() -> None:
    path = LISTS / "unknown-tag.csv"
    listed = "known tags: climate, culture, energy, health, local-government"
    result = rows("unknown-tag.csv", known_tags=KNOWN)
    assert [summary(r) for r in result] == [
        (2, "ann@example.org", "Ann", ("climate",), None),
        # Every preference unknown: they stay, match nothing, and the sender says why.
        (3, "bob@example.org", "Bob", ("gardening", "knitting"), None),
        (4, "cy@example.org", "Cy", ("climate",), None),
    ]
    assert [[str(w) for w in r.warnings] for r in result] == [
        [f"{path}:2: unknown tag preference 'gardening'; {listed}"],
        [f"{path}:3: unknown tag preference 'gardening'; {listed}",
         f"{path}:3: unknown tag preference 'knitting'; {listed}"],
        [],
    ]
    assert all(r.problem is None for r in result)


def test_unknown_tag_warning_lists_at_most_ten_known_tags() -> None:
    known = frozenset(f"tag-{letter}" for letter in "abcdefghijkl")
    row = rows("unknown-tag.csv", known_tags=known)[0]
    assert str(row.warnings[0]).endswith(
        "unknown tag preference 'gardening'; known tags: tag-a, tag-b, tag-c, tag-d, tag-e, "
        "tag-f, tag-g, tag-h, tag-i, tag-j and 2 more"
    )


def test_without_known_tags_no_warnings() -> None:
    assert all(not r.warnings for r in rows("unknown-tag.csv"))
    assert rows("unknown-tag.csv")[0].subscriber == Subscriber(
        "ann@example.org", "Ann", ("gardening", "climate")
    )


# Mailchimp


def test_mailchimp_audience_export() -> None:
    result = rows("mailchimp-audience.csv", known_tags=KNOWN)
    assert [summary(r) for r in result] == [
        (2, "ann@example.org", "Ann Lee", ("climate", "local-government"), None),
        (3, "bob@example.org", "Bob", ("climate", "energy"), None),
        (4, "cy@example.org", "", (), None),
    ]
    assert {r.format for r in result} == {"mailchimp"}
    assert all(not r.warnings for r in result)


def test_mailchimp_unsubscribed_export_suppresses_everyone() -> None:
    assert [summary(r) for r in rows("mailchimp-unsubscribed.csv")] == [
        (2, "ann@example.org", "Ann Lee", (), "unsubscribed"),
    ]


def test_mailchimp_cleaned_export_suppresses_as_bounced() -> None:
    assert [summary(r) for r in rows("mailchimp-cleaned.csv")] == [
        (2, "gone@example.org", "Gone", (), "bounced"),
    ]


# listmonk


def test_listmonk_export() -> None:
    path = LISTS / "listmonk-export.csv"
    result = rows("listmonk-export.csv")
    assert [summary(r) for r in result] == [
        (2, "ann@example.org", "Ann Lee", ("climate", "energy"), None),
        (3, "bob@example.org", "Bob", (), "unsubscribed"),
        (4, f"{path}:4: bad JSON in attributes: Expecting ',' delimiter at character 20"),
        (5, "dee@example.org", "Dee", ("culture", "health"), None),  # disabled: listmonk mails them
        (6, f'{path}:6: attributes "tags" must be a list of strings, '
            'e.g. {"tags": ["climate"]}'),
        (7, f'{path}:7: attributes must be a JSON object, e.g. {{"tags": ["climate"]}}'),
        # Blocklisted with bad JSON: the suppression still counts; the JSON is a warning.
        (8, "gus@example.org", "Gus", (), "unsubscribed"),
        (9, f"{path}:9: bad status 'paused'; listmonk's are enabled, disabled and blocklisted"),
    ]
    assert [str(w) for w in result[6].warnings] == [
        f"{path}:8: bad JSON in attributes: Expecting ',' delimiter at character 20"
    ]


def test_listmonk_blocklisted_column() -> None:
    path = LISTS / "listmonk-blocklisted.csv"
    assert [summary(r) for r in rows("listmonk-blocklisted.csv")] == [
        (2, "ann@example.org", "Ann", ("health",), None),
        (3, "bob@example.org", "Bob", (), "unsubscribed"),
        (4, f"{path}:4: bad blocklisted 'maybe'; use true or false"),
    ]


# Across files


def test_duplicates_differing_in_case_within_and_across_files() -> None:
    first, second = LISTS / "duplicate-case.csv", LISTS / "duplicate-other.csv"
    assert [summary(r) for r in iter_subscribers([first, second])] == [
        (2, "ann@example.org", "Ann", (), None),
        (3, f"{first}:3: duplicate of ANN@example.org (first seen at {first}:2)"),
        (4, "bob@example.org", "Bob", (), None),
        (2, f"{second}:2: duplicate of Bob@example.org (first seen at {first}:4)"),
        (3, "cy@example.org", "Cy", (), None),
    ]


def test_a_suppression_is_never_dropped_as_a_duplicate() -> None:
    audience, unsubscribed = LISTS / "mailchimp-audience.csv", LISTS / "mailchimp-unsubscribed.csv"
    result = list(iter_subscribers([audience, unsubscribed]))
    assert summary(result[-1]) == (2, "ann@example.org", "Ann Lee", (), "unsubscribed")
    assert result[-1].path == unsubscribed
    subscribers, problems = read_subscribers([audience, unsubscribed])
    assert [s.email for s in subscribers] == ["bob@example.org", "cy@example.org"]
    assert problems == []


def test_read_subscribers_collects_problems_and_warnings() -> None:
    subscribers, problems = read_subscribers(
        [LISTS / "unknown-tag.csv", LISTS / "status.csv"], known_tags=KNOWN
    )
    assert [s.email for s in subscribers] == ["cy@example.org", "dee@example.org"]
    assert [str(p) for p in problems] == [
        f"{LISTS / 'unknown-tag.csv'}:2: unknown tag preference 'gardening'; known tags: "
        "climate, culture, energy, health, local-government",
        f"{LISTS / 'unknown-tag.csv'}:3: unknown tag preference 'gardening'; known tags: "
        "climate, culture, energy, health, local-government",
        f"{LISTS / 'unknown-tag.csv'}:3: unknown tag preference 'knitting'; known tags: "
        "climate, culture, energy, health, local-government",
        f"{LISTS / 'status.csv'}:4: duplicate of cy@example.org (first seen at "
        f"{LISTS / 'unknown-tag.csv'}:4)",
        f"{LISTS / 'status.csv'}:6: bad status 'paused'; use subscribed, unsubscribed or "
        "leave it empty",
    ]


def test_the_example_list() -> None:
    example = Path(__file__).resolve().parents[1] / "subscribers.example.csv"
    result = list(read_rows(example, known_tags=KNOWN))
    assert all(r.problem is None and not r.warnings for r in result)
    assert [(r.subscriber.email if r.subscriber else None, r.suppress) for r in result] == [
        ("amina.traore@example.org", None),
        ("ben.holloway@example.com", None),
        ("chioma@example.net", None),
        ("dmitri.k@example.org", None),
        ("elif@example.com", None),
        ("former@example.org", "unsubscribed"),
    ]
    assert result[0].subscriber == Subscriber(
        "amina.traore@example.org", "Amina Traoré", ("climate", "energy")
    )


# Streaming


def _descriptors_on(path: Path) -> list[int]:
    """This process's open file descriptors on ``path``, from /proc."""
    found = []
    for entry in Path("/proc/self/fd").iterdir():
        try:
            if entry.readlink() == path:
                found.append(int(entry.name))
        except OSError:
            pass  # the descriptor that listed the folder, closed since
    return found


def test_rows_are_read_lazily_without_holding_the_file(tmp_path: Path) -> None:
    big = tmp_path / "big.csv"
    big.write_text(
        "email,name,tags\n"
        + "".join(f"reader{i}@example.org,Reader {i},Climate\n" for i in range(200_000)),
        encoding="utf-8",
    )
    reader = read_rows(big)
    first = list(itertools.islice(reader, 3))
    assert [summary(r) for r in first] == [
        (line, f"reader{line - 2}@example.org", f"Reader {line - 2}", ("climate",), None)
        for line in (2, 3, 4)
    ]
    (fd,) = _descriptors_on(big)
    # A few read buffers in, out of several megabytes.
    assert os.lseek(fd, 0, os.SEEK_CUR) <= 256 * 1024 < big.stat().st_size // 20
    assert isinstance(reader, Generator)
    reader.close()  # releases the file
    assert _descriptors_on(big) == []
