"""Read e-mail: single RFC 822 messages (``.eml``) and mbox files, one message at a time.

Shared by ``privsynth upload`` (which sends each message as one record, see
:func:`compact_record`) and ``privsynth scrub`` (which scrubs whole messages with their structure
kept, :mod:`privsynth.server.scrubbing.mail`), so both split, decode and judge a message the same
way. Standard library only (``email``, parsed with the ``compat32`` policy: it keeps every header
byte and MIME boundary as found, so an untouched part is written back unchanged).

Memory stays bounded whatever the file: :func:`split_mbox` reads one line at a time and holds
one message; a message over ``max_bytes`` is not kept at all, only named by its line (an
oversized record). What counts as malformed (:func:`malformed_reason`) is decided here too, by a
reason that never quotes the message.

mbox variants: a message starts at a line ``From `` that opens the file or follows an empty
line (the mboxo/mboxrd rule). ``>From`` quoting inside bodies is left as found (not unquoted),
so writing the body back needs no re-quoting except for lines that newly start with ``From ``.
"""

from __future__ import annotations

import codecs
import email
import html
import re
from collections.abc import Iterator
from dataclasses import dataclass
from email import policy as email_policy
from email.header import decode_header, make_header
from email.message import Message
from email.utils import getaddresses
from typing import IO

__all__ = [
    "ADDRESS_HEADERS",
    "ID_HEADERS",
    "MAIL_FORMATS",
    "MAIL_RECORD_FORMAT",
    "MAX_MESSAGE_BYTES",
    "TEXT_ATTRIBUTES",
    "TRACE_HEADERS",
    "HtmlPiece",
    "RawMessage",
    "addresses",
    "compact_record",
    "decode_header_text",
    "decode_text_part",
    "html_pieces",
    "html_text",
    "malformed_reason",
    "parse_message",
    "raw_header",
    "read_eml",
    "split_mbox",
    "text_of_raw",
    "unfold",
]

#: File formats holding e-mail (names used by ``--format``).
MAIL_FORMATS = ("eml", "mbox")
#: ``DatasetMetadata.record_format`` of an upload whose records are messages.
MAIL_RECORD_FORMAT = "message/rfc822"
#: Largest message read (raw bytes, attachments included); a longer one is an oversized record.
MAX_MESSAGE_BYTES = 16 * 1024 * 1024

#: Header fields holding mailboxes: display names are PERSON, addresses EMAIL_ADDRESS.
ADDRESS_HEADERS = frozenset(
    {
        "from",
        "to",
        "cc",
        "bcc",
        "reply-to",
        "sender",
        "resent-from",
        "resent-to",
        "resent-cc",
        "resent-bcc",
        "resent-sender",
        "resent-reply-to",
        "return-path",
        "delivered-to",
        "x-original-to",
        "envelope-to",
        "x-envelope-from",
        "x-envelope-to",
        "errors-to",
        "mail-followup-to",
        "mail-reply-to",
        "disposition-notification-to",
        "return-receipt-to",
        "apparently-to",
        "x-sender",
        "x-original-from",
        "x-beenthere",
    }
)
#: Header fields holding message ids (``<local@domain>``, possibly several).
ID_HEADERS = frozenset(
    {
        "message-id",
        "in-reply-to",
        "references",
        "resent-message-id",
        "content-id",
        "original-message-id",
        "x-original-message-id",
        "x-message-id",
    }
)
#: Header fields tracing the route: hosts, IP addresses, ``for <address>``, a date.
TRACE_HEADERS = frozenset({"received", "x-received"})


# ----------------------------------------------------------------------------------------------
# Splitting files into messages
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RawMessage:
    """One message of a file, as bytes.

    Attributes:
        number: 1-based position of the message in the file.
        line: 1-based line the message starts on (its mbox ``From `` line, if any).
        data: The message (headers and body), or ``None`` when it is over the size limit
            (then it was never held whole).
        envelope: The mbox ``From `` line without its line break (``b""`` for ``.eml``).
        size: Bytes of the message as found.
    """

    number: int
    line: int
    data: bytes | None
    envelope: bytes = b""
    size: int = 0


def _is_blank(line: bytes) -> bool:
    return line in (b"\n", b"\r\n")


def split_mbox(f: IO[bytes], *, max_bytes: int = MAX_MESSAGE_BYTES) -> Iterator[RawMessage]:
    """The messages of an mbox file, streamed (one message in memory at a time).

    The empty line that precedes each ``From `` separator belongs to the mbox, not to the
    message, and is dropped. Text before the first separator (a file that does not start with
    ``From ``) is a message of its own, without an envelope.
    """
    number = 0
    lineno = 0
    start_line = 1
    envelope = b""
    buf: list[bytes] = []
    size = 0
    over = False
    prev_blank = True
    started = False

    def emit() -> RawMessage:
        data = None
        if not over:
            if buf and _is_blank(buf[-1]):
                buf.pop()
            data = b"".join(buf)
        return RawMessage(number, start_line, data, envelope, size)

    while True:
        line = f.readline(max_bytes + 1)
        if not line:
            break
        lineno += 1
        if line.startswith(b"From ") and prev_blank:
            if started and (buf or over or envelope):
                yield emit()
            number += 1
            started = True
            start_line, envelope = lineno, line.rstrip(b"\r\n")
            buf, size, over = [], 0, False
            prev_blank = False
            continue
        if not started:
            number, started, start_line = 1, True, lineno
        size += len(line)
        if not over:
            if size > max_bytes:
                over, buf = True, []
            else:
                buf.append(line)
        prev_blank = _is_blank(line)
    if started:
        yield emit()


def read_eml(f: IO[bytes], *, max_bytes: int = MAX_MESSAGE_BYTES) -> Iterator[RawMessage]:
    """The one message of an ``.eml`` file (``message/rfc822``), unless it is over the limit."""
    data = f.read(max_bytes + 1)
    if not data:
        return
    if len(data) > max_bytes:
        size = len(data)
        while chunk := f.read(1 << 20):
            size += len(chunk)
        yield RawMessage(1, 1, None, b"", size)
        return
    yield RawMessage(1, 1, data, b"", len(data))


# ----------------------------------------------------------------------------------------------
# Parsing and judging a message
# ----------------------------------------------------------------------------------------------


def parse_message(data: bytes) -> Message:
    """Parse with ``compat32``: raw header values and boundaries are kept for writing back."""
    return email.message_from_bytes(data, policy=email_policy.compat32)


_BOUNDARY_DEFECTS = ("NoBoundaryInMultipartDefect", "StartBoundaryNotFoundDefect")


def malformed_reason(msg: Message) -> str | None:
    """Why ``msg`` cannot be handled as a message (a reason without content), or ``None``.

    A message without any header field is not mail (a text file named ``.eml``); a multipart
    body whose boundary never occurs cannot be split into parts, so its encoded parts could not
    be decoded and scrubbed.
    """
    if not msg.keys():
        return "no header fields"
    for part in msg.walk():
        for defect in part.defects:
            if type(defect).__name__ in _BOUNDARY_DEFECTS:
                return "multipart body without its boundary"
    return None


def _has_surrogates(s: str) -> bool:
    return any("\udc80" <= c <= "\udcff" for c in s)


def text_of_raw(s: str) -> str:
    """Header text parsed from bytes: raw 8-bit (kept as surrogates) read as UTF-8 or Latin-1."""
    if not _has_surrogates(s):
        return s
    try:
        raw = s.encode("ascii", "surrogateescape")
    except UnicodeEncodeError:
        return s.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _decode_bytes(data: bytes, charset: str | None) -> str:
    for cs in (charset, "utf-8"):
        if not cs:
            continue
        try:
            return data.decode(cs)
        except (LookupError, UnicodeDecodeError):
            continue
    return data.decode("latin-1")


_FOLD = re.compile(r"\r?\n(?=[ \t])")


def unfold(value: str) -> str:
    """A header value on one line (RFC 5322 unfolding: line breaks before whitespace removed)."""
    return _FOLD.sub("", value).replace("\r", "").replace("\n", " ")


def decode_header_text(value: str) -> str:
    """A header value as text: unfolded, RFC 2047 encoded words decoded, raw 8-bit read.

    Never raises: an encoded word in an unknown charset or with a broken payload is decoded as
    well as it can be (unknown charsets as UTF-8, else Latin-1).
    """
    text = text_of_raw(unfold(str(value)))
    if "=?" not in text:
        return text
    try:
        chunks = decode_header(text)
    except Exception:  # a malformed encoded word: keep the text as found
        return text
    try:
        return str(make_header(chunks))
    except Exception:
        return "".join(c if isinstance(c, str) else _decode_bytes(c, cs) for c, cs in chunks)


def addresses(value: str) -> list[tuple[str, str]]:
    """(display name, address) pairs of an address header; names decoded (RFC 2047).

    The raw value is split first and names decoded after, so a decoded comma
    (``=?utf-8?q?Smith=2C_John?=``) cannot split one mailbox into two. Empty pairs (groups such
    as ``undisclosed-recipients:;``) are left out.
    """
    pairs = getaddresses([unfold(text_of_raw(str(value)))])
    return [(decode_header_text(n).strip(), a.strip()) for n, a in pairs if n.strip() or a.strip()]


def decode_text_part(part: Message) -> tuple[str, str] | None:
    """(text, charset used) of a text part's body, transfer encoding and charset undone.

    The declared charset is tried first, then UTF-8, then Latin-1 (which decodes anything), so
    a mislabelled part still decodes; encoding the text with the charset returned gives back the
    original bytes. ``None`` for a part without a body.
    """
    data = part.get_payload(decode=True)
    if not isinstance(data, bytes):
        return None
    declared = part.get_content_charset()
    for cs in (declared, "utf-8", "latin-1"):
        if not cs:
            continue
        try:
            codecs.lookup(cs)
            return data.decode(cs), cs
        except (LookupError, UnicodeDecodeError):
            continue
    return data.decode("latin-1"), "latin-1"  # pragma: no cover - latin-1 always decodes


# ----------------------------------------------------------------------------------------------
# HTML: text nodes and attribute values, everything else kept
# ----------------------------------------------------------------------------------------------


@dataclass
class HtmlPiece:
    """A piece of an HTML document: markup (kept), a text node or an attribute value.

    Joining every piece's ``raw`` gives back the document exactly. ``text`` and ``attr``
    pieces are character-reference encoded (``&amp;``); :func:`html.unescape` reads them.
    """

    raw: str
    kind: str  # "markup", "text" or "attr"


_TAG = re.compile(
    r"<!--.*?(?:-->|\Z)"  # comment
    r"|<![^>]*>?"  # doctype, CDATA opener
    r"|<\?[^>]*>?"  # processing instruction
    r"|</?[A-Za-z][^\s/>]*(?:[^>\"']|\"[^\"]*\"|'[^']*')*>?",  # tag; quoted values may hold '>'
    re.S,
)
_ATTR = re.compile(
    r"(?P<name>[A-Za-z_:][-\w:.]*)(?P<eq>\s*=\s*)"
    r"(?:\"(?P<dq>[^\"]*)\"|'(?P<sq>[^']*)'|(?P<bare>[^\s\"'=<>`]+))"
)
#: Attributes whose values are text a reader sees or a link: scrubbed. Others (colours, sizes,
#: classes, styles) are kept as found.
TEXT_ATTRIBUTES = frozenset(
    {"href", "src", "alt", "title", "content", "value", "action", "cite", "label", "placeholder"}
)
_RAW_TEXT = re.compile(r"<(script|style)\b", re.I)


def _tag_pieces(tag: str) -> list[HtmlPiece]:
    out: list[HtmlPiece] = []
    at = 0
    for m in _ATTR.finditer(tag):
        if m.group("name").lower() not in TEXT_ATTRIBUTES:
            continue
        group = next(g for g in ("dq", "sq", "bare") if m.group(g) is not None)
        start, end = m.span(group)
        if start == end:
            continue
        out.append(HtmlPiece(tag[at:start], "markup"))
        out.append(HtmlPiece(tag[start:end], "attr"))
        at = end
    out.append(HtmlPiece(tag[at:], "markup"))
    return out


def html_pieces(doc: str) -> list[HtmlPiece]:
    """Split an HTML document into markup, text nodes and scrub-worthy attribute values.

    A small tokenizer rather than :mod:`html.parser`: exact offsets are needed to write the
    document back unchanged outside what is scrubbed. The content of ``<script>`` and
    ``<style>`` is markup (kept), as is anything inside comments.
    """
    pieces: list[HtmlPiece] = []
    at = 0
    n = len(doc)
    while at < n:
        m = _TAG.search(doc, at)
        if m is None:
            pieces.append(HtmlPiece(doc[at:], "text"))
            break
        if m.start() > at:
            pieces.append(HtmlPiece(doc[at : m.start()], "text"))
        tag = m.group(0)
        pieces.extend(_tag_pieces(tag) if tag[1:2].isalpha() else [HtmlPiece(tag, "markup")])
        at = m.end()
        raw = _RAW_TEXT.match(tag)
        if raw:
            close = re.compile(rf"</{raw.group(1)}\s*>", re.I).search(doc, at)
            stop = close.start() if close else n
            if stop > at:
                pieces.append(HtmlPiece(doc[at:stop], "markup"))
            at = stop
    return pieces


_BLOCK = re.compile(r"</?(?:br|p|div|tr|li|h[1-6]|table|blockquote|pre)\b", re.I)


def html_text(doc: str) -> str:
    """The visible text of an HTML document: text nodes, line breaks at block tags."""
    out: list[str] = []
    for p in html_pieces(doc):
        if p.kind == "text":
            out.append(html.unescape(p.raw))
        elif p.kind == "markup" and _BLOCK.match(p.raw):
            out.append("\n")
    text = re.sub(r"[ \t\r\f\v\xa0]+", " ", "".join(out))
    return re.sub(r"\n\s*\n+", "\n\n", text).strip()


# ----------------------------------------------------------------------------------------------
# The record an upload sends
# ----------------------------------------------------------------------------------------------


def _texts(part: Message) -> Iterator[str]:
    """Body texts in reading order: the plain alternative when there is one, HTML otherwise."""
    ctype = part.get_content_type()
    if part.get_content_maintype() == "message":
        for inner in part.get_payload() or []:
            if isinstance(inner, Message):
                yield from _texts(inner)
        return
    if part.is_multipart():
        subs = [p for p in part.get_payload() if isinstance(p, Message)]
        if ctype == "multipart/alternative" and subs:
            plain = [p for p in subs if p.get_content_type() == "text/plain"]
            yield from _texts(plain[0] if plain else subs[-1])
            return
        for p in subs:
            yield from _texts(p)
        return
    if part.get_content_maintype() != "text":
        return
    decoded = decode_text_part(part)
    if decoded is None:
        return
    text = decoded[0]
    yield html_text(text) if ctype == "text/html" else text


def _mailbox_headers(msg: Message) -> Iterator[tuple[str, str]]:
    """(field name, raw value) of every address header, in this message and the ones it carries."""
    for part in msg.walk():
        for name, value in part.raw_items():
            if name.lower() in ADDRESS_HEADERS:
                yield name, str(value)


def raw_header(msg: Message, name: str) -> str:
    """The first ``name`` field's raw value (``""`` if absent), as parsed, never a Header object."""
    wanted = name.lower()
    return next((str(v) for k, v in msg.raw_items() if k.lower() == wanted), "")


def _quoted(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def compact_record(msg: Message) -> str:
    """The record ``privsynth upload`` sends for a message: its mailboxes, Subject and body text.

    A small message in text form (UTF-8, encoded words decoded): one line per address header
    (display names quoted, so a decoded comma stays inside its name), the Subject, an empty line,
    and the body texts (plain alternatives preferred, HTML reduced to its visible text,
    attachments left out). The server reads the mailboxes as the message's deny list and stores
    only the scrubbed Subject and body (:mod:`privsynth.server.scrubbing.mail`). Received,
    Message-ID and every other header are not sent at all. ``""`` when the message has neither
    a Subject nor body text (nothing to learn from).
    """
    lines = []
    for name, value in _mailbox_headers(msg):
        boxes = ", ".join(f"{_quoted(n)} <{a}>" if n else f"<{a}>" for n, a in addresses(value))
        if boxes:
            lines.append(f"{name}: {boxes}")
    subject = decode_header_text(raw_header(msg, "Subject")).strip()
    if subject:
        lines.append(f"Subject: {subject}")
    body = "\n\n".join(t.strip("\r\n") for t in _texts(msg) if t.strip())
    if not subject and not body:
        return ""
    return "\n".join(lines) + "\n\n" + body.replace("\r\n", "\n")
