"""Reading e-mail files: mbox splitting, size limits, malformed messages, the upload record.

Pure standard library (no spaCy). Every message here is hand-written; names and addresses are
invented and the domains are reserved (RFC 2606).
"""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import pytest
from privsynth.client.mailfiles import (
    addresses,
    compact_record,
    decode_header_text,
    html_pieces,
    html_text,
    malformed_reason,
    parse_message,
    split_mbox,
)
from privsynth.client.sources import (
    FORMATS,
    FileSourceError,
    SourceStats,
    detect_format,
    read_records,
)

MBOX = (
    b"From a@example.org Thu Aug 22 12:00:00 2002\n"
    b"From: Horatio Quimby <hq@example.org>\n"
    b"Subject: one\n"
    b"\n"
    b"first body\n"
    b">From the start\n"
    b"\n"
    b"From b@example.org Thu Aug 22 12:00:01 2002\n"
    b"Subject: two\n"
    b"\n"
    b"second body\n"
    b"From here on, a body line that is not a separator\n"
    b"\n"
    b"From c@example.org Thu Aug 22 12:00:02 2002\n"
    b"Subject: three\n"
    b"\n" + b"x" * 300 + b"\n"
)


def test_split_mbox_by_separator_lines_with_line_numbers() -> None:
    msgs = list(split_mbox(io.BytesIO(MBOX)))
    assert [(m.number, m.line) for m in msgs] == [(1, 1), (2, 8), (3, 14)]
    assert msgs[0].envelope == b"From a@example.org Thu Aug 22 12:00:00 2002"
    assert msgs[0].data is not None and msgs[0].data.endswith(b">From the start\n")
    assert msgs[1].data is not None and b"From here on" in msgs[1].data  # no blank line before


def test_oversized_message_is_not_held_and_keeps_its_line() -> None:
    msgs = list(split_mbox(io.BytesIO(MBOX), max_bytes=200))
    assert [m.data is None for m in msgs] == [False, False, True]
    assert msgs[2].line == 14 and msgs[2].size > 300


def test_malformed_reasons_name_no_content() -> None:
    assert malformed_reason(parse_message(b"Just a secret line\nand another\n")) == (
        "no header fields"
    )
    no_boundary = (
        b'Content-Type: multipart/mixed; boundary="zz"\n\nContent-Type: text/plain\n\nsecret text\n'
    )
    assert malformed_reason(parse_message(no_boundary)) == "multipart body without its boundary"
    assert malformed_reason(parse_message(b"Subject: fine\n\nbody\n")) is None


def test_encoded_words_and_addresses() -> None:
    assert decode_header_text("=?iso-8859-1?Q?Ren=E9e_Zylberstein?=") == "Renée Zylberstein"
    assert decode_header_text("Re: =?utf-8?q?unknown?= =?x-nope?q?ab?=").startswith("Re: ")
    pairs = addresses('=?utf-8?q?Quimby=2C_Horatio?= <hq@example.org>, "A, B" <ab@example.net>')
    assert pairs == [("Quimby, Horatio", "hq@example.org"), ("A, B", "ab@example.net")]
    assert addresses("undisclosed-recipients:;") == []


def test_html_pieces_round_trip_and_keep_markup() -> None:
    doc = (
        '<p style="color:#ff0000">Hi <b>Ren&eacute;e</b></p><a href="mailto:r@example.org" '
        "class=x>mail</a><script>var who = 'Quimby';</script><img alt='Quimby family'>"
    )
    pieces = html_pieces(doc)
    assert "".join(p.raw for p in pieces) == doc
    scrubbed = {p.raw for p in pieces if p.kind != "markup"}
    assert scrubbed == {"Hi ", "Ren&eacute;e", "mailto:r@example.org", "mail", "Quimby family"}
    assert html_text(doc) == "Hi Renée\nmail"


def test_compact_record_is_what_an_upload_sends() -> None:
    raw = (
        b"From: =?iso-8859-1?Q?Quimby=2C_Horatio?= <hq@example.org>\n"
        b"To: Renee <r@example.net>\n"
        b"Received: from host.example.org ([192.0.2.7])\n"
        b"Subject: =?utf-8?q?Minutes_for_Ren=C3=A9e?=\n"
        b"MIME-Version: 1.0\n"
        b'Content-Type: multipart/mixed; boundary="b"\n\n'
        b"--b\n"
        b'Content-Type: multipart/alternative; boundary="c"\n\n'
        b"--c\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: base64\n\n"
        b"SGkgUmVuw6llLA==\n"
        b"--c\nContent-Type: text/html\n\n<p>Hi <b>Renee</b>,</p>\n"
        b"--c--\n"
        b"--b\nContent-Type: image/png\nContent-Transfer-Encoding: base64\n\niVBORw0KGgo=\n"
        b"--b--\n"
    )
    text = compact_record(parse_message(raw))
    assert text == (
        'From: "Quimby, Horatio" <hq@example.org>\n'
        'To: "Renee" <r@example.net>\n'
        "Subject: Minutes for Renée\n\n"
        "Hi Renée,"
    )


def test_detect_format_and_a_message_naming_only_real_options(tmp_path: Path) -> None:
    for name, fmt in (("a.eml", "eml"), ("a.mbox", "mbox"), ("a.mbox.gz", "mbox")):
        (tmp_path / name).write_bytes(b"")
        assert detect_format(tmp_path / name)[0] == fmt
    odd = tmp_path / "mail.xlsx"
    odd.write_bytes(b"x")
    with pytest.raises(FileSourceError) as exc:
        detect_format(odd)
    message = str(exc.value)
    assert "--format" in message and ".eml" in message and ".mbox" in message
    assert all(f in message for f in FORMATS)


def test_mbox_records_for_upload_gzip_malformed_and_oversized(tmp_path: Path) -> None:
    bad = b"From x@example.org Thu Aug 22 12:00:03 2002\nno header secret\n\n"
    src = tmp_path / "box.mbox.gz"
    src.write_bytes(gzip.compress(MBOX.replace(b"Subject: three", b"Subject: 3") + b"\n" + bad))
    stats = SourceStats()
    recs = list(read_records(src, stats))
    assert [r.line for r in recs] == [1, 8, 14]
    assert recs[0].text.startswith('From: "Horatio Quimby" <hq@example.org>\nSubject: one\n\n')
    assert [(i.line, i.reason) for i in stats.malformed] == [(19, "message 4: no header fields")]
    assert "secret" not in repr(stats)


@pytest.mark.parametrize("command", ["upload", "scrub"])
def test_unknown_format_message_names_only_options_the_command_has(
    tmp_path: Path, command: str
) -> None:
    import re

    from privsynth.client.cli import build_parser

    odd = tmp_path / "corpus.xlsx"
    odd.write_bytes(b"x")
    with pytest.raises(FileSourceError) as exc:
        detect_format(odd)
    named = re.findall(r"--[a-z][a-z-]*", str(exc.value))
    assert named == ["--format"]
    parser = build_parser()
    args = parser.parse_args([command, str(odd), *[a for n in named for a in (n, "eml")]])
    assert args.format == "eml"
