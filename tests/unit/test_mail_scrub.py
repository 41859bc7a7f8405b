"""Mail scrubbed as mail: headers by their semantics, bodies decoded and re-encoded, the
header names denied in the bodies, structure kept, malformed messages reported.

Runs the real spaCy-backed Scrubber (one per module). Every message is hand-written: the
people are invented, the domains reserved (RFC 2606), the IP addresses documentation ranges.
"""

from __future__ import annotations

import base64
import email
import json
import re
from email import policy
from email.message import Message
from pathlib import Path

import pytest
from privsynth.client.mailfiles import decode_header_text, decode_text_part, split_mbox
from privsynth.server.scrubbing.deny_list import MAX_DENIED, DenyList
from privsynth.server.scrubbing.file_sources import ScrubFileReport, scrub_file
from privsynth.server.scrubbing.mail import MailScrubber, mail_record
from privsynth.server.scrubbing.scrubber import Scrubber, ScrubResult
from privsynth.server.scrubbing.strategies import Replacer, ScrubPolicy

KEY = b"k" * 32

QUOTED = b"""From: =?iso-8859-1?Q?Ren=E9e_Zylberstein?= <renee.zylberstein@example.org>
To: "Quimby, Horatio" <hq@mail.example.net>
Cc: =?utf-8?B?Wm/DqyBGYXJxdWhhcnNvbg==?= <zf@example.com>
Subject: Re: =?iso-8859-1?Q?Ren=E9e's?= Postfix question
Date: Thu, 22 Aug 2002 12:36:23 +0100
Message-ID: <20020822123623.GA1234@mail.example.org>
In-Reply-To: <3D64B8C1.5060405@example.net>
X-Mailer: Mutt 1.4i
MIME-Version: 1.0
Content-Type: text/plain; charset=iso-8859-1
Content-Transfer-Encoding: quoted-printable

On Wed, 21 Aug 2002, Horatio wrote:
> Does Postfix speak SMTP to the relay?

Ren=E9e> yes it does; ask Zylberstein, or Zo=EB.
Quimby> thanks

--=20
Ren=E9e Zylberstein
"""

PDF = base64.encodebytes(b"%PDF-1.4 Horatio Quimby private minutes " * 20)
MULTIPART = (
    b"""From: Horatio Quimby <hq@mail.example.net>
To: =?iso-8859-1?Q?Ren=E9e_Zylberstein?= <renee.zylberstein@example.org>
Subject: Minutes
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="==outer=="

This is a multi-part message in MIME format.

--==outer==
Content-Type: multipart/alternative; boundary="==inner=="

--==inner==
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: base64

"""
    + base64.encodebytes(
        "Hi Renée,\n\nthe minutes are attached. Call me on 212-555-0143.\nHoratio\n".encode()
    )
    + b"""--==inner==
Content-Type: text/html; charset=us-ascii
Content-Transfer-Encoding: quoted-printable

<html><body><p style=3D"color:#ff0000">Hi <b>Ren&eacute;e</b>,</p><p>Mail <a =
href=3D"mailto:hq@mail.example.net">Horatio Quimby</a> about the relay.</p><img=
 src=3D"cid:logo" alt=3D"Quimby family"></body></html>
--==inner==--

--==outer==
Content-Type: application/pdf; name="Quimby_minutes.pdf"
Content-Transfer-Encoding: base64
Content-Disposition: attachment; filename="Quimby_minutes.pdf"

"""
    + PDF
    + b"""--==outer==--
"""
)

RECEIVED = b"""Return-Path: <hq@mail.example.net>
Received: from quimby-pc.home.example.net (dsl-7.example.net [198.51.100.23])
\tby relay.example.org (Postfix) with ESMTP id D03E543C36
\tfor <renee.zylberstein@example.org>; Thu, 22 Aug 2002 07:36:16 -0400 (EDT)
Received: from [IPv6:2001:db8::17] (helo=horatio)
\tby mx.example.org with SMTP id g7MBYrZ04811; Thu, 22 Aug 2002 12:34:53 +0100
From: Horatio Quimby <hq@mail.example.net>
Subject: relay test
References: <3D64B8C1.5060405@example.net> <20020822123623.GA1234@mail.example.org>
X-Spam-Note: reported by Horatio Quimby from 203.0.113.9

ping
"""

NAMES = ["Renée", "Zylberstein", "Horatio", "Quimby", "Zoë", "Farquharson"]
ADDRESSES = ["renee.zylberstein@example.org", "hq@mail.example.net", "zf@example.com"]


@pytest.fixture(scope="module")
def scrubber() -> Scrubber:
    s = Scrubber(residual_check=True)
    s.load()
    return s


def _mbox(*messages: bytes) -> bytes:
    out = b""
    for i, msg in enumerate(messages):
        out += f"From sender{i}@example.org Thu Aug 22 12:00:0{i} 2002\n".encode() + msg + b"\n"
    return out


def _scrub(
    scrubber: Scrubber, tmp_path: Path, *messages: bytes
) -> tuple[list[Message], ScrubFileReport]:
    src = tmp_path / "in.mbox"
    src.write_bytes(_mbox(*messages))
    out = tmp_path / "out.mbox"
    report = scrub_file(src, out, scrubber=scrubber)
    with out.open("rb") as f:
        msgs = [
            email.message_from_bytes(m.data or b"", policy=policy.compat32) for m in split_mbox(f)
        ]
    return msgs, report


def _everything(msg: Message) -> str:
    """Every header value and text part, decoded: where PII could survive."""
    texts = []
    for part in msg.walk():
        texts.extend(f"{k}: {decode_header_text(str(v))}" for k, v in part.raw_items())
        if part.get_content_maintype() == "text":
            decoded = decode_text_part(part)
            texts.append(decoded[0] if decoded else "")
    return "\n".join(texts)


def _assert_gone(text: str, *values: str) -> None:
    left = [v for v in values if v.lower() in text.lower()]
    assert not left, f"survived: {left}"


def test_encoded_names_quote_prefixes_and_attribution_are_replaced(
    scrubber: Scrubber, tmp_path: Path
) -> None:
    (msg,), report = _scrub(scrubber, tmp_path, QUOTED)
    everything = _everything(msg)
    _assert_gone(everything, *NAMES, *ADDRESSES, "mail.example.org", "GA1234", "3D64B8C1")
    # Header names kept, in order; Postfix and SMTP are not personal data.
    assert [k for k, _ in msg.raw_items()] == [
        k for k, _ in email.message_from_bytes(QUOTED, policy=policy.compat32).raw_items()
    ]
    assert "Postfix" in everything and "SMTP" in everything and "Mutt 1.4i" in everything
    # The body is still quoted-printable Latin-1, and the quote structure is kept.
    assert msg["Content-Transfer-Encoding"] == "quoted-printable"
    assert msg.get_content_charset() == "iso-8859-1"
    body = decode_text_part(msg)
    assert body is not None
    assert re.search(r"^<PERSON>> yes it does", body[0], re.M)
    assert re.search(r"^On .*<PERSON> wrote:$", body[0], re.M)
    assert msg["From"] == '"<PERSON>" <EMAIL_ADDRESS@redacted.invalid>'
    assert re.fullmatch(r"<[0-9a-f]{20}@[0-9a-f]{8}\.invalid>", msg["Message-ID"])
    assert report.records_out == 1 and report.entity_counts["PERSON"] >= 8


def test_multipart_html_and_attachment_keep_their_structure(
    scrubber: Scrubber, tmp_path: Path
) -> None:
    (msg,), _ = _scrub(scrubber, tmp_path, MULTIPART)
    original = email.message_from_bytes(MULTIPART, policy=policy.compat32)
    kinds = [p.get_content_type() for p in msg.walk()]
    assert kinds == [
        "multipart/mixed",
        "multipart/alternative",
        "text/plain",
        "text/html",
        "text/plain",  # the PDF's placeholder
    ]
    assert [p.get_boundary() for p in msg.walk()] == [p.get_boundary() for p in original.walk()]
    everything = _everything(msg)
    _assert_gone(everything, *NAMES, *ADDRESSES, "212-555-0143")
    plain, html_part, placeholder = (p for p in msg.walk() if not p.is_multipart())
    assert plain["Content-Transfer-Encoding"] == "base64"
    assert html_part["Content-Transfer-Encoding"] == "quoted-printable"
    html_text = html_part.get_payload(decode=True).decode("ascii")
    assert '<p style="color:#ff0000">' in html_text and "<b>" in html_text
    assert "</a> about the relay." in html_text and 'src="cid:logo"' in html_text
    # The attachment's bytes are gone, its file name too; a short note stands in its place.
    raw_out = msg.as_bytes()
    assert PDF.splitlines()[0] not in raw_out and b"%PDF" not in raw_out
    assert "application/pdf part" in placeholder.get_payload()
    assert placeholder.get_filename() is None


def test_received_chain_hosts_ips_and_addresses(scrubber: Scrubber, tmp_path: Path) -> None:
    (msg,), _ = _scrub(scrubber, tmp_path, RECEIVED)
    received = "\n".join(decode_header_text(v) for v in msg.get_all("Received"))
    _assert_gone(
        _everything(msg),
        "quimby-pc",
        "dsl-7",
        "relay.example.org",
        "mx.example.org",
        "198.51.100.23",
        "2001:db8::17",
        "203.0.113.9",
        "helo=horatio",
        *ADDRESSES,
        "Horatio",
    )
    for kept in ("from", "by", "(Postfix) with ESMTP id D03E543C36", "with SMTP id g7MBYrZ04811"):
        assert kept in received
    assert "<IP_ADDRESS>" in received and "<URL>" in received
    assert msg["References"].count(".invalid>") == 2


def test_threads_still_link_after_ids_are_hashed(scrubber: Scrubber, tmp_path: Path) -> None:
    msgs, _ = _scrub(scrubber, tmp_path, QUOTED, RECEIVED)
    own_id = msgs[0]["Message-ID"]
    assert own_id in msgs[1]["References"]
    assert msgs[0]["In-Reply-To"] in msgs[1]["References"]


def test_malformed_messages_are_counted_by_number_never_quoted(
    scrubber: Scrubber, tmp_path: Path
) -> None:
    no_headers = b"Horatio Quimby's secret diary\nline two\n"
    no_boundary = (
        b"From: Horatio Quimby <hq@mail.example.net>\n"
        b'Content-Type: multipart/mixed; boundary="zz"\n\n'
        b"Content-Type: text/plain\n\nsecret text\n"
    )
    msgs, report = _scrub(scrubber, tmp_path, QUOTED, no_headers, no_boundary, RECEIVED)
    assert len(msgs) == 2
    listed = [(i.line, i.reason) for i in report.malformed]
    lines = _mbox(QUOTED, no_headers, no_boundary, RECEIVED).split(b"\n")
    starts = [n + 1 for n, line in enumerate(lines) if line.startswith(b"From sender")]
    assert listed == [
        (starts[1], "message 2: no header fields"),
        (starts[2], "message 3: multipart body without its boundary"),
    ]
    assert "secret" not in repr(report) and "Quimby" not in repr(report)


def test_pseudonyms_in_headers_match_the_body(scrubber: Scrubber, tmp_path: Path) -> None:
    keyed = Scrubber(
        analyzer=scrubber._analyzer,
        policy=ScrubPolicy.from_mapping({"default": "pseudonym"}),
        key=KEY,
    )
    msg = (
        b"From: John Smith <john.smith@example.org>\nSubject: hello\n\n"
        b"I met John Smith yesterday; write to john.smith@example.org.\n"
    )
    src = tmp_path / "one.eml"
    src.write_bytes(msg)
    out = tmp_path / "one.scrubbed.eml"
    scrub_file(src, out, scrubber=keyed, key=KEY)
    result = email.message_from_bytes(out.read_bytes(), policy=policy.compat32)
    name, addr = email.utils.parseaddr(result["From"])
    body = result.get_payload()
    assert name and name != "John Smith" and f"I met {name} yesterday" in body
    assert addr.endswith(("example.com", "example.net", "example.org")) and addr in body
    assert "John" not in out.read_text() and "john.smith" not in out.read_text()


def test_crlf_eml_round_trips_unchanged_where_nothing_is_personal(
    scrubber: Scrubber, tmp_path: Path
) -> None:
    msg = (
        b"Subject: build status\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: text/plain; charset=us-ascii\r\n\r\nAll tests passed.\r\n"
    )
    src = tmp_path / "s.eml"
    src.write_bytes(msg)
    scrub_file(src, tmp_path / "s.out.eml", scrubber=scrubber)
    assert (tmp_path / "s.out.eml").read_bytes() == msg


# -- the deny list alone (no analyzer) ----------------------------------------------------------


def _deny(*names: str, addresses: tuple[str, ...] = ()) -> DenyList:
    deny = DenyList()
    for n in names:
        deny.add_name(n)
    for a in addresses:
        deny.add_address(a)
    return deny


def _apply(deny: DenyList, text: str, spans: tuple[tuple[int, int], ...] = ()) -> ScrubResult:
    return deny.apply(ScrubResult(text=text, surrogate_spans=spans), Replacer(ScrubPolicy()))


def test_deny_list_words_orders_and_obfuscated_addresses() -> None:
    deny = _deny("Quimby, Horatio", "Renée Zylberstein", addresses=("hq@mail.example.net",))
    out = _apply(
        deny,
        "Horatio Quimby wrote:\nHoratio> ok\nZYLBERSTEIN said; mail hq at mail dot example dot "
        "net or hq [at] mail.example.net; will horatio come?",
    )
    assert out.text == (
        "<PERSON> wrote:\n<PERSON>> ok\n<PERSON> said; mail <EMAIL_ADDRESS> or "
        "<EMAIL_ADDRESS>; will horatio come?"
    )
    assert out.entity_counts == {"PERSON": 3, "EMAIL_ADDRESS": 2}


def test_deny_list_skips_surrogates_and_organisation_words() -> None:
    deny = _deny("Red Hat Network", "Mail Delivery System")
    out = _apply(deny, "Red Hat Network alert: the Network is down, Red Hat says.")
    assert out.text == "<PERSON> alert: the Network is down, Red Hat says."
    deny = _deny("Ann Bee")
    spans = ((0, 8),)  # a surrogate the analyzer wrote, which happens to contain "Ann"
    out = _apply(deny, "Ann Beck and Ann", spans)
    assert out.text == "Ann Beck and <PERSON>"
    assert out.surrogate_spans == ((0, 8), (13, 21))


def test_deny_list_spans_shift_past_each_replacement_and_odd_addresses_match() -> None:
    # Surrogates before, between and after replacements keep pointing at themselves.
    deny = _deny("Ann Bee", addresses=("+tag@x.org", "o'neil@x.org"))
    text = "<P> Ann Bee <Q> mail +tag@x.org or O'Neil@X.org <R>"
    spans = ((0, 3), (12, 15), (48, 51))
    out = _apply(deny, text, spans)
    assert out.text == ("<P> <PERSON> <Q> mail <EMAIL_ADDRESS> or <EMAIL_ADDRESS> <R>")
    assert [out.text[s:e] for s, e in out.surrogate_spans] == [
        "<P>",
        "<PERSON>",
        "<Q>",
        "<EMAIL_ADDRESS>",
        "<EMAIL_ADDRESS>",
        "<R>",
    ]


def test_a_header_of_a_thousand_mailboxes_denies_only_the_first_hundred() -> None:
    # One 64 KB message of 1,000 recipients made a deny list of 3,000 values, tried at every
    # place of the text: 8 s of the server's GIL per record. The first MAX_DENIED are kept.
    to = ", ".join(f"Ab{i} Cd{i} <u{i}@h{i}.io>" for i in range(1000))
    text, deny = mail_record(f"To: {to}\nSubject: hi\n\nAb1 Cd1, Ab999 Cd999 and u5@h5.io\n")
    assert len(deny._names) <= MAX_DENIED and len(deny._addresses) <= MAX_DENIED
    assert _apply(deny, text).text == "hi\n\n<PERSON>, Ab999 Cd999 and <EMAIL_ADDRESS>\n"


def test_deny_list_matches_as_one_left_to_right_scan_would() -> None:
    # re.IGNORECASE takes "ı" for "I" and "i" (casefold does not): an indexed lookup by
    # casefold alone let "yildiz kaya" through.
    deny = _deny("Yıldız Kaya Holding Support")
    assert _apply(deny, "yildiz kaya holding support wrote").text == "<PERSON> wrote"
    # A match that starts inside an earlier one is not taken, even when the earlier one is
    # then dropped for a protected span (as a single finditer never saw the inner one).
    deny = _deny("Acme Support Team", "Support Team Alpha")
    assert deny.find("Acme Support Team Alpha", ((0, 4),)) == []


def test_the_cap_holds_each_entry_and_the_sender_is_denied_first() -> None:
    to = ", ".join(f"Ab{i} Cd{i}, Ef{i} <u{i}@h{i}.io>" for i in range(150))  # 3 forms each
    text, deny = mail_record(f"To: {to}\nFrom: Zed Quux <zq@x.org>\nSubject: hi\n\nZed\n")
    assert len(deny._names) <= MAX_DENIED and len(deny._addresses) <= MAX_DENIED
    assert _apply(deny, text).text == "hi\n\n<PERSON>\n"


def test_upload_record_is_subject_and_body_with_the_header_names_denied() -> None:
    text, deny = mail_record(
        'From: "Quimby, Horatio" <hq@example.org>\nSubject: Horatio\'s notes\n\n'
        "Quimby> see attached\n"
    )
    assert text == "Horatio's notes\n\nQuimby> see attached\n"
    assert _apply(deny, text).text == "<PERSON>'s notes\n\n<PERSON>> see attached\n"
    plain, empty = mail_record("no headers at all, just text")
    assert plain == "no headers at all, just text" and not empty


def test_mail_scrubber_reports_malformed_without_raising() -> None:
    from privsynth.client.mailfiles import RawMessage
    from privsynth.server.scrubbing.mail import MalformedMessage

    engine = MailScrubber(ScrubPolicy())
    with pytest.raises(MalformedMessage, match="no header fields"):
        engine.plan(RawMessage(1, 1, b"\x00\xff garbage"))


# -- uploads: a record is one message, stored as its scrubbed Subject and body -----------------


def test_upload_of_mail_records_stores_scrubbed_subject_and_body(
    scrubber: Scrubber, tmp_path: Path
) -> None:
    from privsynth.client.mailfiles import compact_record, parse_message
    from privsynth.server.config import Settings
    from privsynth.server.db import Database
    from privsynth.server.errors import InvalidArgument
    from privsynth.server.metrics import Metrics
    from privsynth.server.runtime import Runtime
    from privsynth.server.scrubbing.ingest import DatasetSpec, IncomingRecord, ingest
    from privsynth.server.storage import ArtifactStore

    settings = Settings(data_dir=tmp_path, grpc_port=0, metrics_port=-1)
    db = Database(settings.database_url)
    db.migrate()
    rt = Runtime(settings, db, ArtifactStore(tmp_path / "artifacts"), scrubber, Metrics(), KEY)
    rt.ready.set()
    try:
        records = [
            IncomingRecord(text=compact_record(parse_message(m)).encode())
            for m in (QUOTED, MULTIPART)
        ]
        spec = DatasetSpec("mail", record_format="message/rfc822")
        row = ingest(rt, spec, records)
        shard = rt.store.get(row.shard_path, sha256=row.content_sha256).decode()
        texts = [json.loads(line)["text"] for line in shard.splitlines()]
        assert texts[0].startswith("Re: <PERSON>'s Postfix question\n\nOn ")
        assert "<PERSON>> yes it does" in texts[0]
        assert texts[1].startswith("Minutes\n\nHi <PERSON>,")
        _assert_gone("\n".join(texts), *NAMES, *ADDRESSES, "From:", "Received", "%PDF")
        with pytest.raises(InvalidArgument, match="record_format"):
            ingest(rt, DatasetSpec("x", record_format="mbox"), records)
    finally:
        db.close()


def test_raw_8bit_headers_are_written_back(scrubber: Scrubber, tmp_path: Path) -> None:
    """Raw Latin-1 bytes in header fields (no encoded words) must not stop a message."""
    msg = (
        b"Received: from h\xf6st.example.net ([192.0.2.9]) by mx.example.org; "
        b"Thu, 22 Aug 2002 07:36:16 -0400\n"
        b"Message-ID: <ren\xe9e.1@example.org>\n"
        b"From: Ren\xe9e Zylberstein <rz@example.org>\n"
        b"Subject: Caf\xe9 with Horatio Quimby\n"
        b'Content-Type: text/plain; charset=iso-8859-1; name="Quimby caf\xe9.txt"\n\n'
        b"Ren\xe9e> ok\n"
    )
    (out,), report = _scrub(scrubber, tmp_path, msg)
    assert report.records_out == 1 and report.malformed_count == 0
    _assert_gone(_everything(out), "Renée", "Zylberstein", "Quimby", "hö", "192.0.2.9")
    assert " with " in decode_header_text(out["Subject"])
