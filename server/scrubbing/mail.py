"""E-mail scrubbed as e-mail: RFC 822 messages and mbox files, with their structure kept.

A message is not one text. Its header fields are scrubbed by what they hold:

* mailboxes (From, To, Cc, Bcc, Reply-To, Sender, Resent-*, Return-Path, ...): each display name
  (RFC 2047 encoded words decoded first) is replaced as ``PERSON`` and each address as
  ``EMAIL_ADDRESS`` through the scrubber's own strategies
  (:meth:`~privsynth.server.scrubbing.strategies.Replacer.replace`), so a keyed pseudonym in a
  header is the one the same name gets in the body;
* Received: host names, IP addresses and addresses replaced in place, the protocol words
  (``Postfix``, ``ESMTP``, ids) kept, the date after the ``;`` through the analyzer;
* Message-ID, In-Reply-To, References: each ``<local@domain>`` becomes a keyed hash
  ``<hex@hex.invalid>`` (the same id maps to the same hash within a file or dataset, so threads
  still link up; neither the local part nor the domain survives); text around ids goes through
  the analyzer;
* MIME fields (Content-Type, Content-Transfer-Encoding, ...) are kept, except ``name`` and
  ``filename`` parameters, which go through the analyzer;
* every other field (Subject, Date, X-...) is free text: decoded, through the analyzer,
  re-encoded if it changed. Field names are never touched.

Bodies: ``text/*`` parts are decoded (quoted-printable, base64, charset), scrubbed by the analyzer
(HTML: text nodes and text attributes such as ``href`` and ``alt``; tags, styles and colours are
kept) and re-encoded with the part's own charset and transfer encoding; a part that did not
change is written back byte for byte. Any other leaf (images, PDFs, ...) becomes a short
``text/plain`` placeholder: its bytes are never kept. Multipart structure and boundaries are kept.

**The deny list** (:mod:`privsynth.server.scrubbing.deny_list`). The names and addresses in a
message's own headers (and in header lines quoted in its bodies) are replaced wherever they
recur in that message's texts, even where the analyzer saw nothing: the full display name, its
first or last word alone (a quote prefix ``Guido>``, ``Guido wrote:``; single words only when
capitalised as in the header, and not for names that look like an organisation or a role), and
the address also written as ``name at host dot org``. The list is exact and message-local, so
it cannot over-reach into other messages. Matching runs on the analyzer's output and skips the
surrogates it wrote.

Malformed messages (no header fields, a multipart body without its boundary, anything the
``email`` package cannot handle) are skipped, counted and listed by line and message number
with a reason that never quotes the message; a message over the size limit is listed as
oversized. Nothing here raises on bad mail.

For uploads (``record_format = "message/rfc822"``) a record is the compact message
:func:`privsynth.client.mailfiles.compact_record` builds; :func:`mail_record` reads it into the
text that is stored, **the scrubbed Subject and body text** (an empty line between them), and the
deny list of its mailboxes.
"""

from __future__ import annotations

import base64
import hmac
import html
import io
import os
import quopri
import re
from collections import Counter, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email import message_from_string
from email import policy as email_policy
from email.generator import BytesGenerator
from email.header import Header
from email.message import Message
from email.utils import formataddr
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from privsynth.client.mailfiles import (
    ADDRESS_HEADERS,
    ID_HEADERS,
    MAIL_RECORD_FORMAT,
    TRACE_HEADERS,
    HtmlPiece,
    RawMessage,
    addresses,
    decode_header_text,
    decode_text_part,
    html_pieces,
    malformed_reason,
    parse_message,
    raw_header,
    text_of_raw,
    unfold,
)
from privsynth.client.sources import SourceStats, detect_format, read_messages
from privsynth.server.scrubbing.deny_list import EMAIL, DenyList
from privsynth.server.scrubbing.scrubber import ScrubResult
from privsynth.server.scrubbing.strategies import Replacer, ScrubPolicy

if TYPE_CHECKING:
    from privsynth.server.scrubbing.file_sources import ScrubFileReport, SupportsScrub

__all__ = [
    "RECORD_FORMAT",
    "DenyList",
    "MailScrubber",
    "MalformedMessage",
    "mail_record",
    "scrub_mail_file",
]

#: ``DatasetMetadata.record_format`` of uploads whose records are messages.
RECORD_FORMAT = MAIL_RECORD_FORMAT

#: Joins several short texts of one message into one analyzer text (a record separator between
#: blank lines: no recognizer reads across it). Split again after scrubbing; should a span
#: ever swallow one, the texts are not split back but kept together (see ``_Texts``).
_SEP = "\n\n\x1e\n\n"
_WORDY = re.compile(r"[^\W_]")

#: MIME fields kept as found (their ``name``/``filename`` parameters aside).
_MIME_HEADERS = frozenset(
    {
        "content-type",
        "content-transfer-encoding",
        "mime-version",
        "content-disposition",
        "content-language",
        "content-length",
        "lines",
        "status",
        "x-status",
        "precedence",
    }
)


class MalformedMessage(ValueError):
    """A message that cannot be scrubbed as mail; ``reason`` never quotes it."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# ----------------------------------------------------------------------------------------------
# One message: what goes to the analyzer, and how its answers are written back
# ----------------------------------------------------------------------------------------------

Sink = Callable[[str], None]


class _Texts:
    """The analyzer texts of one message and where each scrubbed text goes."""

    def __init__(self, limit: int) -> None:
        self.texts: list[str] = []
        self.sinks: list[Sink] = []
        self._limit = limit

    def add(self, text: str, sink: Sink) -> None:
        if _WORDY.search(text):
            self.texts.append(text)
            self.sinks.append(sink)

    def add_group(self, items: list[tuple[str, Sink]]) -> None:
        """Short texts joined into few analyzer texts (one spaCy document each, not dozens)."""
        items = [(t, s) for t, s in items if _WORDY.search(t)]
        batch: list[tuple[str, Sink]] = []
        size = 0
        for text, sink in items:
            if "\x1e" in text or len(text) >= self._limit:
                self.add(text, sink)
                continue
            if batch and size + len(text) + len(_SEP) > self._limit:
                self._flush(batch)
                batch, size = [], 0
            batch.append((text, sink))
            size += len(text) + len(_SEP)
        if batch:
            self._flush(batch)

    def _flush(self, batch: list[tuple[str, Sink]]) -> None:
        if len(batch) == 1:
            self.add(*batch[0])
            return
        sinks = [s for _, s in batch]

        def split(scrubbed: str) -> None:
            parts = scrubbed.split(_SEP)
            if len(parts) != len(sinks):
                # A replaced span swallowed a separator: the texts can no longer be told apart.
                # Keep everything scrubbed in the first place rather than guess.
                parts = [scrubbed.replace(_SEP, " ")] + [""] * (len(sinks) - 1)
            for sink, part in zip(sinks, parts, strict=True):
                sink(part)

        self.texts.append(_SEP.join(t for t, _ in batch))
        self.sinks.append(split)


@dataclass
class _Job:
    """One message between planning (texts out) and finishing (scrubbed texts back in)."""

    raw: RawMessage
    msg: Message
    linesep: str
    texts: _Texts
    deny: DenyList = field(default_factory=DenyList)
    finishers: list[Callable[[], None]] = field(default_factory=list)
    entity_counts: Counter[str] = field(default_factory=Counter)
    strategy_counts: Counter[str] = field(default_factory=Counter)
    envelope: bytes = b""
    removed_parts: int = 0

    @property
    def chars(self) -> int:
        return sum(len(t) for t in self.texts.texts)


_IPV4 = r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w.])"
_IPV6 = (
    r"(?:IPv6:|(?<![\w:]))(?=[0-9A-Fa-f:.]*::|(?:[0-9A-Fa-f]{1,4}:){3})[0-9A-Fa-f:.]{3,}(?![\w:])"
)
_HOST = r"(?<![\w.@-])(?:[^\W_](?:[\w-]{0,61}[^\W_])?\.)+[^\W\d_]{2,63}(?![\w-])"
_TRACE = re.compile(
    rf"(?P<email>[\w.+=-]+@[\w-]+(?:\.[\w-]+)*)|(?P<ip>{_IPV4}|{_IPV6})|(?P<host>{_HOST})"
    r"|(?:^|(?<=[\s(]))(?:from|by|helo=?|ehlo=?)\s*(?P<label>(?!localhost\b|uid\b|unknown\b)"
    r"[^\W\d_][\w-]*)(?=[\s;)]|$)",
    re.I,
)
_MSGID = re.compile(r"<([^<>\s]*)>")
_PARAM = re.compile(
    r"(?i)(?<![\w-])((?:file)?name\*?(?:\d+\*?)?\s*=\s*)(\"(?:[^\"\\]|\\.)*\"|[^;\s]+)"
)
#: A header line quoted in a body ("> From: Guido van Rossum <guido@python.org>").
_QUOTED_FIELD = re.compile(
    r"^[> \t]*(?:from|to|cc|reply-to|sender)[ \t]*:[ \t]*([^\n]*@[^\n]*)$", re.I | re.M
)
#: Marks where inline tags sat inside one analyzer text of HTML (invisible to the analyzer).
_ZW = "\u200b"
#: Tags that do not break the flow of text: text nodes around them are analysed together.
_INLINE_TAGS = frozenset(
    {
        "a",
        "abbr",
        "acronym",
        "b",
        "bdi",
        "bdo",
        "big",
        "cite",
        "code",
        "data",
        "dfn",
        "em",
        "font",
        "i",
        "kbd",
        "mark",
        "nobr",
        "q",
        "s",
        "samp",
        "small",
        "span",
        "strike",
        "strong",
        "sub",
        "sup",
        "tt",
        "u",
        "var",
        "wbr",
    }
)
_TAG_NAME = re.compile(r"</?([A-Za-z][\w-]*)")


def _html_runs(pieces: list[HtmlPiece]) -> list[list[HtmlPiece]]:
    """Text nodes grouped into runs that read as one text (split at tags that are not inline).

    Comments do not split a run: spam writes words in pieces around them.
    """
    runs: list[list[HtmlPiece]] = [[]]
    for piece in pieces:
        if piece.kind == "text":
            if _ZW in piece.raw:  # the mark would be ambiguous: the node stands alone
                runs.extend([[piece], []])
            else:
                runs[-1].append(piece)
        elif piece.kind == "markup" and piece.raw.startswith("<"):
            m = _TAG_NAME.match(piece.raw)
            if m is not None and m.group(1).lower() not in _INLINE_TAGS and runs[-1]:
                runs.append([])
    return [r for r in runs if any(_WORDY.search(p.raw) for p in r)]


_SAFE_ADDRESS = re.compile(r"[^\s<>()\[\]\\,;:\"@]+@[^\s<>()\[\]\\,;:\"@]+")


def _setter(obj: object, attr: str) -> Sink:
    def sink(value: str) -> None:
        setattr(obj, attr, value)

    return sink


class MailScrubber:
    """Plans the analyzer texts of a message and writes the scrubbed message back.

    The analyzer itself is the caller's (a ``Scrubber`` or ``ParallelScrubber``): messages are
    planned one by one (:meth:`plan`), their texts scrubbed in a stream with everyone else's,
    and each message finished (:meth:`finish`) with its results.

    Args:
        policy: The scrubber's replacement policy (``scrubber.policy``).
        key: The key the scrubber uses for keyed strategies (the file's or the dataset's), so
            header values get the body's pseudonyms; also keys the Message-ID hashes (a random
            key per instance when there is none).
        group_chars: Most characters in one joined analyzer text.
    """

    def __init__(
        self, policy: ScrubPolicy, key: bytes | None = None, *, group_chars: int = 16384
    ) -> None:
        self.replacer = Replacer(policy, key)
        self._id_key = hmac.new(
            key or os.urandom(32), b"privsynth/message-id/v1", "sha256"
        ).digest()
        self._group_chars = group_chars

    # -- planning ------------------------------------------------------------------------------

    def plan(self, raw: RawMessage) -> _Job:
        """Parse a message and collect its analyzer texts.

        Raises:
            MalformedMessage: It cannot be scrubbed as mail (the reason quotes nothing).
        """
        assert raw.data is not None
        try:
            msg = parse_message(raw.data)
        except Exception as exc:
            raise MalformedMessage(f"cannot be parsed ({type(exc).__name__})") from None
        reason = malformed_reason(msg)
        if reason:
            raise MalformedMessage(reason)
        first = raw.data.split(b"\n", 1)[0]
        job = _Job(raw, msg, "\r\n" if first.endswith(b"\r") else "\n", _Texts(self._group_chars))
        try:
            self._envelope(job)
            self._node(job, msg)
        except RecursionError:
            raise MalformedMessage("nested too deeply") from None
        except Exception as exc:
            raise MalformedMessage(f"cannot be processed ({type(exc).__name__})") from None
        return job

    def _count(self, job: _Job, entity: str) -> None:
        job.entity_counts[entity] += 1
        job.strategy_counts[self.replacer.policy.strategy_for(entity).name] += 1

    def _replace(self, job: _Job, entity: str, value: str) -> str:
        self._count(job, entity)
        return self.replacer.replace(entity, value)

    def _address(self, job: _Job, address: str) -> str:
        """An address replaced, in a form that still parses as an address."""
        job.deny.add_address(address)
        new = self._replace(job, "EMAIL_ADDRESS", address)
        if _SAFE_ADDRESS.fullmatch(new):
            return new
        return (re.sub(r"[^A-Za-z0-9._-]+", "", new) or "redacted") + "@redacted.invalid"

    def _hash(self, value: str) -> str:
        return hmac.new(
            self._id_key, value.encode("utf-8", "surrogateescape"), "sha256"
        ).hexdigest()

    def _envelope(self, job: _Job) -> None:
        """The mbox ``From `` line: the sender replaced, the date dropped."""
        if not job.raw.envelope:
            return
        words = job.raw.envelope.decode("latin-1").split()
        sender = words[1] if len(words) > 1 else ""
        sender = self._address(job, sender) if "@" in sender else "MAILER-DAEMON"
        job.envelope = f"From {sender} Thu Jan  1 00:00:00 1970".encode("ascii", "replace")

    def _node(self, job: _Job, part: Message) -> None:
        maintype = part.get_content_maintype()
        payload = part.get_payload()
        if maintype == "multipart" or (maintype == "message" and isinstance(payload, list)):
            self._headers(job, part)
            for attr in ("preamble", "epilogue"):
                value = getattr(part, attr)
                if value:
                    job.texts.add(value, _setter(part, attr))
            for sub in payload if isinstance(payload, list) else []:
                if isinstance(sub, Message):
                    self._node(job, sub)
            return
        if maintype == "text" or (maintype == "message" and isinstance(payload, str)):
            self._headers(job, part)
            self._text_part(job, part)
            return
        self._drop(job, part)
        self._headers(job, part)

    def _drop(self, job: _Job, part: Message) -> None:
        """Replace a non-text leaf by a short placeholder; its bytes are not kept."""
        ctype = part.get_content_type()
        payload = part.get_payload()
        size = len(payload) if isinstance(payload, str) else 0
        disposition = (part.get_content_disposition() or "attachment").lower()
        for name in ("Content-Type", "Content-Transfer-Encoding", "Content-Disposition"):
            del part[name]
        part["Content-Type"] = 'text/plain; charset="us-ascii"'
        part["Content-Transfer-Encoding"] = "7bit"
        part["Content-Disposition"] = "inline" if disposition == "inline" else "attachment"
        note = f"[privsynth: {ctype} part of {size} encoded bytes removed]"
        part.set_payload(note + job.linesep)
        job.removed_parts += 1

    # -- header fields -------------------------------------------------------------------------

    def _headers(self, job: _Job, part: Message) -> None:
        fields = [[name, str(value)] for name, value in part.raw_items()]
        group: list[tuple[str, Sink]] = []
        for i, (name, value) in enumerate(fields):
            key = name.lower()
            if key in ADDRESS_HEADERS:
                rebuilt = self._mailboxes(job, value)
                if rebuilt is not None:
                    fields[i][1] = rebuilt
                    continue
            elif key in ID_HEADERS:
                self._ids(job, fields[i], group)
                continue
            elif key in TRACE_HEADERS:
                self._trace(job, fields[i], group)
                continue
            elif key in _MIME_HEADERS:
                self._params(job, fields[i], group)
                continue
            self._free_text(job, fields[i], group)
        job.texts.add_group(group)

        def rewrite() -> None:
            for name in {n for n, _ in fields}:
                del part[name]
            for name, value in fields:
                part[name] = value

        job.finishers.append(rewrite)

    def _mailboxes(self, job: _Job, value: str) -> str | None:
        """Mailboxes with names and addresses replaced; ``None`` if none could be parsed."""
        pairs = addresses(value)
        if not any("@" in a or n for n, a in pairs):
            return None
        boxes = []
        for name, addr in pairs:
            new_name = new_addr = ""
            if name:
                job.deny.add_name(name)
                if "@" in name and not _WORDY.search(EMAIL.sub("", name)):
                    new_name = self._address(job, name)
                else:
                    new_name = self._replace(job, "PERSON", name)
            if addr:
                new_addr = (
                    self._address(job, addr) if "@" in addr else self._replace(job, "PERSON", addr)
                )
            boxes.append(
                formataddr((new_name, new_addr), charset="utf-8") if new_name else f"<{new_addr}>"
            )
        return ", ".join(boxes)

    def _encode(self, name: str, text: str, job: _Job) -> str:
        """A header value for ``text``: plain ASCII when it can be, RFC 2047 otherwise."""
        text = text_of_raw(text)  # raw 8-bit bytes kept from the input become characters
        if text.isascii() and len(name) + len(text) < 76 and "\n" not in text:
            return text
        header = Header(text, "us-ascii" if text.isascii() else "utf-8", header_name=name)
        return header.encode(linesep=job.linesep, maxlinelen=78)

    def _free_text(self, job: _Job, entry: list[str], group: list[tuple[str, Sink]]) -> None:
        decoded = decode_header_text(entry[1])

        def sink(scrubbed: str) -> None:
            if scrubbed != decoded:
                entry[1] = self._encode(entry[0], scrubbed, job)

        group.append((decoded, sink))

    def _template(
        self,
        job: _Job,
        entry: list[str],
        pieces: list[str],
        texts: dict[int, str],
        group: list[tuple[str, Sink]],
    ) -> None:
        """``entry`` becomes ``pieces`` joined, the pieces numbered in ``texts`` scrubbed first."""
        for i, text in texts.items():

            def sink(scrubbed: str, i: int = i, text: str = text) -> None:
                if scrubbed != text:
                    pieces[i] = scrubbed

            group.append((text, sink))

        def join() -> None:
            entry[1] = self._encode(entry[0], "".join(pieces), job)

        job.finishers.append(join)

    def _ids(self, job: _Job, entry: list[str], group: list[tuple[str, Sink]]) -> None:
        value = text_of_raw(unfold(entry[1]))
        pieces: list[str] = []
        texts: dict[int, str] = {}
        at = 0
        for m in _MSGID.finditer(value):
            between = value[at : m.start()]
            if _WORDY.search(between):
                texts[len(pieces)] = decode_header_text(between)
            pieces.append(between)
            local, _, domain = m.group(1).rpartition("@")
            pieces.append(
                f"<{self._hash(local)[:20]}@{self._hash(domain)[:8]}.invalid>"
                if local
                else f"<{self._hash(m.group(1))[:20]}>"
            )
            at = m.end()
        tail = value[at:]
        if _WORDY.search(tail):
            texts[len(pieces)] = decode_header_text(tail)
        pieces.append(tail)
        self._template(job, entry, pieces, texts, group)

    def _trace(self, job: _Job, entry: list[str], group: list[tuple[str, Sink]]) -> None:
        value = text_of_raw(unfold(entry[1]))
        route, semi, date = value.rpartition(";")
        if not semi:
            route, date = value, ""

        def swap(m: re.Match[str]) -> str:
            if m.group("email"):
                return self._address(job, m.group("email"))
            if m.group("ip"):
                return self._replace(job, "IP_ADDRESS", m.group("ip"))
            if m.group("host"):
                return self._replace(job, "URL", m.group("host"))
            label = m.group("label")
            new = self._replace(job, "URL", label)
            return m.group(0)[: m.start("label") - m.start()] + new

        pieces = [_TRACE.sub(swap, route), semi, date]
        self._template(job, entry, pieces, {2: date} if _WORDY.search(date) else {}, group)

    def _params(self, job: _Job, entry: list[str], group: list[tuple[str, Sink]]) -> None:
        value = entry[1]
        if entry[0].lower() not in ("content-type", "content-disposition") or not _PARAM.search(
            value
        ):
            return
        pieces: list[str] = []
        texts: dict[int, str] = {}
        at = 0
        for m in _PARAM.finditer(value):
            pieces.append(value[at : m.end(1)])
            raw = m.group(2)
            inner = raw[1:-1] if raw.startswith('"') else raw
            texts[len(pieces)] = decode_header_text(inner)
            pieces.append(raw)
            at = m.end()
        pieces.append(value[at:])

        def quote(i: int, text: str) -> Sink:
            def sink(scrubbed: str) -> None:
                if scrubbed == text:
                    return
                if not scrubbed.isascii():  # as mail clients write non-ASCII file names
                    scrubbed = Header(scrubbed, "utf-8").encode(maxlinelen=0)
                pieces[i] = '"' + scrubbed.replace("\\", "\\\\").replace('"', '\\"') + '"'

            return sink

        for i, text in texts.items():
            group.append((text, quote(i, text)))

        def join() -> None:
            entry[1] = "".join(pieces)  # untouched pieces stay as found, raw bytes included

        job.finishers.append(join)

    # -- bodies --------------------------------------------------------------------------------

    @staticmethod
    def _quoted_mailboxes(job: _Job, text: str) -> None:
        """Deny the mailboxes of header lines quoted in a body (a forward, a quoted reply)."""
        for m in _QUOTED_FIELD.finditer(text):
            for name, addr in addresses(m.group(1)):
                if "@" in addr:
                    job.deny.add_address(addr)
                    if name:
                        job.deny.add_name(name)

    def _text_part(self, job: _Job, part: Message) -> None:
        decoded = decode_text_part(part)
        if decoded is None:
            return
        text, charset = decoded
        self._quoted_mailboxes(job, text)
        if part.get_content_subtype() != "html":

            def sink(scrubbed: str) -> None:
                if scrubbed != text:
                    job.finishers.append(lambda: self._set_body(part, scrubbed, charset, False))

            job.texts.add(text, sink)
            return
        pieces = html_pieces(text)
        changed = [False]
        items: list[tuple[str, Sink]] = []
        for run in _html_runs(pieces):
            items.append(self._html_run(run, changed))
        for piece in pieces:
            if piece.kind == "attr":
                shown = html.unescape(piece.raw)

                def put(scrubbed: str, piece: HtmlPiece = piece, shown: str = shown) -> None:
                    if scrubbed != shown:
                        piece.raw = html.escape(scrubbed)
                        changed[0] = True

                items.append((shown, put))
        job.texts.add_group(items)

        def finish_html() -> None:
            if changed[0]:
                self._set_body(part, "".join(p.raw for p in pieces), charset, True)

        job.finishers.append(finish_html)

    @staticmethod
    def _html_run(run: list[HtmlPiece], changed: list[bool]) -> tuple[str, Sink]:
        """One analyzer text for text nodes that read as one (only inline tags between them).

        The nodes are joined with a zero-width space, which the analyzer never sees (it reads
        a normalised copy without invisible characters), so "Mail <a>Horatio Quimby</a> about"
        is analysed as one sentence; the scrubbed text is split back at the same marks. If a
        replaced span covered a mark (a name cut by a tag), the run's scrubbed text goes into its
        first node and the others are emptied: tags kept, nothing left unscrubbed.
        """
        shown = [html.unescape(p.raw) for p in run]
        joined = _ZW.join(shown)

        def sink(scrubbed: str) -> None:
            if scrubbed == joined:
                return
            changed[0] = True
            parts = scrubbed.split(_ZW)
            if len(parts) != len(run):
                parts = [scrubbed.replace(_ZW, "")] + [""] * (len(run) - 1)
            for piece, old, new in zip(run, shown, parts, strict=True):
                if new != old:
                    piece.raw = html.escape(new, quote=False)

        return joined, sink

    @staticmethod
    def _set_body(part: Message, text: str, charset: str, is_html: bool) -> None:
        """Write ``text`` back with the part's charset and Content-Transfer-Encoding."""
        try:
            data = text.encode(charset)
        except UnicodeEncodeError:
            if is_html:
                data = text.encode(charset, "xmlcharrefreplace")
            else:
                data = text.encode("utf-8")
                part.set_param("charset", "utf-8")
        data = data.replace(b"\r\n", b"\n")
        cte = raw_header(part, "Content-Transfer-Encoding").strip().lower()
        if cte == "base64":
            payload = base64.encodebytes(data).decode("ascii")
        elif cte == "quoted-printable":
            payload = quopri.encodestring(data).decode("ascii")
        elif cte in ("", "7bit", "8bit", "binary"):
            payload = data.decode("ascii", "surrogateescape")
        else:  # x-uuencode and friends: written as base64, which every reader knows
            payload = base64.encodebytes(data).decode("ascii")
            del part["Content-Transfer-Encoding"]
            part["Content-Transfer-Encoding"] = "base64"
        part.set_payload(payload)

    # -- finishing -----------------------------------------------------------------------------

    def finish(self, job: _Job, results: list[ScrubResult]) -> tuple[bytes, ScrubResult]:
        """The scrubbed message as bytes, and its counts (residuals included) as one result.

        Raises:
            MalformedMessage: The message could not be written back.
        """
        counts = Counter(job.entity_counts)
        strategies = Counter(job.strategy_counts)
        residual: Counter[str] = Counter()
        for found, sink in zip(results, job.texts.sinks, strict=True):
            res = job.deny.apply(found, self.replacer)
            counts.update(res.entity_counts)
            strategies.update(res.strategy_counts)
            residual.update(res.residual_counts)
            sink(res.text)
        try:
            for fin in job.finishers:
                fin()
            buf = io.BytesIO()
            gen = BytesGenerator(buf, mangle_from_=False, maxheaderlen=0)
            gen.flatten(job.msg, linesep=job.linesep)
        except Exception as exc:
            raise MalformedMessage(f"cannot be written back ({type(exc).__name__})") from None
        data = buf.getvalue()
        summary = ScrubResult(
            text="",
            entity_counts=dict(counts),
            strategy_counts=dict(strategies),
            residual_counts=dict(residual),
        )
        return data, summary


# ----------------------------------------------------------------------------------------------
# Files
# ----------------------------------------------------------------------------------------------


def _mbox_entry(job: _Job, data: bytes) -> bytes:
    """A message as an mbox record: envelope, body with new ``From `` lines quoted, blank line."""
    nl = job.linesep.encode()
    data = re.sub(rb"(\n\r?\n)From ", rb"\1>From ", data)
    envelope = job.envelope or b"From MAILER-DAEMON Thu Jan  1 00:00:00 1970"
    if not data.endswith(nl):
        data += nl
    return envelope + nl + data + nl


def scrub_mail_file(
    path: Path | str,
    out_path: Path | str,
    *,
    scrubber: SupportsScrub,
    key: bytes | None = None,
    progress: Callable[[int, int, int], None] | None = None,
    fmt: str | None = None,
    max_doc_chars: int = 65_536,
    oversize: Literal["chunk", "refuse"] = "chunk",
) -> ScrubFileReport:
    """Scrub an ``.eml`` or mbox file into the same format, message by message.

    Args:
        path: Input ``.eml`` (one message) or ``.mbox`` (optionally ``.gz``).
        out_path: Output in the input's format, written to a temporary name and renamed at the
            end, so a failed run leaves no partial output.
        scrubber: A loaded ``ParallelScrubber`` (or ``Scrubber``).
        key: The key ``scrubber`` was built with (keyed strategies; see :class:`MailScrubber`).
        progress: Called with ``(messages_done, bytes_read, total_bytes)``.
        fmt: ``"eml"`` or ``"mbox"``, overriding the name.
        max_doc_chars: With ``oversize="refuse"``, a message with more text than this is
            refused (listed by line). With ``"chunk"`` any length is scrubbed (the analyzer
            reads long texts in windows).
        oversize: ``"chunk"`` or ``"refuse"``.

    Returns:
        A :class:`~privsynth.server.scrubbing.file_sources.ScrubFileReport`: counts only;
        malformed messages by line and number, oversized ones under ``refused``.
    """
    from privsynth.server.scrubbing.file_sources import (
        ReportTally,
        ScrubFileReport,
        atomic_output,
        scrub_stream,
    )

    src, out = Path(path), Path(out_path)
    tally = ReportTally(scrubber)
    stats = SourceStats()
    report = ScrubFileReport(format=fmt or detect_format(src)[0])
    policy: ScrubPolicy = getattr(scrubber, "policy")  # noqa: B009 - not in SupportsScrub
    engine = MailScrubber(policy, key)
    jobs: deque[_Job] = deque()

    def texts() -> Iterator[str]:
        for raw in read_messages(src, stats, fmt=fmt):
            try:
                job = engine.plan(raw)
            except MalformedMessage as exc:
                stats.bad(raw.line, f"message {raw.number}: {exc.reason}")
                continue
            if oversize == "refuse" and job.chars > max_doc_chars:
                stats.too_big(
                    raw.line, f"message {raw.number}: text over the limit of {max_doc_chars} chars"
                )
                continue
            stats.records += 1
            jobs.append(job)
            yield from job.texts.texts

    with atomic_output(out, binary=True) as fout:

        def write(job: _Job, parts: list[ScrubResult]) -> None:
            try:
                data, res = engine.finish(job, parts)
            except MalformedMessage as exc:
                stats.bad(job.raw.line, f"message {job.raw.number}: {exc.reason}")
                return
            fout.write(_mbox_entry(job, data) if report.format == "mbox" else data)
            tally.add(res)
            report.records_with_pii += bool(res.entity_counts)
            report.records_out += 1
            if progress is not None and report.records_out % 64 == 0:
                progress(report.records_out, stats.bytes_read, stats.total_bytes)

        results = scrub_stream(scrubber, texts())
        for res in results:
            while not jobs[0].texts.texts:
                write(jobs.popleft(), [])
            job = jobs.popleft()
            write(job, [res] + [next(results) for _ in range(len(job.texts.texts) - 1)])
        while jobs:
            write(jobs.popleft(), [])
    if progress is not None:
        progress(report.records_out, stats.total_bytes, stats.total_bytes)
    return tally.finish(report, stats)


# ----------------------------------------------------------------------------------------------
# Uploads
# ----------------------------------------------------------------------------------------------


def mail_record(text: str) -> tuple[str, DenyList]:
    """(text to scrub and store, deny list) of an uploaded ``message/rfc822`` record.

    The record is :func:`~privsynth.client.mailfiles.compact_record`'s form: address headers,
    Subject, an empty line, body text. What is scrubbed and stored is the Subject and the body
    (an empty line between); the mailboxes only feed the deny list, which
    :meth:`DenyList.apply` then uses on the scrubbed text. A record without header fields is
    all body.
    """
    msg = message_from_string(text, policy=email_policy.compat32)
    deny = DenyList()
    # The sender first: a deny list is capped, and signatures and quotes name the sender.
    senders = ("from", "sender", "reply-to")
    items = sorted(msg.raw_items(), key=lambda item: item[0].lower() not in senders)
    for name, value in items:
        if name.lower() in ADDRESS_HEADERS:
            for display, addr in addresses(str(value)):
                if display:
                    deny.add_name(display)
                if addr:
                    deny.add_address(addr)
    subject = decode_header_text(raw_header(msg, "Subject")).strip()
    payload = msg.get_payload()
    body = payload if isinstance(payload, str) else ""
    if not msg.keys():
        return text, deny
    return (f"{subject}\n\n{body}" if subject else body), deny
